"""System broadcasts: admins send them over HTTP or from the Django admin; every subscribed socket gets them."""

import json
from collections.abc import Iterator
from dataclasses import replace
from typing import Any

import msgpack
import pytest
import redis
from django.conf import settings
from django.test import AsyncClient, Client
from django.urls import reverse

from apps.messaging.admin import BROADCAST_SENT
from apps.messaging.api import ADMINS_ONLY
from apps.messaging.services import BROADCAST_UNAVAILABLE
from realtime import connections, keys, topics
from realtime.connections import get_redis
from realtime.history import RedisHistory
from tests.consumers.conftest import connect, new_user, realtime_core, token_for  # noqa: F401  (fixtures)
from tests.factories import DEFAULT_PASSWORD, make_user

BROADCASTS = "/api/v1/system/broadcasts"
DATA_KEYS = {"id", "title", "message", "priority", "sentBy", "sentAt"}


def bearer(token: str) -> dict[str, Any]:
    return {"HTTP_AUTHORIZATION": f"Bearer {token}"}


def login(client: Client, user: Any) -> str:
    response = client.post(
        "/api/v1/auth/login",
        data=json.dumps({"email": user.email, "password": DEFAULT_PASSWORD}),
        content_type="application/json",
    )
    assert response.status_code == 200, response.content
    return str(response.json()["token"])


def post(client: Client, body: Any, token: str | None = None) -> Any:
    headers: dict[str, Any] = bearer(token) if token else {}
    return client.post(BROADCASTS, data=json.dumps(body), content_type="application/json", **headers)


def stored_broadcasts() -> list[dict[str, Any]]:
    """The frames held in `system:broadcasts`'s history (this run's Redis DB), oldest first."""
    client = redis.Redis.from_url(settings.REDIS_URL)
    try:
        entries: list[tuple[bytes, dict[bytes, bytes]]] = client.xrange(  # type: ignore[assignment]  # a bytes client
            keys.topic_history(topics.SYSTEM_BROADCASTS)
        )
    finally:
        client.close()
    return [msgpack.unpackb(fields[b"f"], raw=False) for _, fields in entries]


async def receive_broadcast(socket: Any, broadcast_id: str) -> dict[str, Any]:
    """The frame of one broadcast: pub/sub spans every test run on this Redis, so skip strangers' broadcasts."""
    while True:
        frame: dict[str, Any] = await socket.receive_json_from(timeout=2)
        if frame.get("type") == "event" and frame["data"].get("id") == broadcast_id:
            return frame


# --- over HTTP ---------------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
async def test_admin_broadcast_reaches_subscribed_sockets_and_is_recoverable(connect, new_user) -> None:  # noqa: F811
    admin, tenant = await new_user(user_type="admin"), await new_user(user_type="tenant")
    socket = await connect(await token_for(tenant))
    await socket.send_json_to({"type": "subscribe", "ref": 1, "topic": topics.SYSTEM_BROADCASTS})
    position = (await socket.receive_json_from(timeout=2))["data"]["offset"]

    body = {"title": "  Water shut-off  ", "message": "Tomorrow 9-11 am in building B.", "priority": "high"}
    response = await AsyncClient().post(
        BROADCASTS,
        data=json.dumps(body),
        content_type="application/json",
        headers={"Authorization": f"Bearer {await token_for(admin)}"},
    )
    assert response.status_code == 201, response.content
    sent = response.json()
    assert set(sent) == DATA_KEYS | {"offset"}
    assert sent["title"] == "Water shut-off" and sent["message"] == body["message"] and sent["priority"] == "high"
    assert sent["sentBy"] == str(admin.pk) and sent["sentAt"].endswith("Z") and sent["offset"]

    frame = await receive_broadcast(socket, sent["id"])
    assert frame == {
        "type": "event",
        "topic": "system:broadcasts",
        "event": "broadcast",
        "offset": sent["offset"],
        "ts": sent["sentAt"],
        "data": {key: sent[key] for key in DATA_KEYS},
    }

    recovered, missed = await RedisHistory(get_redis()).since(topics.SYSTEM_BROADCASTS, position)
    assert recovered is True and missed == [frame]


@pytest.mark.django_db
def test_priority_defaults_to_medium(client: Client) -> None:
    token = login(client, make_user(user_type="admin"))
    response = post(client, {"title": "Hello", "message": "Welcome to the new portal."}, token)
    assert response.status_code == 201, response.content
    assert response.json()["priority"] == "medium"
    assert [frame["data"]["id"] for frame in stored_broadcasts()] == [response.json()["id"]]


@pytest.mark.django_db
@pytest.mark.parametrize("user_type", ["tenant", "landlord", "property_manager"])
def test_non_admins_are_forbidden_and_nothing_is_sent(client: Client, user_type: str) -> None:
    token = login(client, make_user(user_type=user_type))
    response = post(client, {"title": "Hi", "message": "Everyone"}, token)
    assert response.status_code == 403
    assert response.json() == {"error": {"code": "forbidden", "message": ADMINS_ONLY}}
    assert stored_broadcasts() == []


@pytest.mark.django_db
@pytest.mark.parametrize("headers", [{}, bearer("not-a-token"), {"HTTP_AUTHORIZATION": "Basic abc"}])
def test_unauthenticated_callers_get_401(client: Client, headers: dict[str, Any]) -> None:
    response = client.post(
        BROADCASTS, data=json.dumps({"title": "Hi", "message": "x"}), content_type="application/json", **headers
    )
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "unauthorized"
    assert stored_broadcasts() == []


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("body", "bad_field"),
    [
        ({"message": "no title"}, "title"),
        ({"title": "no message"}, "message"),
        ({"title": "", "message": "x"}, "title"),
        ({"title": "   ", "message": "x"}, "title"),
        ({"title": "x" * 201, "message": "x"}, "title"),
        ({"title": "x", "message": "x" * 5001}, "message"),
        ({"title": "x", "message": "x", "priority": "urgent"}, "priority"),
        ({"title": "x", "message": "x", "priority": None}, "priority"),
        ({"title": 12, "message": "x"}, "title"),
    ],
)
def test_bad_bodies_get_422_naming_the_field(client: Client, body: dict[str, Any], bad_field: str) -> None:
    token = login(client, make_user(user_type="admin"))
    response = post(client, body, token)
    assert response.status_code == 422, response.content
    error = response.json()["error"]
    assert error["code"] == "bad_request"
    assert [field["field"].split(".")[-1] for field in error["fields"]] == [bad_field]
    assert stored_broadcasts() == []


@pytest.mark.django_db
def test_limits_are_inclusive(client: Client) -> None:
    token = login(client, make_user(user_type="admin"))
    response = post(client, {"title": "t" * 200, "message": "m" * 5000, "priority": "low"}, token)
    assert response.status_code == 201, response.content


@pytest.fixture
def redis_down() -> Iterator[None]:
    original = connections.current_settings()
    connections.configure(replace(original, redis_url="redis://127.0.0.1:1/0", redis_socket_timeout=0.5))
    yield
    connections.configure(original)


@pytest.mark.django_db
def test_redis_down_answers_503_unavailable(client: Client, request: pytest.FixtureRequest) -> None:
    token = login(client, make_user(user_type="admin"))
    request.getfixturevalue("redis_down")  # the token still authenticates: PostgreSQL backs the session cache
    response = post(client, {"title": "Hi", "message": "Everyone"}, token)
    assert response.status_code == 503
    assert response.json() == {"error": {"code": "unavailable", "message": BROADCAST_UNAVAILABLE}}


# --- from the Django admin ---------------------------------------------------------------


@pytest.fixture
def admin_user() -> Any:
    return make_user(user_type="admin")


@pytest.fixture
def admin_client(admin_user: Any) -> Client:
    client = Client()
    client.force_login(admin_user)
    return client


BROADCAST_PAGE = "admin:messaging_conversation_broadcast"


@pytest.mark.django_db
def test_admin_conversation_list_links_to_the_broadcast_form(admin_client: Client) -> None:
    changelist = admin_client.get(reverse("admin:messaging_conversation_changelist"))
    assert changelist.status_code == 200
    assert reverse(BROADCAST_PAGE).encode() in changelist.content

    page = admin_client.get(reverse(BROADCAST_PAGE))
    assert page.status_code == 200
    for name in (b'name="title"', b'name="message"', b'name="priority"', b"csrfmiddlewaretoken"):
        assert name in page.content


@pytest.mark.django_db
def test_admin_form_sends_the_broadcast_and_says_so(admin_client: Client, admin_user: Any) -> None:
    response = admin_client.post(
        reverse(BROADCAST_PAGE),
        {"title": "Elevator repair", "message": "Use the stairs today.", "priority": "low"},
        follow=True,
    )
    assert response.status_code == 200
    assert response.redirect_chain[-1][0] == reverse("admin:messaging_conversation_changelist")
    [frame] = stored_broadcasts()
    assert frame["event"] == "broadcast" and frame["topic"] == "system:broadcasts"
    assert {key: frame["data"][key] for key in ("title", "message", "priority", "sentBy")} == {
        "title": "Elevator repair",
        "message": "Use the stairs today.",
        "priority": "low",
        "sentBy": str(admin_user.pk),
    }
    [message] = [str(m) for m in response.context["messages"]]
    assert message.startswith(BROADCAST_SENT.split("{")[0]) and "Elevator repair" in message


@pytest.mark.django_db
def test_admin_form_with_errors_sends_nothing(admin_client: Client) -> None:
    response = admin_client.post(reverse(BROADCAST_PAGE), {"title": "", "message": "x", "priority": "urgent"})
    assert response.status_code == 200
    assert set(response.context["form"].errors) == {"title", "priority"}
    assert stored_broadcasts() == []


@pytest.mark.django_db
def test_admin_form_reports_redis_down(admin_client: Client, redis_down: None) -> None:
    response = admin_client.post(reverse(BROADCAST_PAGE), {"title": "Hi", "message": "x", "priority": "medium"})
    assert response.status_code == 200
    assert BROADCAST_UNAVAILABLE in response.content.decode()


@pytest.mark.django_db
def test_non_admins_cannot_open_the_broadcast_form() -> None:
    client = Client()
    client.force_login(make_user(user_type="property_manager"))
    response = client.get(reverse(BROADCAST_PAGE))
    assert response.status_code == 302 and "/login/" in response["Location"]
