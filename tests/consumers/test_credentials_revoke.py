"""A password change, a reset or a deactivation ends the user's sessions: sockets close 4409, tokens answer 401.

Through the services (HTTP) it happens as the change commits; through raw SQL the
PostgreSQL trigger deletes the sessions at once and the next housekeeping round (driven
here by calling it) drops their cache and closes their sockets.
"""

import json
from dataclasses import replace
from datetime import timedelta
from typing import Any

import pytest
from asgiref.sync import sync_to_async
from django.db import connection
from django.test import AsyncClient, Client
from django.urls import reverse
from django.utils import timezone

from apps.accounts.models import Session, SessionRevocation, User
from apps.accounts.services import session_revocations_relay
from realtime import connections
from realtime.runtime import get_realtime
from tests.consumers.conftest import close_code, token_for
from tests.factories import make_user

pytestmark = pytest.mark.django_db(transaction=True)

ME = "/api/v1/auth/me"


async def call(method: str, path: str, token: str, body: Any = None) -> Any:
    client = AsyncClient()
    handler: Any = {"GET": client.get, "PATCH": client.patch, "DELETE": client.delete}[method]
    kwargs: dict[str, Any] = {"headers": {"Authorization": f"Bearer {token}"}}
    if body is not None:
        kwargs.update(data=json.dumps(body), content_type="application/json")
    return await handler(path, **kwargs)


async def me_status(token: str) -> int:
    return int((await call("GET", ME, token)).status_code)


def session_id(token: str) -> str:
    return token.split(".")[0]


@sync_to_async
def run_sql(sql: str, params: list[Any]) -> None:
    with connection.cursor() as cursor:
        cursor.execute(sql, params)


async def assert_open(*sockets: Any) -> None:
    for socket in sockets:
        await socket.send_json_to({"type": "ping", "ref": "alive"})
        assert await socket.receive_json_from(timeout=3) == {"type": "pong", "ref": "alive"}


async def test_own_password_change_closes_the_other_sessions_4409_and_keeps_the_callers(
    connect,
    new_user,
) -> None:
    admin = await new_user(user_type="admin")
    calling, phone, laptop = await token_for(admin), await token_for(admin), await token_for(admin)
    calling_socket, phone_socket, laptop_socket = await connect(calling), await connect(phone), await connect(laptop)
    bystander = await token_for(await new_user())
    bystander_socket = await connect(bystander)

    response = await call("PATCH", f"/api/v1/users/{admin.pk}", calling, {"password": "a brand new passphrase"})
    assert response.status_code == 200, response.content

    assert await close_code(phone_socket) == 4409
    assert await close_code(laptop_socket) == 4409
    assert await me_status(phone) == await me_status(laptop) == 401
    assert await me_status(calling) == 200 and await me_status(bystander) == 200
    await assert_open(calling_socket, bystander_socket)
    remaining = await sync_to_async(lambda: set(Session.objects.filter(user=admin).values_list("pk", flat=True)))()
    assert {str(pk) for pk in remaining} == {session_id(calling)}


async def test_admin_password_reset_revokes_every_session_of_the_user(connect, new_user) -> None:
    admin, tenant = await new_user(user_type="admin"), await new_user()
    admin_token = await token_for(admin)
    tokens = [await token_for(tenant), await token_for(tenant)]
    sockets = [await connect(token) for token in tokens]
    admin_socket = await connect(admin_token)

    response = await call("PATCH", f"/api/v1/users/{tenant.pk}", admin_token, {"password": "reset by the office"})
    assert response.status_code == 200, response.content

    for socket in sockets:
        assert await close_code(socket) == 4409
    for token in tokens:
        assert await me_status(token) == 401
    await assert_open(admin_socket)
    assert not await Session.objects.filter(user=tenant).aexists()


async def test_deactivation_through_the_api_revokes_at_once(connect, new_user) -> None:
    admin, tenant = await new_user(user_type="admin"), await new_user()
    token = await token_for(tenant)
    socket = await connect(token)
    response = await call("DELETE", f"/api/v1/users/{tenant.pk}", await token_for(admin))
    assert response.status_code == 204, response.content
    assert await close_code(socket) == 4409
    assert await me_status(token) == 401


async def test_password_reset_in_the_django_admin_revokes_every_session(connect, new_user) -> None:
    admin, tenant = await new_user(user_type="admin"), await new_user()
    tokens = [await token_for(tenant), await token_for(tenant)]
    sockets = [await connect(token) for token in tokens]

    @sync_to_async
    def reset_in_admin() -> int:
        client = Client()
        client.force_login(admin)
        response = client.post(
            reverse("admin:accounts_user_change", args=[tenant.pk]),
            {
                "email": tenant.email,
                "first_name": tenant.first_name,
                "last_name": tenant.last_name,
                "user_type": "tenant",
                "is_active": "on",
                "new_password": "reset-in-the-admin-1",
                "roles-TOTAL_FORMS": "0",
                "roles-INITIAL_FORMS": "0",
                "roles-MIN_NUM_FORMS": "0",
                "roles-MAX_NUM_FORMS": "1000",
            },
        )
        return int(response.status_code)

    assert await reset_in_admin() == 302
    for socket in sockets:
        assert await close_code(socket) == 4409
    for token in tokens:
        assert await me_status(token) == 401


async def test_sql_deactivation_ends_sessions_within_one_housekeeping_round(connect, new_user) -> None:
    tenant = await new_user()
    token = await token_for(tenant)
    socket = await connect(token)
    await run_sql("UPDATE users SET is_active = false WHERE user_id = %s", [tenant.pk])

    # PostgreSQL dropped the session at once; the Redis cache still holds it until the relay runs.
    assert not await Session.objects.filter(user=tenant).aexists()
    assert await SessionRevocation.objects.filter(session_id=session_id(token)).aexists()
    await (await get_realtime()).housekeep()  # what every process does each PMS_HOUSEKEEPING_SECONDS
    assert await close_code(socket) == 4409
    assert await me_status(token) == 401
    assert not await SessionRevocation.objects.filter(session_id=session_id(token)).aexists()


async def test_sql_password_change_and_session_delete_are_seen_too(connect, new_user) -> None:
    tenant, landlord = await new_user(), await new_user(user_type="landlord")
    tenant_token, landlord_token = await token_for(tenant), await token_for(landlord)
    tenant_socket, landlord_socket = await connect(tenant_token), await connect(landlord_token)
    await run_sql("UPDATE users SET password_hash = 'md5$x$y' WHERE user_id = %s", [tenant.pk])
    await run_sql("DELETE FROM sessions WHERE user_id = %s", [landlord.pk])
    await (await get_realtime()).housekeep()
    assert await close_code(tenant_socket) == 4409
    assert await close_code(landlord_socket) == 4409
    assert await me_status(tenant_token) == await me_status(landlord_token) == 401


async def test_other_updates_of_the_user_revoke_nothing(connect, new_user) -> None:
    tenant = await new_user()
    token = await token_for(tenant)
    socket = await connect(token)
    await run_sql("UPDATE users SET first_name = 'Renamed', is_active = true WHERE user_id = %s", [tenant.pk])
    await (await get_realtime()).housekeep()
    await assert_open(socket)
    assert await me_status(token) == 200


async def test_a_password_hash_upgrade_at_login_ends_no_session(connect, new_user, settings) -> None:
    user = await new_user()  # hashed with the suite's fast MD5 hasher
    token = await token_for(user)
    socket = await connect(token)
    settings.PASSWORD_HASHERS = [
        "django.contrib.auth.hashers.PBKDF2PasswordHasher",
        "django.contrib.auth.hashers.MD5PasswordHasher",
    ]
    await token_for(user)  # Django re-hashes the same password with the preferred hasher and saves it
    await user.arefresh_from_db()
    assert user.password.startswith("pbkdf2_sha256$")
    await (await get_realtime()).housekeep()
    await assert_open(socket)
    assert await me_status(token) == 200


def test_relay_keeps_the_rows_while_redis_is_down() -> None:
    tenant = make_user()
    session = Session.objects.create(user=tenant, token="0" * 64, expires_at=timezone.now() + timedelta(hours=1))
    User.objects.filter(pk=tenant.pk).update(is_active=False)  # QuerySet.update: no signal, no service
    original = connections.current_settings()
    connections.configure(replace(original, redis_url="redis://127.0.0.1:1/0", redis_socket_timeout=0.5))
    try:
        assert session_revocations_relay() == 0
    finally:
        connections.configure(original)
    assert list(SessionRevocation.objects.values_list("session_id", flat=True)) == [session.pk]
    assert session_revocations_relay() == 1
    assert not SessionRevocation.objects.exists()
