"""Login, me, logout over HTTP against real PostgreSQL and Redis."""

import hashlib
import json
from collections.abc import Iterator
from dataclasses import replace
from datetime import timedelta
from typing import Any

import msgpack
import pytest
import redis
from django.conf import settings
from django.test import Client
from django.utils import timezone

from apps.accounts.models import Session
from apps.accounts.services import INVALID_CREDENTIALS, TOO_MANY_LOGINS, user_role_add
from realtime import connections
from tests.factories import DEFAULT_PASSWORD, make_user

pytestmark = pytest.mark.django_db

LOGIN = "/api/v1/auth/login"
ME = "/api/v1/auth/me"
LOGOUT = "/api/v1/auth/logout"


def login(client: Client, email: str, password: str = DEFAULT_PASSWORD, **extra: Any):
    return client.post(
        LOGIN, data=json.dumps({"email": email, "password": password}), content_type="application/json", **extra
    )


def bearer(token: str) -> dict[str, Any]:
    return {"HTTP_AUTHORIZATION": f"Bearer {token}"}


@pytest.fixture
def user():
    return make_user(user_type="property_manager", roles=("accountant",))


def test_login_issues_token_stores_only_its_hash_and_caches_the_session(
    client: Client, user, clean_redis: redis.Redis
) -> None:
    response = login(client, user.email.upper(), HTTP_USER_AGENT="pytest-agent/1.0", REMOTE_ADDR="10.1.2.3")
    assert response.status_code == 200, response.content
    body = response.json()
    token = body["token"]
    session_id, _, secret = token.partition(".")
    assert session_id == body["sessionId"] and secret
    assert body["user"] == {
        "id": str(user.pk),
        "email": user.email,
        "firstName": user.first_name,
        "lastName": user.last_name,
        "userType": "property_manager",
        "roles": ["accountant"],
    }

    session = Session.objects.get(pk=session_id)
    assert session.token == hashlib.sha256(secret.encode()).hexdigest()
    assert token not in session.token and secret not in session.token
    assert session.ip_address == "10.1.2.3" and session.user_agent == "pytest-agent/1.0"
    assert timedelta(hours=23, minutes=59) < session.expires_at - timezone.now() <= timedelta(hours=24)
    user.refresh_from_db()
    assert user.last_login is not None

    cached = clean_redis.hgetall(f"user:session:{session_id}")
    assert cached["userId"] == str(user.pk) and cached["email"] == user.email
    assert cached["firstName"] == user.first_name and cached["lastName"] == user.last_name
    assert cached["userType"] == "property_manager" and cached["roles"] == "accountant"
    assert cached["tokenHash"] == session.token
    assert 0 < clean_redis.ttl(f"user:session:{session_id}") <= 24 * 3600
    for key in clean_redis.scan_iter():
        values = clean_redis.hvals(key) if clean_redis.type(key) == "hash" else []
        assert all(secret not in value for value in values), f"secret stored in clear in {key}"


def test_wrong_password_and_unknown_email_answer_identically(client: Client, user) -> None:
    wrong = login(client, user.email, "not the password")
    unknown = login(client, "nobody@example.test", "whatever")
    assert wrong.status_code == unknown.status_code == 401
    assert wrong.json() == unknown.json() == {"error": {"code": "unauthorized", "message": INVALID_CREDENTIALS}}


def test_inactive_user_cannot_log_in(client: Client, user) -> None:
    user.is_active = False
    user.save()
    assert login(client, user.email).status_code == 401


@pytest.mark.parametrize(
    ("body", "status"),
    [
        ("{not json", 400),
        ("", 422),
        ("[1, 2]", 422),
        ('"a string"', 422),
        ('{"email": "a@b.c"}', 422),
        ('{"password": "x"}', 422),
        ('{"email": 12, "password": ["x"]}', 422),
        ('{"email": "a@b.c", "password": ""}', 422),
    ],
)
def test_bad_login_bodies_get_a_clear_4xx(client: Client, body: str, status: int) -> None:
    response = client.post(LOGIN, data=body, content_type="application/json")
    assert response.status_code == status, response.content
    error = response.json()["error"]
    assert error["code"] == "bad_request" and error["message"]
    if status == 422:
        assert error["fields"] and all(f["field"] and f["reason"] for f in error["fields"])


def test_me_returns_user_and_caches_permissions(client: Client, user, clean_redis: redis.Redis) -> None:
    token = login(client, user.email).json()["token"]
    response = client.get(ME, **bearer(token))
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["user"]["id"] == str(user.pk)
    assert "properties.view" in body["permissions"] and "transactions.manage" in body["permissions"]
    cached = clean_redis.smembers(f"user:permissions:{user.pk}")
    assert cached == set(body["permissions"])
    assert 0 < clean_redis.ttl(f"user:permissions:{user.pk}") <= 3600


@pytest.mark.parametrize(
    "header",
    [None, "Bearer", "Bearer not-a-token", "Basic abc", "Bearer 00000000-0000-0000-0000-000000000000.secret"],
)
def test_me_refuses_missing_or_bad_tokens(client: Client, header: str | None) -> None:
    extra: dict[str, Any] = {"HTTP_AUTHORIZATION": header} if header else {}
    response = client.get(ME, **extra)
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "unauthorized"


def test_tampered_secret_is_refused_cached_or_not(client: Client, user, clean_redis: redis.Redis) -> None:
    token = login(client, user.email).json()["token"]
    forged = token[:-2] + ("AA" if not token.endswith("AA") else "BB")
    assert client.get(ME, **bearer(forged)).status_code == 401
    clean_redis.delete(f"user:session:{token.split('.')[0]}")
    assert client.get(ME, **bearer(forged)).status_code == 401
    assert client.get(ME, **bearer(token)).status_code == 200


def test_session_cache_miss_falls_back_to_postgres_and_recaches(client: Client, user, clean_redis: redis.Redis) -> None:
    token = login(client, user.email).json()["token"]
    key = f"user:session:{token.split('.')[0]}"
    clean_redis.delete(key)
    assert client.get(ME, **bearer(token)).status_code == 200
    assert clean_redis.hget(key, "userId") == str(user.pk)


def test_expired_token_is_refused(client: Client, user, clean_redis: redis.Redis) -> None:
    token = login(client, user.email).json()["token"]
    session_id = token.split(".")[0]
    Session.objects.filter(pk=session_id).update(expires_at=timezone.now() - timedelta(seconds=1))
    # Cached copy still says valid until its own expiresAt: make it agree, then drop it.
    clean_redis.hset(f"user:session:{session_id}", "expiresAt", (timezone.now() - timedelta(seconds=1)).isoformat())
    assert client.get(ME, **bearer(token)).status_code == 401
    clean_redis.delete(f"user:session:{session_id}")
    assert client.get(ME, **bearer(token)).status_code == 401


def test_logout_revokes_everywhere_and_announces_it(client: Client, user, clean_redis: redis.Redis) -> None:
    token = login(client, user.email).json()["token"]
    session_id = token.split(".")[0]
    other_device = Client()
    assert other_device.get(ME, **bearer(token)).status_code == 200

    raw = redis.Redis.from_url(settings.REDIS_URL)
    pubsub = raw.pubsub()
    pubsub.subscribe("pms:control")
    assert pubsub.get_message(timeout=1)["type"] == "subscribe"
    assert client.post(LOGOUT, **bearer(token)).status_code == 204

    assert not Session.objects.filter(pk=session_id).exists()
    assert not clean_redis.exists(f"user:session:{session_id}")
    assert other_device.get(ME, **bearer(token)).status_code == 401
    assert client.post(LOGOUT, **bearer(token)).status_code == 401
    message = pubsub.get_message(timeout=2)
    pubsub.close()
    raw.close()
    assert message is not None
    assert msgpack.unpackb(message["data"], raw=False) == {"kind": "session.revoked", "sessionId": session_id}


def test_role_change_drops_permission_and_session_caches(
    client: Client, user, clean_redis: redis.Redis, django_capture_on_commit_callbacks
) -> None:
    token = login(client, user.email).json()["token"]
    session_key = f"user:session:{token.split('.')[0]}"
    assert "maintenance.work" not in client.get(ME, **bearer(token)).json()["permissions"]
    assert clean_redis.exists(f"user:permissions:{user.pk}") and clean_redis.exists(session_key)

    with django_capture_on_commit_callbacks(execute=True):
        # Through the service (issue 10: a bare ORM save of a role no longer drops caches).
        user_role_add(user_id=user.pk, role_name="maintenance_staff")
    assert not clean_redis.exists(f"user:permissions:{user.pk}")
    assert not clean_redis.exists(session_key)

    body = client.get(ME, **bearer(token)).json()
    assert "maintenance.work" in body["permissions"]
    assert sorted(body["user"]["roles"]) == ["accountant", "maintenance_staff"]


def test_login_rate_limit_is_shared_by_clients_and_answers_429(client: Client, user, clean_redis: redis.Redis) -> None:
    first, second = Client(), Client()
    for attempt in range(5):
        response = login(first if attempt % 2 else second, user.email, "wrong", REMOTE_ADDR="10.9.9.9")
        assert response.status_code == 401
    key = "auth:ratelimit:login:10.9.9.9"
    assert clean_redis.zcard(key) == 5
    assert 0 < clean_redis.pttl(key) <= 600_000

    refused = login(second, user.email, REMOTE_ADDR="10.9.9.9")
    assert refused.status_code == 429
    assert refused.json()["error"]["code"] == "rate_limited"
    assert refused.json()["error"]["message"] == TOO_MANY_LOGINS
    assert 0 < int(refused["Retry-After"]) <= 600
    assert refused.json()["error"]["retryAfter"] == int(refused["Retry-After"])
    # Another address is not affected.
    assert login(first, user.email, REMOTE_ADDR="10.9.9.10").status_code == 200


@pytest.fixture
def redis_down() -> Iterator[None]:
    """Point the realtime core at a port where no Redis listens."""
    original = connections.current_settings()
    connections.configure(replace(original, redis_url="redis://127.0.0.1:1/0", redis_socket_timeout=0.5))
    yield
    connections.configure(original)


def test_login_and_me_work_from_postgres_while_redis_is_down(client: Client, user, redis_down: None) -> None:
    response = login(client, user.email)
    assert response.status_code == 200
    me = client.get(ME, **bearer(response.json()["token"]))
    assert me.status_code == 200 and me.json()["user"]["email"] == user.email


def test_api_rate_limit_per_user_and_endpoint(client: Client, user, clean_redis: redis.Redis, settings) -> None:
    settings.API_RATE_LIMIT = 3
    token = login(client, user.email).json()["token"]
    for _ in range(3):
        assert client.get(ME, **bearer(token)).status_code == 200
    refused = client.get(ME, **bearer(token))
    assert refused.status_code == 429 and refused.json()["error"]["code"] == "rate_limited"
    assert 0 < int(refused["Retry-After"]) <= 60
    keys = list(clean_redis.scan_iter(f"ratelimit:api:{user.pk}:*"))
    assert keys == [f"ratelimit:api:{user.pk}:GET:api/v1/auth/me"]
    assert 0 < clean_redis.pttl(keys[0]) <= 60_000
    # Another endpoint has its own budget.
    assert client.post(LOGOUT, **bearer(token)).status_code == 204
