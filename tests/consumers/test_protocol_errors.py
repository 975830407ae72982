"""Every error code and close code of the protocol, and that bad input never harms the socket or others."""

import asyncio
import json
import uuid

import pytest
from asgiref.sync import sync_to_async

from consumers.commands.subscriptions import FORBIDDEN_TOPIC, MALFORMED_TOPIC
from consumers.socket import ALREADY_AUTHENTICATED, TOO_MANY_COMMANDS
from realtime import closecodes, topics
from tests.consumers.conftest import close_code, token_for

pytestmark = pytest.mark.django_db(transaction=True)


async def expect_error(socket, code: str, ref=None) -> dict:
    frame = await socket.receive_json_from(timeout=2)
    if ref is None:
        assert frame["type"] == "error", frame
    else:
        assert frame["type"] == "reply" and frame["ref"] == ref and frame["ok"] is False, frame
    assert frame["error"]["code"] == code, frame
    assert frame["error"]["message"]
    return frame["error"]


async def still_alive(socket) -> None:
    await socket.send_json_to({"type": "ping", "ref": "alive"})
    assert await socket.receive_json_from(timeout=2) == {"type": "pong", "ref": "alive"}


async def test_unknown_subprotocol_only_is_refused_at_handshake(connect) -> None:
    await connect(subprotocols=["chat.v9"], expect_accept=False)


async def test_known_subprotocol_among_unknown_is_chosen(connect, new_user) -> None:
    user = await new_user()
    socket = await connect(await token_for(user), subprotocols=["x.unknown", "pms.v1.json"])
    await still_alive(socket)


async def test_foreign_origin_is_refused_and_allowed_origin_accepted(connect) -> None:
    await connect(headers=[(b"origin", b"https://evil.example")], expect_accept=False)
    await connect(headers=[(b"origin", b"http://localhost:8000")])


async def test_bad_header_token_closes_4401(connect) -> None:
    socket = await connect(f"{uuid.uuid4()}.forged")
    assert await close_code(socket) == closecodes.UNAUTHORIZED


async def test_frame_before_auth_closes_4401(connect) -> None:
    socket = await connect()
    await socket.send_json_to({"type": "ping"})
    assert await close_code(socket) == closecodes.UNAUTHORIZED


async def test_no_auth_in_time_closes_4401(connect, tune) -> None:
    tune(auth_timeout_seconds=0.3)
    socket = await connect()
    assert await close_code(socket, timeout=3) == closecodes.UNAUTHORIZED


async def test_bad_auth_frame_replies_unauthorized_then_closes(connect) -> None:
    socket = await connect()
    await socket.send_json_to({"type": "auth", "ref": 1, "token": "nope"})
    await expect_error(socket, "unauthorized", ref=1)
    assert await close_code(socket) == closecodes.UNAUTHORIZED


async def test_second_auth_is_a_bad_request(connect, new_user) -> None:
    user = await new_user()
    token = await token_for(user)
    socket = await connect(token)
    await socket.send_json_to({"type": "auth", "ref": 2, "token": token})
    error = await expect_error(socket, "bad_request", ref=2)
    assert error["message"] == ALREADY_AUTHENTICATED
    await still_alive(socket)


@pytest.mark.parametrize(
    "raw",
    [
        "{not json",
        "[1, 2]",
        "42",
        '"text"',
        '{"no_type": 1}',
        '{"type": 7}',
        '{"type": "nope"}',
        '{"type": "ping", "ref": [1]}',
        '{"type": "ping", "ref": true}',
        '{"type": "subscribe", "topic": 5}',
    ],
)
async def test_bad_frames_get_an_error_and_the_socket_survives(connect, new_user, raw: str) -> None:
    user = await new_user()
    socket = await connect(await token_for(user))
    await socket.send_to(text_data=raw)
    await expect_error(socket, "bad_request")
    await still_alive(socket)


async def test_unknown_type_with_ref_gets_one_reply(connect, new_user) -> None:
    user = await new_user()
    socket = await connect(await token_for(user))
    await socket.send_json_to({"type": "teleport", "ref": "r1"})
    await expect_error(socket, "bad_request", ref="r1")
    assert await socket.receive_nothing(timeout=0.3)


async def test_topic_errors_malformed_forbidden_and_unknown_ids(connect, new_user) -> None:
    user, other = await new_user(), await new_user()
    socket = await connect(await token_for(user))
    await socket.send_json_to({"type": "subscribe", "ref": 1, "topic": "chat:messages:not-a-uuid"})
    assert (await expect_error(socket, "bad_request", ref=1))["message"] == MALFORMED_TOPIC
    await socket.send_json_to({"type": "subscribe", "ref": 2, "topic": topics.notifications(str(other.pk))})
    assert (await expect_error(socket, "forbidden", ref=2))["message"] == FORBIDDEN_TOPIC
    await socket.send_json_to({"type": "subscribe", "ref": 3, "topic": topics.chat_messages(str(uuid.uuid4()))})
    await expect_error(socket, "forbidden", ref=3)
    await still_alive(socket)


async def test_oversize_frames_error_twice_then_close_1009(connect, new_user) -> None:
    user = await new_user()
    socket = await connect(await token_for(user))
    big = json.dumps({"type": "ping", "pad": "x" * (64 * 1024)})
    for _ in range(2):
        await socket.send_to(text_data=big)
        await expect_error(socket, "too_large")
    await still_alive(socket)
    await socket.send_to(text_data=big)
    assert await close_code(socket) == closecodes.MESSAGE_TOO_BIG


async def test_frame_over_one_mebibyte_closes_1009_at_once(connect, new_user) -> None:
    user = await new_user()
    socket = await connect(await token_for(user))
    await socket.send_to(text_data="x" * (1024 * 1024 + 1))
    assert await close_code(socket) == closecodes.MESSAGE_TOO_BIG


async def test_flood_is_rate_limited_then_closed_4429(connect, new_user, tune) -> None:
    tune(rate_limited_close_after_seconds=0.5)
    user = await new_user()
    socket = await connect(await token_for(user))
    bystander = await connect(await token_for(await new_user()))
    for index in range(41):
        await socket.send_json_to({"type": "ping", "ref": index})
    replies = [await socket.receive_json_from(timeout=2) for _ in range(41)]
    assert [r["type"] for r in replies[:40]] == ["pong"] * 40
    assert replies[40]["ok"] is False and replies[40]["error"]["code"] == "rate_limited"
    assert replies[40]["error"]["message"] == TOO_MANY_COMMANDS and replies[40]["error"]["retryAfter"] >= 1
    await still_alive(bystander)
    # Keep flooding at ~50/s (over the 20/s limit) until the server gives up on it.
    code = None
    for _ in range(40):
        for _ in range(5):
            await socket.send_json_to({"type": "ping"})
        await asyncio.sleep(0.1)
        while not await socket.receive_nothing(timeout=0.01):
            output = await socket.receive_output()
            if output["type"] == "websocket.close":
                code = output.get("code")
                break
        if code is not None:
            break
    assert code == closecodes.RATE_LIMITED
    await still_alive(bystander)


async def test_subscription_cap_answers_conflict(connect, new_user, tune) -> None:
    tune(max_subscriptions=2)
    user = await new_user()
    socket = await connect(await token_for(user))
    for ref, topic in enumerate([topics.notifications(str(user.pk)), topics.SYSTEM_BROADCASTS]):
        await socket.send_json_to({"type": "subscribe", "ref": ref, "topic": topic})
        assert (await socket.receive_json_from(timeout=2))["ok"] is True
    # Re-subscribing to a held topic is not a new subscription.
    await socket.send_json_to({"type": "subscribe", "ref": "again", "topic": topics.SYSTEM_BROADCASTS})
    assert (await socket.receive_json_from(timeout=2))["ok"] is True
    from tests.factories import make_conversation

    conversation = await sync_to_async(make_conversation)(participants=(user,))
    await socket.send_json_to({"type": "subscribe", "ref": 9, "topic": topics.chat_messages(str(conversation.pk))})
    error = await expect_error(socket, "conflict", ref=9)
    assert "retryAfter" not in error
    await socket.send_json_to({"type": "unsubscribe", "ref": 10, "topic": topics.SYSTEM_BROADCASTS})
    assert (await socket.receive_json_from(timeout=2)) == {"type": "reply", "ref": 10, "ok": True, "data": {}}
    await socket.send_json_to({"type": "subscribe", "ref": 11, "topic": topics.chat_messages(str(conversation.pk))})
    assert (await socket.receive_json_from(timeout=2))["ok"] is True


async def test_logout_elsewhere_closes_4409(connect, new_user) -> None:
    from apps.accounts.services import asession_revoke

    user = await new_user()
    token = await token_for(user)
    socket = await connect(token)
    other_session = await connect(await token_for(user))
    await still_alive(socket)
    await asession_revoke(session_id=token.split(".")[0])
    assert await close_code(socket) == closecodes.SESSION_REVOKED
    await still_alive(other_session)
