"""Hostile frames are contained per frame: text that is not Unicode, codec errors, refs the server
cannot echo, and `unsubscribe` by any spelling `subscribe` took (issue #15)."""

import json
import uuid
from typing import Any

import msgpack
import pytest
from channels.testing import WebsocketCommunicator

from consumers.commands import COMMANDS
from consumers.socket import BAD_REF
from realtime import closecodes, topics
from realtime.codecs import NOT_MSGPACK, NOT_UNICODE
from realtime.connections import get_redis
from realtime.history import RedisHistory
from tests.consumers.conftest import close_code, token_for
from tests.consumers.test_protocol_errors import expect_error, still_alive

pytestmark = pytest.mark.django_db(transaction=True)

LONE = "\ud800"
CONVERSATION = str(uuid.uuid4())
MESSAGE_ID = "6b07061f0ab2216c8d719891"

# Every command with every string field it reads (and one it does not): a lone surrogate in any
# of them is a `bad_request` answered on the frame's ref.
FIELDS: dict[str, dict[str, Any]] = {
    "subscribe": {"topic": topics.notifications(str(uuid.uuid4())), "since": "0-0-0"},
    "unsubscribe": {"topic": topics.notifications(str(uuid.uuid4()))},
    "chat.send": {"conversationId": CONVERSATION, "message": "hi", "clientMessageId": "c-1"},
    "chat.edit": {"messageId": MESSAGE_ID, "message": "hi"},
    "chat.delete": {"messageId": MESSAGE_ID},
    "chat.history": {"conversationId": CONVERSATION, "before": MESSAGE_ID},
    "chat.read": {"conversationId": CONVERSATION, "messageId": MESSAGE_ID},
    "chat.typing": {"conversationId": CONVERSATION},
    "notifications.read": {"ids": [MESSAGE_ID]},
    "presence.query": {"userIds": [str(uuid.uuid4())]},
    "auth.refresh": {"token": "a.b"},
    "ping": {},
}


def test_every_command_is_covered() -> None:
    assert set(FIELDS) == set(COMMANDS) | {"ping"}


def _poisoned(frame: dict[str, Any], field: str) -> dict[str, Any]:
    value = frame.get(field, "x")
    if isinstance(value, list):
        return {**frame, field: [f"{value[0]}{LONE}"]}
    return {**frame, field: f"{value}{LONE}"}


async def test_attachment_text_with_a_lone_surrogate_is_a_bad_request(connect, new_user) -> None:
    socket = await connect(await token_for(await new_user()))
    attachment = {"fileName": f"a{LONE}.png", "fileSize": 1, "mimeType": "image/png", "url": "https://x.test/a"}
    frame = {"type": "chat.send", "ref": 5, **FIELDS["chat.send"], "attachments": [attachment]}
    await socket.send_to(text_data=json.dumps(frame))
    error = await expect_error(socket, "bad_request", ref=5)
    assert error["message"] == NOT_UNICODE.format(field="attachments")
    await still_alive(socket)


@pytest.mark.parametrize("kind", sorted(FIELDS))
async def test_a_lone_surrogate_in_any_field_is_a_bad_request_on_its_ref(connect, new_user, kind) -> None:
    socket = await connect(await token_for(await new_user()))
    for field in [*FIELDS[kind], "type", "extra"]:
        frame = _poisoned({"type": kind, "ref": field, **FIELDS[kind]}, field)
        raw = json.dumps(frame)  # ensure_ascii: the surrogate travels as the escape \ud800
        assert "\\ud800" in raw
        await socket.send_to(text_data=raw)
        error = await expect_error(socket, "bad_request", ref=field)
        assert error["message"] == NOT_UNICODE.format(field=field)
    await still_alive(socket)


async def test_a_lone_surrogate_in_the_ref_or_a_key_is_an_error_without_ref(connect, new_user) -> None:
    socket = await connect(await token_for(await new_user()))
    await socket.send_to(text_data=json.dumps({"type": "ping", "ref": f"r{LONE}"}))
    await expect_error(socket, "bad_request")
    await socket.send_to(text_data=json.dumps({"type": "ping", "ref": "k", LONE: 1}))
    await expect_error(socket, "bad_request", ref="k")
    await socket.send_to(text_data='{"type": "ping", "ref": "low\\udc00"}')
    await expect_error(socket, "bad_request")
    await still_alive(socket)


async def test_surrogate_pairs_and_escaped_backslashes_are_ordinary_text(connect, new_user) -> None:
    socket = await connect(await token_for(await new_user()))
    await socket.send_to(text_data='{"type": "ping", "ref": "\\ud83d\\ude00"}')
    assert await socket.receive_json_from(timeout=2) == {"type": "pong", "ref": "\U0001f600"}
    await socket.send_to(text_data='{"type": "ping", "ref": "\\\\ud800"}')
    assert await socket.receive_json_from(timeout=2) == {"type": "pong", "ref": "\\ud800"}


@pytest.mark.parametrize("ref", [2**64, -(2**63) - 1, 10**30, 1.5, {"a": 1}, "x" * 65])
async def test_refs_the_server_cannot_echo_get_an_error_without_ref(connect, new_user, ref) -> None:
    socket = await connect(await token_for(await new_user()))
    await socket.send_to(text_data=json.dumps({"type": "ping", "ref": ref}))
    error = await expect_error(socket, "bad_request")
    assert error["message"] == BAD_REF
    await still_alive(socket)


async def test_the_64_bit_refs_are_echoed(connect, new_user) -> None:
    socket = await connect(await token_for(await new_user()))
    for ref in (2**64 - 1, -(2**63)):
        await socket.send_to(text_data=json.dumps({"type": "ping", "ref": ref}))
        assert await socket.receive_json_from(timeout=2) == {"type": "pong", "ref": ref}


async def msgpack_socket(connect, new_user) -> WebsocketCommunicator:
    return await connect(await token_for(await new_user()), subprotocols=["pms.v1.msgpack"])


async def msgpack_frame(socket: WebsocketCommunicator) -> dict[str, Any]:
    data = await socket.receive_from(timeout=2)
    assert isinstance(data, bytes), "pms.v1.msgpack answers in binary frames"
    frame: dict[str, Any] = msgpack.unpackb(data, raw=False)
    return frame


@pytest.mark.parametrize(
    "payload",
    [
        msgpack.packb({"type": "ping", "ref": msgpack.Timestamp(2**62, 0)}),  # past year 9999: OverflowError
        msgpack.packb({"type": "ping", "ref": msgpack.Timestamp(-(2**62), 0)}),
        msgpack.packb({"type": "chat.history", "before": msgpack.Timestamp(2**40, 999_999_999)}),
        b"\x91" * 5000 + b"\xc0",  # nested past the decoder's stack
        b"\x81\xa4type\xa3\xed\xa0\x80",  # a str holding an encoded surrogate: invalid UTF-8
        b"\x81\x91\x01\x01",  # a list as a map key
        b"\xc1",  # a reserved byte
        msgpack.packb({"type": "ping"}) + b"\x00",  # extra data
        msgpack.packb({1: 2}),
    ],
)
async def test_msgpack_codec_errors_are_bad_requests_and_the_socket_lives(connect, new_user, payload) -> None:
    socket = await msgpack_socket(connect, new_user)
    await socket.send_to(bytes_data=payload)
    frame = await msgpack_frame(socket)
    assert frame["type"] == "error" and frame["error"]["code"] == "bad_request", frame
    await socket.send_to(bytes_data=msgpack.packb({"type": "ping", "ref": 1}))
    assert await msgpack_frame(socket) == {"type": "pong", "ref": 1}


async def test_an_in_range_msgpack_timestamp_is_read_and_refused_as_a_ref(connect, new_user) -> None:
    socket = await msgpack_socket(connect, new_user)
    await socket.send_to(bytes_data=msgpack.packb({"type": "ping", "ref": msgpack.Timestamp(0, 0)}))
    frame = await msgpack_frame(socket)
    assert frame == {"type": "error", "error": {"code": "bad_request", "message": BAD_REF}}


async def test_undecodable_frames_answer_an_error_without_ref(connect, new_user) -> None:
    socket = await msgpack_socket(connect, new_user)
    await socket.send_to(text_data='{"type": "ping", "ref": 1}')  # text on the binary codec
    frame = await msgpack_frame(socket)
    assert frame["type"] == "error" and "ref" not in frame
    await socket.send_to(bytes_data=b"\xc1")
    assert (await msgpack_frame(socket))["error"]["message"] == NOT_MSGPACK


async def test_a_lone_surrogate_in_a_frame_before_auth_closes_4401(connect) -> None:
    socket = await connect()
    await socket.send_to(text_data=json.dumps({"type": "auth", "ref": 1, "token": f"a.b{LONE}"}))
    assert await close_code(socket) == closecodes.UNAUTHORIZED


async def test_a_non_bearer_authorization_header_is_ignored_and_auth_frame_works(connect, new_user) -> None:
    user = await new_user()
    # A browser behind an HTTP Basic-protected proxy sends this on the upgrade by itself.
    socket = await connect(headers=[(b"authorization", b"Basic dXNlcjpwYXNz")])
    await socket.send_json_to({"type": "auth", "ref": 1, "token": await token_for(user)})
    reply = await socket.receive_json_from(timeout=2)
    assert reply["ok"] is True and reply["data"]["userId"] == str(user.pk), reply
    await still_alive(socket)


@pytest.mark.parametrize("spelling", [str.upper, lambda name: name.replace("-", "")])
async def test_unsubscribe_by_the_spelling_subscribe_took_stops_delivery(connect, new_user, spelling) -> None:
    user = await new_user()
    socket = await connect(await token_for(user))
    canonical = topics.notifications(str(user.pk))
    family, _, entity = canonical.rpartition(":")
    odd = f"{family}:{spelling(entity)}"
    for ref, topic in ((1, odd), (2, topics.SYSTEM)):
        await socket.send_json_to({"type": "subscribe", "ref": ref, "topic": topic})
        reply = await socket.receive_json_from(timeout=2)
        assert reply["ok"] is True, reply
    assert reply["data"]["topic"] == topics.SYSTEM
    await socket.send_json_to({"type": "unsubscribe", "ref": 3, "topic": odd})
    assert await socket.receive_json_from(timeout=2) == {"type": "reply", "ref": 3, "ok": True, "data": {}}
    history = RedisHistory(get_redis())
    await history.publish(canonical, "notification", {"title": "not for you any more"})
    # Published after it on the same Redis: arriving first proves the first was not delivered.
    control = await history.publish(topics.SYSTEM, "broadcast", {"title": "control"})
    assert await socket.receive_json_from(timeout=2) == control
    await still_alive(socket)
