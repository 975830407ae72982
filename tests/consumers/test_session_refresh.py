"""Renewing a session without dropping the socket: `POST /auth/refresh`, `auth.refresh`, `session.expiring`."""

import asyncio
from datetime import timedelta
from typing import Any

import pytest
from asgiref.sync import sync_to_async
from django.test import AsyncClient
from django.utils import timezone

from apps.accounts.models import Session
from apps.accounts.services import asession_revoke
from consumers.commands.session import OTHER_USER, TOKEN_REQUIRED
from realtime import topics
from realtime.chat_schema import iso
from realtime.runtime import get_realtime
from tests.consumers.conftest import close_code, token_for
from tests.consumers.test_chat import next_event, request

pytestmark = pytest.mark.django_db(transaction=True)

REFRESH = "/api/v1/auth/refresh"
ME = "/api/v1/auth/me"


async def http(method: str, path: str, token: str) -> Any:
    client = AsyncClient()
    call = client.post if method == "POST" else client.get
    return await call(path, content_type="application/json", headers={"Authorization": f"Bearer {token}"})


async def refreshed(token: str) -> dict[str, Any]:
    response = await http("POST", REFRESH, token)
    assert response.status_code == 200, response.content
    body: dict[str, Any] = response.json()
    return body


def session_id(token: str) -> str:
    return token.split(".")[0]


async def next_frame(socket, kind: str) -> dict[str, Any]:
    while True:
        frame = await socket.receive_json_from(timeout=3)
        if frame.get("type") == kind:
            return frame


async def until(predicate: Any, timeout: float = 3.0) -> None:
    """Wait (bounded) for a control message to have been handled."""
    async with asyncio.timeout(timeout):
        while not predicate():
            await asyncio.sleep(0.01)


async def test_refresh_rotates_the_token_and_the_old_one_ends_after_the_grace(
    realtime_core, new_user, settings
) -> None:
    settings.SESSION_REFRESH_GRACE_SECONDS = 30
    user = await new_user()
    old = await token_for(user)
    before = await sync_to_async(Session.objects.get)(pk=session_id(old))

    body = await refreshed(old)
    new = body["token"]
    assert body["sessionId"] == session_id(new) != session_id(old)
    assert body["user"]["id"] == str(user.pk)
    renewed = await sync_to_async(Session.objects.get)(pk=session_id(new))
    assert body["expiresAt"] == iso(renewed.expires_at)
    assert renewed.expires_at - timezone.now() > timedelta(hours=23, minutes=59)

    # The old token still works during the grace (an in-flight request), never past it.
    cut = await sync_to_async(Session.objects.get)(pk=session_id(old))
    assert timezone.now() < cut.expires_at <= timezone.now() + timedelta(seconds=30) < before.expires_at
    assert (await http("GET", ME, old)).status_code == 200
    assert (await http("GET", ME, new)).status_code == 200
    # A retry with the old token (the first answer was lost) works but does not extend it.
    again = await refreshed(old)
    assert (await sync_to_async(Session.objects.get)(pk=session_id(old))).expires_at == cut.expires_at
    assert again["sessionId"] not in {session_id(old), session_id(new)}

    await sync_to_async(Session.objects.filter(pk=session_id(old)).update)(expires_at=timezone.now())
    assert (await http("GET", ME, old)).status_code == 401
    assert (await http("POST", REFRESH, old)).status_code == 401
    assert (await http("GET", ME, new)).status_code == 200


async def test_auth_refresh_keeps_subscriptions_and_follows_the_new_session(connect, new_user, settings) -> None:
    settings.SESSION_REFRESH_GRACE_SECONDS = 0  # the old session ends the moment it is refreshed
    user = await new_user()
    old = await token_for(user)
    renewing, left_behind = await connect(old), await connect(old)
    topic = topics.notifications(str(user.pk))
    assert (await request(renewing, {"type": "subscribe", "topic": topic}))["ok"]
    realtime = await get_realtime()
    on_renewing = next(s for s in realtime.sessions if realtime.is_subscribed(s, topic))
    on_left_behind = next(s for s in realtime.sessions if s is not on_renewing)

    body = await refreshed(old)
    reply = await request(renewing, {"type": "auth.refresh", "token": body["token"]})
    assert reply["ok"] is True, reply
    assert reply["data"] == {"sessionId": body["sessionId"], "expiresAt": body["expiresAt"]}
    assert on_renewing.identity.session_id == body["sessionId"]
    assert iso(on_renewing.identity.expires_at) == body["expiresAt"]

    # Every process was told the old session's new end: its socket expires at the next sweep (4401).
    await until(lambda: on_left_behind.identity.expires_at <= timezone.now())
    await realtime.housekeep()
    assert await close_code(left_behind) == 4401
    assert realtime.is_subscribed(on_renewing, topic)
    assert realtime.notifications is not None
    await realtime.notifications.notify(str(user.pk), type="payment", title="Rent due", message="On the 1st")
    assert (await next_event(renewing, "notification"))["data"]["title"] == "Rent due"

    # Revoking the old session no longer touches the renewed socket; revoking the new one closes it 4409.
    await asession_revoke(session_id=session_id(old))
    assert await renewing.receive_nothing(timeout=0.3)
    await asession_revoke(session_id=body["sessionId"])
    assert await close_code(renewing) == 4409


async def test_auth_refresh_refusals_never_close_the_socket(connect, new_user) -> None:
    user, other = await new_user(), await new_user()
    token = await token_for(user)
    socket, bystander = await connect(token), await connect(await token_for(other))
    realtime = await get_realtime()
    mine = next(s for s in realtime.sessions if s.identity.user_id == str(user.pk))

    cases: list[tuple[dict[str, Any], str, str | None]] = [
        ({"type": "auth.refresh"}, "bad_request", TOKEN_REQUIRED),
        ({"type": "auth.refresh", "token": 42}, "bad_request", TOKEN_REQUIRED),
        ({"type": "auth.refresh", "token": "not-a-token"}, "unauthorized", None),
        ({"type": "auth.refresh", "token": f"{session_id(token)}.wrong-secret"}, "unauthorized", None),
        ({"type": "auth.refresh", "token": await token_for(other)}, "bad_request", OTHER_USER),
    ]
    for frame, code, message in cases:
        reply = await request(socket, frame)
        assert reply["ok"] is False and reply["error"]["code"] == code, (frame, reply)
        if message is not None:
            assert reply["error"]["message"] == message
    # Without a ref: an error frame, still no close.
    await socket.send_json_to({"type": "auth.refresh", "token": "nope"})
    assert (await next_frame(socket, "error"))["error"]["code"] == "unauthorized"

    assert mine.identity.session_id == session_id(token)
    for still_open in (socket, bystander):
        await still_open.send_json_to({"type": "ping", "ref": 1})
        assert (await next_frame(still_open, "pong")) == {"type": "pong", "ref": 1}
    # The current token itself is accepted (nothing changes but the reply).
    same = await request(socket, {"type": "auth.refresh", "token": token})
    assert same["ok"] is True and same["data"]["sessionId"] == session_id(token)


async def test_session_expiring_is_sent_once_per_session(connect, new_user, tune) -> None:
    tune(session_expiring_notice_seconds=24 * 3600 + 60)  # every fresh session is within the notice
    user = await new_user()
    token = await token_for(user)
    socket = await connect(token)
    realtime = await get_realtime()
    (mine,) = list(realtime.sessions)

    await realtime.housekeep()
    notice = await next_frame(socket, "session.expiring")
    assert notice == {
        "type": "session.expiring",
        "sessionId": session_id(token),
        "expiresAt": iso(mine.identity.expires_at),
    }
    await realtime.housekeep()
    assert await socket.receive_nothing(timeout=0.3)  # once per session

    body = await refreshed(token)
    assert (await request(socket, {"type": "auth.refresh", "token": body["token"]}))["ok"]
    await realtime.housekeep()
    again = await next_frame(socket, "session.expiring")
    assert again["sessionId"] == body["sessionId"] and again["expiresAt"] == body["expiresAt"]


async def test_no_session_expiring_far_from_expiry(connect, new_user) -> None:
    socket = await connect(await token_for(await new_user()))
    await (await get_realtime()).housekeep()
    assert await socket.receive_nothing(timeout=0.3)
