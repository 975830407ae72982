"""Reads of users and their roles (the users screens and API; `actor_current` for the access policy)."""

from datetime import datetime
from typing import Any

from django.contrib.postgres.aggregates import ArrayAgg
from django.db import connection
from django.db.models import Q, QuerySet, Value

from apps.accounts.models import Session, User, UserRole
from apps.common.pgarrays import canonical_uuids, uuid_array
from apps.common.policy import Actor
from apps.common.visibility import not_found


def actor_current(*, user_id: Any) -> Actor | None:
    """The user as PostgreSQL has them now (type and roles), for an access decision; None when
    unknown or deactivated. Sockets decide with this, never with their connect-time copy."""
    # One query (a socket's uncached subscribe pays it): the type and the roles together.
    row = (
        User.objects.filter(pk=user_id, is_active=True)
        .annotate(role_names=ArrayAgg("roles__role_name", filter=Q(roles__isnull=False), default=Value([])))
        .values_list("user_type", "role_names")
        .first()
    )
    if row is None:
        return None
    return Actor(user_id=str(user_id), user_type=row[0], roles=tuple(sorted(row[1])))


# One statement, no ORM, the ids as one array literal: a burst of socket decisions runs it once
# per batch, and building, compiling and converting the equivalent queryset was most of the
# batch's Python (apps/common/pgarrays.py has the measurements). Ids come back as text.
_ACTORS = (
    f"SELECT u.{User._meta.pk.column}::text, u.user_type,"
    f" array_remove(array_agg(r.role_name), NULL)"
    f" FROM {User._meta.db_table} u LEFT JOIN {UserRole._meta.db_table} r"
    f" ON r.{UserRole._meta.get_field('user').column} = u.{User._meta.pk.column}"
    f" WHERE u.{User._meta.pk.column} = ANY(%s::uuid[]) AND u.is_active"
    f" GROUP BY u.{User._meta.pk.column}"
)


def actors_current(*, user_ids: "list[Any]") -> dict[str, Actor]:
    """`actor_current` for many users in one query: each active user by id (the unknown and
    deactivated are absent; a value that is not a user id too, without failing the others).
    For a burst of socket decisions made together."""
    valid = canonical_uuids(user_ids)
    if not valid:
        return {}
    with connection.cursor() as cursor:
        cursor.execute(_ACTORS, [uuid_array(valid)])
        rows = cursor.fetchall()
    return {pk: Actor(user_id=pk, user_type=user_type, roles=tuple(sorted(roles))) for pk, user_type, roles in rows}


def session_expiries(*, session_ids: list[Any]) -> dict[str, datetime]:
    """Each session that still exists with its user active, by id: its expiry as PostgreSQL has it
    now (shortened by a refresh). Revoked sessions and those of deactivated users are absent; ids
    that are not session ids too. One query, for the socket audit after a broker reconnect."""
    valid = canonical_uuids(session_ids)
    rows = Session.objects.filter(pk__in=valid, user__is_active=True).values_list("pk", "expires_at")
    return {str(pk): expires_at for pk, expires_at in rows}


def user_list(*, user_type: str | None = None, is_active: bool | None = None, q: str | None = None) -> QuerySet[User]:
    """Users by email, filtered by type, active flag and words in email or name."""
    rows = User.objects.all()
    if user_type is not None:
        rows = rows.filter(user_type=user_type)
    if is_active is not None:
        rows = rows.filter(is_active=is_active)
    for word in (q or "").split():
        rows = rows.filter(Q(email__icontains=word) | Q(first_name__icontains=word) | Q(last_name__icontains=word))
    return rows.prefetch_related("roles").order_by("email", "pk")


def user_get(*, user_id: Any) -> User:
    """The user with their roles; not_found when unknown."""
    user = User.objects.filter(pk=user_id).prefetch_related("roles").first()
    if user is None:
        raise not_found()
    return user


def user_role_names(*, user_id: Any) -> list[str]:
    return sorted(UserRole.objects.filter(user_id=user_id).values_list("role_name", flat=True))
