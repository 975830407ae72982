"""Writes and token checks of the accounts domain: sessions, their Redis cache, permissions.

Tokens are `<sessionId>.<secret>`. PostgreSQL keeps only the SHA-256 of the secret;
`user:session:{sessionId}` caches the session (with that hash) so a request or a
socket is authenticated from Redis alone, PostgreSQL on a cache miss. Redis is a
cache here: when it is down, logins and checks still work from PostgreSQL.
"""

import hashlib
import hmac
import logging
import secrets
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import cast

import redis
from asgiref.sync import sync_to_async
from django.conf import settings
from django.contrib.auth import authenticate
from django.db import connection, transaction
from django.http import HttpRequest
from django.utils import timezone

from apps.accounts.models import Session, SessionRevocation, User, UserRole
from apps.common.cache import Epoch, adrop, afill, current_epoch, drop_now, queue_drop
from apps.common.policy import permissions_for
from apps.events.outbox import delete_recording_events, record_saved
from realtime import keys, topics
from realtime.codecs import pack_control
from realtime.connections import get_redis, get_sync_redis, is_cluster, publish_command
from realtime.errors import CONFLICT, NOT_FOUND, RATE_LIMITED, UNAUTHORIZED, ProtocolError
from realtime.pipelined import tick_pipeline
from realtime.ratelimit import SlidingWindowLimiter

logger = logging.getLogger(__name__)

INVALID_CREDENTIALS = "Email or password is incorrect."
INVALID_TOKEN = "The token is invalid, expired or revoked."
TOO_MANY_LOGINS = "Too many failed logins from this address; try again later."

SESSION_CACHE_MAX_TTL = 24 * 3600


@dataclass(frozen=True)
class Principal:
    """Who is calling: the authenticated user of one session."""

    user_id: str
    session_id: str
    email: str
    first_name: str
    last_name: str
    user_type: str
    roles: tuple[str, ...]
    expires_at: datetime

    @property
    def is_admin(self) -> bool:
        return self.user_type == "admin"


def hash_secret(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def split_token(token: str) -> tuple[str, str] | None:
    """`<sessionId>.<secret>` -> (sessionId, secret), or None when malformed."""
    session_id, sep, secret = token.strip().partition(".")
    if not sep or not secret or len(token) > 512:
        return None
    try:
        return str(uuid.UUID(session_id)), secret
    except ValueError:
        return None


def _session_hash(principal: Principal, token_hash: str) -> dict[str, str]:
    return {
        "userId": principal.user_id,
        "email": principal.email,
        "firstName": principal.first_name,
        "lastName": principal.last_name,
        "userType": principal.user_type,
        "roles": ",".join(principal.roles),
        "expiresAt": principal.expires_at.isoformat(),
        "tokenHash": token_hash,
    }


def _principal_from_hash(session_id: str, data: dict[str, str]) -> Principal:
    return Principal(
        user_id=data["userId"],
        session_id=session_id,
        email=data["email"],
        first_name=data.get("firstName", ""),
        last_name=data.get("lastName", ""),
        user_type=data["userType"],
        roles=tuple(role for role in data.get("roles", "").split(",") if role),
        expires_at=datetime.fromisoformat(data["expiresAt"]),
    )


def _principal_from_session(session: Session, roles: list[str]) -> Principal:
    user = session.user
    assert user is not None
    return Principal(
        user_id=str(user.pk),
        session_id=str(session.pk),
        email=user.email,
        first_name=user.first_name,
        last_name=user.last_name,
        user_type=user.user_type,
        roles=tuple(sorted(roles)),
        expires_at=session.expires_at,
    )


def _session_cache_ttl(principal: Principal) -> int:
    return min(SESSION_CACHE_MAX_TTL, int((principal.expires_at - timezone.now()).total_seconds()))


async def _cache_session(principal: Principal, token_hash: str) -> None:
    """Cache a session just created (login)."""
    ttl = _session_cache_ttl(principal)
    if ttl <= 0:
        return
    key = keys.user_session(principal.session_id)
    try:
        async with get_redis().pipeline(transaction=True) as pipe:
            pipe.delete(key)
            pipe.hset(key, mapping=_session_hash(principal, token_hash))  # type: ignore[arg-type]  # str keys: fine; the stub's key type is invariant
            pipe.expire(key, ttl)
            await pipe.execute()
    except redis.RedisError:
        logger.warning("could not cache session %s; PostgreSQL stays authoritative", principal.session_id)


async def _refill_session(principal: Principal, token_hash: str, epoch: Epoch | None) -> None:
    """Cache a session read from PostgreSQL after a miss, unless a drop ran since `epoch` was read:
    a session revoked while it was being loaded is not brought back."""
    ttl = _session_cache_ttl(principal)
    if ttl > 0:
        values = [text for pair in _session_hash(principal, token_hash).items() for text in pair]
        await afill(keys.user_session(principal.session_id), "hash", values, ttl, epoch)


def login_limiter() -> SlidingWindowLimiter:
    return SlidingWindowLimiter(
        get_redis(), limit=settings.LOGIN_RATE_LIMIT, window_seconds=settings.LOGIN_RATE_WINDOW_SECONDS
    )


async def _login_allowed(ip: str) -> None:
    try:
        decision = await login_limiter().check(keys.login_rate_limit(ip))
    except redis.RedisError:
        logger.warning("login rate limit unavailable (Redis down); allowing the attempt")
        return
    if not decision.allowed:
        raise ProtocolError(RATE_LIMITED, TOO_MANY_LOGINS, retryAfter=decision.retry_after_seconds)


async def _record_login_failure(ip: str) -> None:
    try:
        await login_limiter().hit(keys.login_rate_limit(ip))
    except redis.RedisError:
        logger.warning("could not record a failed login for %s (Redis down)", ip)


@sync_to_async
def _create_session(user: User, ip: str | None, user_agent: str | None) -> tuple[Session, list[str], str]:
    secret = secrets.token_urlsafe(32)
    now = timezone.now()
    with transaction.atomic():
        user.last_login = now
        user.save(update_fields=["last_login"])
        session = Session.objects.create(
            user=user,
            token=hash_secret(secret),
            expires_at=now + timedelta(seconds=settings.SESSION_TOKEN_TTL_SECONDS),
            ip_address=(ip or "")[:45] or None,
            user_agent=user_agent or None,
        )
    roles = list(UserRole.objects.filter(user=user).values_list("role_name", flat=True))
    return session, roles, f"{session.pk}.{secret}"


async def asession_login(*, email: str, password: str, ip: str, user_agent: str | None) -> tuple[Principal, str]:
    """Check the credentials and open a session; returns the principal and its token.

    Raises `rate_limited` past the per-IP failure limit and `unauthorized` for any bad
    credential (unknown email and wrong password answer the same).
    """
    await _login_allowed(ip)
    user = await sync_to_async(authenticate)(None, email=email, password=password)
    if user is None:
        await _record_login_failure(ip)
        raise ProtocolError(UNAUTHORIZED, INVALID_CREDENTIALS)
    session, roles, token = await _create_session(user, ip, user_agent)
    principal = _principal_from_session(session, roles)
    await _cache_session(principal, session.token)
    return principal, token


@sync_to_async
def _load_session(session_id: str) -> tuple[Session, list[str]] | None:
    session = Session.objects.select_related("user").filter(pk=session_id).first()
    if session is None or session.user is None:
        return None
    roles = list(UserRole.objects.filter(user=session.user).values_list("role_name", flat=True))
    return session, roles


async def asession_authenticate(token: str) -> Principal:
    """The principal of a valid token; `unauthorized` for a malformed, unknown, expired or revoked one."""
    parts = split_token(token)
    if parts is None:
        raise ProtocolError(UNAUTHORIZED, INVALID_TOKEN)
    session_id, secret = parts
    token_hash = hash_secret(secret)
    cached: dict[str, str] = {}
    try:
        # Sent with the other commands of this loop tick: a connect burst reads its sessions in one round trip.
        reply = await tick_pipeline(get_redis()).execute("HGETALL", keys.user_session(session_id))
        cached = cast("dict[str, str]", reply)  # decoded client
    except redis.RedisError:
        logger.warning("session cache unavailable; checking session %s in PostgreSQL", session_id)
    if cached.get("tokenHash"):
        if not hmac.compare_digest(cached["tokenHash"], token_hash):
            raise ProtocolError(UNAUTHORIZED, INVALID_TOKEN)
        principal = _principal_from_hash(session_id, cached)
    else:
        epoch = await current_epoch(keys.user_session(session_id))
        loaded = await _load_session(session_id)
        if loaded is None:
            raise ProtocolError(UNAUTHORIZED, INVALID_TOKEN)
        session, roles = loaded
        if not hmac.compare_digest(session.token, token_hash) or not session.user.is_active:  # type: ignore[union-attr]
            raise ProtocolError(UNAUTHORIZED, INVALID_TOKEN)
        principal = _principal_from_session(session, roles)
        await _refill_session(principal, token_hash, epoch)
    if principal.expires_at <= timezone.now():
        raise ProtocolError(UNAUTHORIZED, INVALID_TOKEN)
    return principal


async def asession_revoke(*, session_id: str) -> None:
    """Delete the session everywhere: PostgreSQL (whose trigger records the revocation), then at once,
    through the revocations relay, its cache and (via the control channel) its open sockets.

    Redis down: the relay keeps the revocation for its next run; the row is gone, so the token
    already fails on a cache miss.
    """
    await Session.objects.filter(pk=session_id).adelete()
    await asession_revocations_relay()


@sync_to_async
def _rotate_session(
    session_id: str, ip: str | None, user_agent: str | None
) -> tuple[Session, list[str], str, datetime] | None:
    """In one transaction: a new session of the same user, and the old one cut to the grace period.

    None when the old session is gone, expired or its user inactive.
    """
    now = timezone.now()
    with transaction.atomic():
        old = Session.objects.select_for_update(of=("self",)).select_related("user").filter(pk=session_id).first()
        if old is None or old.user is None or not old.user.is_active or old.expires_at <= now:
            return None
        secret = secrets.token_urlsafe(32)
        session = Session.objects.create(
            user=old.user,
            token=hash_secret(secret),
            expires_at=now + timedelta(seconds=settings.SESSION_TOKEN_TTL_SECONDS),
            ip_address=(ip or "")[:45] or None,
            user_agent=user_agent or None,
        )
        grace_end = now + timedelta(seconds=settings.SESSION_REFRESH_GRACE_SECONDS)
        if grace_end < old.expires_at:
            old.expires_at = grace_end
            old.save(update_fields=["expires_at"])
    roles = list(UserRole.objects.filter(user=session.user).values_list("role_name", flat=True))
    return session, roles, f"{session.pk}.{secret}", old.expires_at


async def asession_refresh(*, principal: Principal, ip: str, user_agent: str | None) -> tuple[Principal, str]:
    """Rotate the caller's session: a new token with a fresh expiry; the old one ends after a grace.

    The old token keeps working for `SESSION_REFRESH_GRACE_SECONDS` (60 s by default, never
    past its own expiry) so requests already in flight with it do not fail; then it answers
    401 and sockets still holding it close 4401 (every process is told the shortened
    expiry). Refreshing again with the old token inside the grace is allowed (a retry whose
    answer was lost) and never extends it. `unauthorized` when the session is gone, expired
    or its user inactive.
    """
    rotated = await _rotate_session(principal.session_id, ip, user_agent)
    if rotated is None:
        raise ProtocolError(UNAUTHORIZED, INVALID_TOKEN)
    session, roles, token, old_expires_at = rotated
    renewed = _principal_from_session(session, roles)
    await _cache_session(renewed, session.token)
    try:
        # Re-read from PostgreSQL with the shortened expiry on its next use.
        await adrop([keys.user_session(principal.session_id)])
        client = get_redis()
        await client.execute_command(
            publish_command(client),
            topics.CONTROL_CHANNEL,
            pack_control("session.rotated", sessionId=principal.session_id, expiresAt=old_expires_at.isoformat()),
        )
    except redis.RedisError:
        logger.error(
            "Redis down while rotating session %s: the old token may work until its own expiry", principal.session_id
        )
    return renewed, token


# Revoked sessions (rows of `session_revocations`, written by PostgreSQL triggers) -------

_CLAIM_REVOCATIONS = """
DELETE FROM session_revocations WHERE id IN (
    SELECT id FROM session_revocations ORDER BY id LIMIT %s FOR UPDATE SKIP LOCKED
) RETURNING session_id
"""
REVOCATIONS_BATCH = 500


def session_revocations_relay() -> int:
    """Tell Redis and every process about deleted sessions; returns how many were handled.

    Claims the rows the triggers of migration 0002 wrote (each claimed by one caller only,
    so processes running it at once share the work), then in one Redis round trip per batch
    drops `user:session:{id}` (refusing racing refills) and publishes `session.revoked`
    (every process closes those sockets with 4409). Redis down: the rows are put back and a
    later run retries; PostgreSQL already refuses the tokens on a cache miss.
    """
    handled = 0
    while True:
        with connection.cursor() as cursor:
            cursor.execute(_CLAIM_REVOCATIONS, [REVOCATIONS_BATCH])
            claimed = [str(row[0]) for row in cursor.fetchall()]
        session_ids = sorted(set(claimed))
        if not session_ids:
            return handled
        try:
            client = get_sync_redis()
            publish = publish_command(client)
            # One MULTI on one Redis. On a cluster (no MULTI across slots): the drops first, then the news.
            with client.pipeline(transaction=not is_cluster(client)) as pipe:
                queue_drop(pipe, client, [keys.user_session(session_id) for session_id in session_ids])
                if is_cluster(client):
                    pipe.execute()
                for session_id in session_ids:
                    pipe.execute_command(
                        publish, topics.CONTROL_CHANNEL, pack_control("session.revoked", sessionId=session_id)
                    )
                pipe.execute()
        except redis.RedisError:
            SessionRevocation.objects.bulk_create(SessionRevocation(session_id=sid) for sid in session_ids)
            logger.error("Redis down: %d revoked session(s) kept for the next relay", len(session_ids))
            return handled
        handled += len(session_ids)
        if len(claimed) < REVOCATIONS_BATCH:
            return handled


asession_revocations_relay = sync_to_async(session_revocations_relay)


def session_revocations_relay_on_commit() -> None:
    """Run the relay once the current transaction commits (at once outside one): the sockets of
    sessions a credential change deleted close in well under a second instead of at the next
    housekeeping round."""
    # Robust: a failure here is logged, not raised into the committed request; the next
    # housekeeping round relays what is left.
    transaction.on_commit(session_revocations_relay, robust=True)


async def apermissions_get(principal: Principal) -> frozenset[str]:
    """The user's permission set from `user:permissions:{userId}`, rebuilt on a miss."""
    key = keys.user_permissions(principal.user_id)
    try:
        cached = cast("set[str]", await get_redis().smembers(key))  # decoded client
    except redis.RedisError:
        cached = set()
    if cached:
        return frozenset(cached)
    epoch = await current_epoch(key)
    granted = permissions_for(principal.user_type, list(principal.roles))
    if granted:
        # Not cached if the user's roles changed (and caches dropped) since `principal` was read.
        await afill(key, "set", sorted(granted), settings.PERMISSIONS_CACHE_TTL_SECONDS, epoch)
    return granted


TOO_MANY_REQUESTS = "Too many requests to this endpoint; slow down."


async def aapi_rate_limit(principal: Principal, request: HttpRequest) -> None:
    """`ratelimit:api:{userId}:{endpoint}`: at most API_RATE_LIMIT calls per window per endpoint.

    The endpoint is the method and route pattern (`GET /api/v1/properties/<id>`), so ids in
    the path do not split a user's budget. Redis down: allowed (logged).
    """
    match = getattr(request, "resolver_match", None)
    route = match.route if match is not None else request.path
    endpoint = f"{request.method}:{route}"
    limiter = SlidingWindowLimiter(
        get_redis(), limit=settings.API_RATE_LIMIT, window_seconds=settings.API_RATE_WINDOW_SECONDS
    )
    try:
        decision = await limiter.hit(keys.api_rate_limit(principal.user_id, endpoint))
    except redis.RedisError:
        logger.warning("API rate limit unavailable (Redis down); allowing the call")
        return
    if not decision.allowed:
        raise ProtocolError(RATE_LIMITED, TOO_MANY_REQUESTS, retryAfter=decision.retry_after_seconds)


def user_caches_drop(*, user_id: str) -> None:
    """Drop the user's cached permissions, topic decisions, recent transactions and session hashes
    (after a change of roles, type or active flag), and tell every process to re-check the
    user's open subscriptions (`permissions.changed`).

    Sessions are then re-read from PostgreSQL on their next use, with the new type and roles;
    the socket authorizer reads them afresh too (apps/messaging/topic_access.py), so each open
    socket loses, with `unsubscribed`, every topic the new role does not allow.
    """
    session_keys = [
        keys.user_session(str(session_id))
        for session_id in Session.objects.filter(user_id=user_id).values_list("pk", flat=True)
    ]
    try:
        client = get_sync_redis()
        # transactions:recent follows `transactions.view`, which roles grant too (accountant).
        drop_now(
            [
                keys.user_permissions(user_id),
                keys.user_topic_access(user_id),
                keys.transactions_recent(user_id),
                *session_keys,
            ]
        )
        client.execute_command(
            publish_command(client), topics.CONTROL_CHANNEL, pack_control("permissions.changed", userId=user_id)
        )
    except redis.RedisError:
        logger.error("Redis down: cached permissions of %s may stay stale until their TTL", user_id)


def user_caches_changed(*, user_id: uuid.UUID | str) -> None:
    """The user's type, roles, active flag or credentials change in the current transaction: once it
    commits, `user_caches_drop` (sockets re-check every topic, sessions re-read their roles).
    Nothing happens if it rolls back; outside a transaction, at once."""
    user_key = str(user_id)
    transaction.on_commit(lambda: user_caches_drop(user_id=user_key))


# Users and roles (HTTP and admin screens) ------------------------------------------------
# Every write of a user or a role below calls `user_caches_changed` in its transaction: the
# user's cached permissions, topic decisions and sessions are dropped after the commit (a role
# or type change, a deactivation). A bare ORM save of a user or role drops nothing.

EMAIL_TAKEN = "A user with this email already exists."
ROLE_HELD = "The user already holds this role."
ROLE_NOT_HELD = "The user does not hold this role."
CANNOT_DEMOTE_SELF = "You cannot deactivate yourself or remove your own admin access."

# API field name -> model field name (password is handled apart: it is hashed).
USER_FIELDS = {
    "email": "email",
    "firstName": "first_name",
    "lastName": "last_name",
    "phone": "phone",
    "userType": "user_type",
    "isActive": "is_active",
    "profileImageUrl": "profile_image_url",
}


def _email_free(email: str, *, except_user: uuid.UUID | None = None) -> None:
    taken = User.objects.filter(email__iexact=email)
    if except_user is not None:
        taken = taken.exclude(pk=except_user)
    if taken.exists():
        raise ProtocolError(CONFLICT, EMAIL_TAKEN, field="email")


def user_create(*, data: dict[str, object]) -> User:
    """A new user (API field names) with a hashed password and the given roles; `conflict` on a taken email."""
    email = str(data["email"]).strip().lower()
    fields = {USER_FIELDS[key]: value for key, value in data.items() if key in USER_FIELDS and key != "email"}
    with transaction.atomic():
        _email_free(email)
        user = User.objects.create_user(email=email, password=str(data["password"]), **fields)
        for role in sorted(set(data.get("roles") or ())):  # type: ignore[call-overload]
            UserRole.objects.create(user=user, role_name=role)
    return user


def user_update(
    *, actor_id: str, user_id: uuid.UUID | str, data: dict[str, object], actor_session_id: str | None = None
) -> User:
    """Change the given fields (API names); a new `password` is hashed. Admins cannot lock themselves out.

    A new password or a deactivation deletes the user's sessions in the same transaction
    (a PostgreSQL trigger) and, once committed, closes their sockets with 4409 on every
    process; their tokens answer 401 from then on. A user changing their own password keeps
    the session they did it with (`actor_session_id`); anyone else's change revokes them all.
    """
    with transaction.atomic():
        user = User.objects.select_for_update().get(pk=user_id)
        changes = {USER_FIELDS[key]: value for key, value in data.items() if key in USER_FIELDS}
        if "email" in changes:
            changes["email"] = str(changes["email"]).strip().lower()
            _email_free(str(changes["email"]), except_user=user.pk)
        if str(user.pk) == actor_id and (
            changes.get("is_active") is False or changes.get("user_type", "admin") != "admin"
        ):
            raise ProtocolError(CONFLICT, CANNOT_DEMOTE_SELF)
        previous = {name: getattr(user, name) for name in changes}
        for name, value in changes.items():
            setattr(user, name, value)
        new_password = data.get("password") is not None
        if new_password:
            user.set_password(str(data["password"]))
        keep = actor_session_id if new_password and str(user.pk) == actor_id else None
        if changes or new_password:
            with _sparing_session(keep):
                user.save()
            user_caches_changed(user_id=user.pk)
            # What other domains cache about the user (an owner's name): apps.events.outbox recorders.
            record_saved(user, created=False, previous=previous)
            session_revocations_relay_on_commit()
    return user


def user_admin_save(*, user: User, created: bool) -> User:
    """Save the user as the admin's form built it (a new password already hashed in). A change drops
    the user's caches after the commit, and a password reset or deactivation (which deletes every
    session of the user: the PostgreSQL trigger) closes their sockets as soon as it commits."""
    with transaction.atomic():
        names = ("first_name", "last_name", "email", "user_type", "is_active")
        before = None if created else User.objects.filter(pk=user.pk).values(*names).first()
        user.save()
        if before is not None:
            user_caches_changed(user_id=user.pk)
            changed = {name: value for name, value in before.items() if getattr(user, name) != value}
            record_saved(user, created=False, previous=changed)
            session_revocations_relay_on_commit()
    return user


def user_admin_delete(*, user: User) -> None:
    """Delete the user and what cascades with it (sessions, roles, memberships, subscriptions), each
    row's change event and cache drops recorded (`delete_recording_events`); the user's own caches
    are dropped after the commit."""
    with transaction.atomic():
        user_id = user.pk
        delete_recording_events(user)
        user_caches_changed(user_id=user_id)
        session_revocations_relay_on_commit()


def user_role_admin_save(*, role: UserRole) -> UserRole:
    """Save a role row from the admin (inline or its own page); the old and the new holder are re-checked."""
    with transaction.atomic():
        previous_user_id = None
        if not role._state.adding:
            previous_user_id = UserRole.objects.filter(pk=role.pk).values_list("user_id", flat=True).first()
        role.save()
        for user_id in {previous_user_id, role.user_id}:
            if user_id is not None:
                user_caches_changed(user_id=user_id)
    return role


def user_role_admin_delete(*, role: UserRole) -> None:
    """Delete a role row from the admin; its holder is re-checked after the commit."""
    with transaction.atomic():
        role.delete()
        if role.user_id is not None:
            user_caches_changed(user_id=role.user_id)


_SPARE_SESSION = "SELECT set_config('pms.keep_session', %s, true)"


@contextmanager
def _sparing_session(session_id: str | None) -> Iterator[None]:
    """Within the block, the credentials trigger (migration 0002) spares this session (None: none).

    The setting is local to the transaction; it is cleared after the block so later writes
    in the same transaction spare nothing (a failed block rolls it back with the rest).
    """
    if session_id is None:
        yield
        return
    with connection.cursor() as cursor:
        cursor.execute(_SPARE_SESSION, [session_id])
    yield
    with connection.cursor() as cursor:
        cursor.execute(_SPARE_SESSION, [""])


def user_deactivate(*, actor_id: str, user_id: uuid.UUID | str) -> User:
    """`is_active` false: the user and their history stay, their tokens stop working at once."""
    return user_update(actor_id=actor_id, user_id=user_id, data={"isActive": False})


def user_role_add(*, user_id: uuid.UUID | str, role_name: str) -> UserRole:
    """Give the user a role; `conflict` if they hold it already."""
    with transaction.atomic():
        User.objects.select_for_update().get(pk=user_id)
        if UserRole.objects.filter(user_id=user_id, role_name=role_name).exists():
            raise ProtocolError(CONFLICT, ROLE_HELD)
        role = UserRole(user_id=user_id, role_name=role_name)
        role.save()
        user_caches_changed(user_id=user_id)
    return role


def user_role_remove(*, user_id: uuid.UUID | str, role_name: str) -> None:
    """Take a role away; `not_found` if the user does not hold it."""
    with transaction.atomic():
        role = UserRole.objects.filter(user_id=user_id, role_name=role_name).first()
        if role is None:
            raise ProtocolError(NOT_FOUND, ROLE_NOT_HELD)
        role.delete()
        user_caches_changed(user_id=user_id)
