"""A session or permission set loaded while it was being revoked or changed is not cached."""

from typing import Any

import pytest
import redis
from asgiref.sync import sync_to_async
from django.conf import settings
from django.db import connections as db_connections

from apps.accounts import services
from apps.accounts.services import apermissions_get, asession_authenticate, asession_login, asession_revoke
from apps.common.cache import adrop, drop_now
from realtime import keys
from realtime.errors import ProtocolError
from tests.factories import DEFAULT_PASSWORD, make_user

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(autouse=True)
async def close_orm_thread_connection() -> Any:
    yield
    # The ORM ran in asgiref's shared thread: close its connection so the test DB can be dropped.
    await sync_to_async(db_connections.close_all)()


@pytest.fixture
def sync_redis() -> Any:
    client = redis.Redis.from_url(settings.REDIS_URL, decode_responses=True)
    yield client
    client.close()


async def test_a_session_revoked_while_a_socket_loads_it_is_not_cached_back(monkeypatch, sync_redis) -> None:
    user = await sync_to_async(make_user)()
    _, token = await asession_login(email=user.email, password=DEFAULT_PASSWORD, ip="127.0.0.1", user_agent="t")
    session_key = keys.user_session(token.split(".")[0])
    sync_redis.delete(session_key)  # a cache miss: the socket reads PostgreSQL
    real_load = services._load_session

    async def load_then_revoked(session_id: str) -> Any:
        loaded = await real_load(session_id)
        await adrop([session_key])  # logout's drop lands between the read and the refill
        return loaded

    monkeypatch.setattr(services, "_load_session", load_then_revoked)
    await asession_authenticate(token)  # valid when it was read
    assert not sync_redis.exists(session_key)
    monkeypatch.setattr(services, "_load_session", real_load)
    await asession_authenticate(token)  # an ordinary miss refills
    assert sync_redis.hget(session_key, "userId") == str(user.pk)
    await asession_revoke(session_id=token.split(".")[0])
    with pytest.raises(ProtocolError):
        await asession_authenticate(token)


async def test_permissions_computed_before_a_role_change_are_not_cached(monkeypatch, sync_redis) -> None:
    user = await sync_to_async(make_user)()
    _, token = await asession_login(email=user.email, password=DEFAULT_PASSWORD, ip="127.0.0.1", user_agent="t")
    principal = await asession_authenticate(token)
    permissions_key = keys.user_permissions(str(user.pk))
    sync_redis.delete(permissions_key)
    real = services.permissions_for

    def computed_then_roles_changed(*args: Any) -> Any:
        granted = real(*args)
        drop_now([permissions_key])  # user_caches_drop after a role change commits
        return granted

    monkeypatch.setattr(services, "permissions_for", computed_then_roles_changed)
    granted = await apermissions_get(principal)
    assert granted and not sync_redis.exists(permissions_key)
    monkeypatch.setattr(services, "permissions_for", real)
    assert await apermissions_get(principal) == granted
    assert sync_redis.smembers(permissions_key) == set(granted)
