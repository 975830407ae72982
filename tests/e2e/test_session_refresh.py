"""End-to-end: a socket renews its session across two uvicorn processes and keeps receiving past the old expiry.

Sessions last a few seconds here (PMS_SESSION_TTL_SECONDS) and housekeeping runs every
half second, so the real expiry sweep and `session.expiring` notice run in the test's time.
"""

import asyncio
import json
import urllib.error
import urllib.request
import uuid
from datetime import UTC, datetime
from typing import Any

import pytest

from realtime import topics
from tests.e2e.conftest import (
    HOUSEKEEPING_SECONDS,
    WAIT,
    Client,
    ClientFactory,
    ServerFactory,
    ServerProcess,
    login,
)
from tests.factories import make_conversation, make_user

pytestmark = pytest.mark.django_db(transaction=True)

SESSION_TTL_SECONDS = 6
NOTICE_SECONDS = 3
GRACE_SECONDS = 1


@pytest.fixture
def server_env(server_env: dict[str, str]) -> dict[str, str]:
    """Short sessions, an early notice and a short grace on every server process."""
    return {
        **server_env,
        "PMS_SESSION_TTL_SECONDS": str(SESSION_TTL_SECONDS),
        "PMS_SESSION_EXPIRING_NOTICE_SECONDS": str(NOTICE_SECONDS),
        "PMS_SESSION_REFRESH_GRACE_SECONDS": str(GRACE_SECONDS),
    }


def http(server: ServerProcess, method: str, path: str, token: str, body: Any = None) -> tuple[int, Any]:
    """One real HTTP call; (status, parsed body)."""
    request = urllib.request.Request(  # noqa: S310
        f"{server.http_url}/api/v1{path}",
        data=json.dumps(body).encode() if body is not None else None,
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
        method=method,
    )
    try:
        with urllib.request.urlopen(request, timeout=WAIT) as response:  # noqa: S310
            return response.status, json.loads(response.read() or b"null")
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read() or b"null")


def moment(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


async def sleep_until(when: datetime) -> None:
    await asyncio.sleep(max(0.0, (when - datetime.now(UTC)).total_seconds()))


async def next_frame(client: Client, kind: str, timeout: float) -> dict[str, Any]:
    """The first frame of type `kind` (kept or new); others are kept."""
    for index, frame in enumerate(client.kept):
        if frame.get("type") == kind:
            return client.kept.pop(index)
    async with asyncio.timeout(timeout):
        while True:
            frame = await client.recv(timeout)
            if frame.get("type") == kind:
                return frame
            client.kept.append(frame)


@pytest.fixture
def people(transactional_db: None) -> tuple[Any, Any, Any]:
    """A tenant and a manager sharing a conversation (committed, sync, before the servers start)."""
    tenant = make_user()
    manager = make_user(user_type="property_manager")
    return tenant, manager, make_conversation(participants=(tenant, manager))


async def test_socket_renews_its_session_and_keeps_receiving_past_the_old_expiry(
    people: tuple[Any, Any, Any], start_servers: ServerFactory, open_client: ClientFactory
) -> None:
    tenant, manager, conversation = people
    topic = topics.chat_messages(str(conversation.pk))
    a, b = start_servers(2)

    first = await asyncio.to_thread(login, a, tenant.email)
    renewing: Client = await open_client(b, first["token"])  # on the other process than the refresh
    left_behind: Client = await open_client(b, first["token"])
    await renewing.ok({"type": "subscribe", "topic": topic})

    # A few seconds before the end: the server says so, once.
    notice = await next_frame(renewing, "session.expiring", SESSION_TTL_SECONDS + WAIT)
    assert notice == {"type": "session.expiring", "sessionId": first["sessionId"], "expiresAt": first["expiresAt"]}

    status, second = await asyncio.to_thread(http, a, "POST", "/auth/refresh", first["token"])
    assert status == 200, second
    assert second["sessionId"] != first["sessionId"] and moment(second["expiresAt"]) > moment(first["expiresAt"])
    data = await renewing.ok({"type": "auth.refresh", "token": second["token"]})
    assert data == {"sessionId": second["sessionId"], "expiresAt": second["expiresAt"]}

    # Past the old session's own expiry (and a sweep or two): the renewed socket is still served.
    await sleep_until(moment(first["expiresAt"]))
    await asyncio.sleep(3 * HOUSEKEEPING_SECONDS)
    assert await left_behind.close_code() == 4401  # it never renewed: closed at the end of the grace
    assert (await asyncio.to_thread(http, a, "GET", "/auth/me", first["token"]))[0] == 401
    assert (await asyncio.to_thread(http, b, "GET", "/auth/me", second["token"]))[0] == 200

    manager_token = (await asyncio.to_thread(login, a, manager.email))["token"]
    status, sent = await asyncio.to_thread(
        http,
        a,
        "POST",
        f"/conversations/{conversation.pk}/messages",
        manager_token,
        {"message": "Still there?", "clientMessageId": uuid.uuid4().hex},
    )
    assert status == 201, sent
    event = await renewing.next_event(lambda f: f["event"] == "chat.message" and f["data"]["id"] == sent["id"])
    assert event["topic"] == topic
    assert renewing.ws.state.name == "OPEN"

    # The renewed session gets its own notice, and the sweep then follows the new expiry (4401).
    again = await next_frame(renewing, "session.expiring", SESSION_TTL_SECONDS + WAIT)
    assert again["sessionId"] == second["sessionId"]
    await sleep_until(moment(second["expiresAt"]))
    assert await renewing.close_code() == 4401
