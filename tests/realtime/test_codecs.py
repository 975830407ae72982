"""Frame codecs (both subprotocols), negotiation, and normalizing payloads from any publisher."""

import base64
import json
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any
from uuid import UUID

import msgpack
import pytest

from realtime import codecs
from realtime.codecs import (
    JSON_CODEC,
    MSGPACK_CODEC,
    FrameCodec,
    encode_once,
    negotiate,
    pack_control,
    unpack_control,
)
from realtime.errors import BAD_REQUEST, ProtocolError
from realtime.events import MESSAGE_EVENT, make_event, normalize_external

CODECS = [JSON_CODEC, MSGPACK_CODEC]
TOPIC = "chat:messages:6f1c1f0e-8a43-4c5e-9a40-3c8f0b0f6a11"
USER_ID = UUID("0b7e8c0e-2f39-4d55-b2c4-5b7d9a1f3e20")


class FakeObjectId:
    def __init__(self, hex_id: str) -> None:
        self._hex = hex_id

    def __str__(self) -> str:
        return self._hex


def _roundtrip(codec: FrameCodec, frame: dict[str, Any]) -> dict[str, Any]:
    return codec.decode(codec.encode(frame))


@pytest.mark.parametrize("codec", CODECS, ids=lambda c: c.name)
def test_plain_frame_round_trips_unchanged(codec: FrameCodec) -> None:
    frame = {
        "type": "chat.send",
        "ref": 7,
        "conversationId": str(USER_ID),
        "message": "héllo ✓ 👋",
        "attachments": [{"url": "https://x/y", "size": 12}],
        "flag": True,
        "none": None,
        "ratio": 0.5,
    }
    assert _roundtrip(codec, frame) == frame


@pytest.mark.parametrize("codec", CODECS, ids=lambda c: c.name)
def test_non_wire_values_are_sent_as_strings(codec: FrameCodec) -> None:
    plus_two = timezone(timedelta(hours=2))
    frame = {
        "at": datetime(2025, 1, 2, 3, 4, 5, 123000, tzinfo=UTC),
        "local": datetime(2025, 1, 2, 5, 4, 5, tzinfo=plus_two),
        "naive": datetime(2025, 1, 2, 3, 4, 5),  # noqa: DTZ001 - taken as UTC on purpose
        "rent": Decimal("1250.50"),
        "userId": USER_ID,
        "messageId": FakeObjectId("65a1b2c3d4e5f60718293a4b"),
    }
    assert _roundtrip(codec, frame) == {
        "at": "2025-01-02T03:04:05.123000Z",
        "local": "2025-01-02T03:04:05Z",
        "naive": "2025-01-02T03:04:05Z",
        "rent": "1250.50",
        "userId": str(USER_ID),
        "messageId": "65a1b2c3d4e5f60718293a4b",
    }


def test_msgpack_encoding_has_no_extension_types() -> None:
    encoded = MSGPACK_CODEC.encode({"at": datetime(2025, 1, 2, tzinfo=UTC)})
    # Strict decoding refuses ext types: a Timestamp would fail here.
    assert msgpack.unpackb(encoded, raw=False, ext_hook=_refuse_ext) == {"at": "2025-01-02T00:00:00Z"}


def _refuse_ext(code: int, data: bytes) -> Any:
    raise AssertionError(f"ext type {code} on the wire")


def test_bytes_are_bin_in_msgpack_and_base64_in_json() -> None:
    frame = {"blob": b"\x00\xffdata"}
    assert MSGPACK_CODEC.decode(MSGPACK_CODEC.encode(frame)) == frame
    assert JSON_CODEC.decode(JSON_CODEC.encode(frame)) == {"blob": base64.b64encode(b"\x00\xffdata").decode()}


def test_json_is_compact_utf8_text() -> None:
    assert JSON_CODEC.encode({"a": "é", "b": [1, 2]}) == '{"a":"é","b":[1,2]}'


def test_json_sends_non_finite_floats_as_null() -> None:
    assert json.loads(JSON_CODEC.encode({"x": float("nan"), "y": [float("inf"), 1.5]})) == {"x": None, "y": [None, 1.5]}


def test_asgi_message_uses_text_for_json_and_bytes_for_msgpack() -> None:
    frame = {"type": "pong"}
    assert JSON_CODEC.asgi_message(frame) == {"type": "websocket.send", "text": '{"type":"pong"}'}
    assert MSGPACK_CODEC.asgi_message(frame) == {"type": "websocket.send", "bytes": msgpack.packb(frame)}


def test_encode_once_builds_one_message_per_codec() -> None:
    frame = make_event(TOPIC, "chat.message", {"id": "1"}, offset="o", ts="2025-01-01T00:00:00Z")
    messages = encode_once(frame)
    assert set(messages) == {codecs.JSON, codecs.MSGPACK}
    assert json.loads(messages[codecs.JSON]["text"]) == frame
    assert msgpack.unpackb(messages[codecs.MSGPACK]["bytes"]) == frame
    assert set(encode_once(frame, [codecs.MSGPACK])) == {codecs.MSGPACK}


@pytest.mark.parametrize(
    ("codec", "data", "message"),
    [
        (JSON_CODEC, "not json", codecs.NOT_JSON),
        (JSON_CODEC, '{"type": "ping"', codecs.NOT_JSON),
        (JSON_CODEC, '{"x": NaN}', codecs.NOT_JSON),
        (JSON_CODEC, "[1, 2]", codecs.NOT_A_MAP),
        (JSON_CODEC, "7", codecs.NOT_A_MAP),
        (JSON_CODEC, b'{"type": "ping"}', codecs.WANTS_TEXT),
        (JSON_CODEC, b"\xff\xfe", codecs.WANTS_TEXT),
        (MSGPACK_CODEC, '{"type": "ping"}', codecs.WANTS_BINARY),
        (MSGPACK_CODEC, msgpack.packb(5), codecs.NOT_A_MAP),
        (MSGPACK_CODEC, msgpack.packb([1, 2]), codecs.NOT_A_MAP),
        (MSGPACK_CODEC, b"\xc1", codecs.NOT_MSGPACK),
        (MSGPACK_CODEC, b"\x81\xa4type", codecs.NOT_MSGPACK),
        (MSGPACK_CODEC, msgpack.packb({"a": 1}) + b"\x00", codecs.NOT_MSGPACK),
        (MSGPACK_CODEC, b"\x81\xa1a\xa2\xff\xfe", codecs.NOT_MSGPACK),  # invalid UTF-8 in a str
        (MSGPACK_CODEC, b"\x81\x01\x02", codecs.NOT_MSGPACK),  # integer key
        (MSGPACK_CODEC, msgpack.packb({"a": msgpack.ExtType(5, b"x")}), codecs.NOT_MSGPACK),
    ],
)
def test_bad_frames_are_bad_request(codec: FrameCodec, data: str | bytes, message: str) -> None:
    with pytest.raises(ProtocolError) as caught:
        codec.decode(data)
    assert caught.value.code == BAD_REQUEST
    assert caught.value.message == message


@pytest.mark.parametrize(
    ("offered", "expected"),
    [
        ([], JSON_CODEC),
        (["pms.v1.json"], JSON_CODEC),
        (["pms.v1.msgpack"], MSGPACK_CODEC),
        (["chat.v9", "pms.v1.msgpack", "pms.v1.json"], MSGPACK_CODEC),
        (["pms.v1.json", "pms.v1.msgpack"], JSON_CODEC),
        ([" pms.v1.msgpack "], MSGPACK_CODEC),
        (["chat.v9"], None),
        (["pms.v2.json", "graphql-ws"], None),
    ],
)
def test_negotiate_picks_the_first_known_subprotocol(offered: list[str], expected: FrameCodec | None) -> None:
    assert negotiate(offered) is expected


def test_control_messages_still_round_trip() -> None:
    assert unpack_control(pack_control("session.revoked", sessionId="s1")) == {
        "kind": "session.revoked",
        "sessionId": "s1",
    }
    with pytest.raises(ValueError, match="not a control message"):
        unpack_control(msgpack.packb([1]))


# --- events -------------------------------------------------------------------------


def test_make_event_builds_the_protocol_frame() -> None:
    frame = make_event(TOPIC, "chat.message", {"id": "1"}, offset="abc", ts=datetime(2025, 1, 1, tzinfo=UTC))
    assert frame == {
        "type": "event",
        "topic": TOPIC,
        "event": "chat.message",
        "data": {"id": "1"},
        "ts": "2025-01-01T00:00:00Z",
        "offset": "abc",
    }
    live = make_event(TOPIC, "chat.typing", {"userId": "u"})
    assert "offset" not in live
    assert datetime.fromisoformat(live["ts"]).tzinfo is not None
    assert live["ts"].endswith("Z")


def test_external_json_map_with_event_is_that_event_without_offset() -> None:
    frame = normalize_external(TOPIC, b'{"event":"maintenance.updated","data":{"id":"r1","status":"open"}}')
    assert frame["type"] == "event"
    assert frame["topic"] == TOPIC
    assert frame["event"] == "maintenance.updated"
    assert frame["data"] == {"id": "r1", "status": "open"}
    assert isinstance(frame["ts"], str)
    assert "offset" not in frame


def test_external_msgpack_map_keeps_its_ts_but_never_an_offset_of_its_own() -> None:
    payload = msgpack.packb(
        {"event": "unit.updated", "data": {"id": "u1"}, "ts": "2025-01-01T00:00:00Z", "offset": "o1"}
    )
    # Only the history hands out offsets; a forged one would corrupt clients' `since`.
    assert normalize_external(TOPIC, payload) == make_event(
        TOPIC, "unit.updated", {"id": "u1"}, ts="2025-01-01T00:00:00Z"
    )


def test_external_map_without_data_gets_an_empty_map() -> None:
    assert normalize_external(TOPIC, b'{"event":"broadcast"}')["data"] == {}


def test_our_own_frame_passes_through_unchanged() -> None:
    sent = make_event(TOPIC, "chat.message", {"id": "m1"}, offset="00000000000000ab-1-0")
    assert normalize_external(TOPIC, msgpack.packb(sent)) == sent


@pytest.mark.parametrize(
    ("payload", "data"),
    [
        (b"hello world", "hello world"),
        ("héllo ✓".encode(), "héllo ✓"),
        (b"[1, 2, 3]", [1, 2, 3]),
        (b"5", 5),  # also a MessagePack fixint (53): JSON wins for non-maps
        (msgpack.packb(["a", 1]), ["a", 1]),
        (msgpack.packb({"id": "x"}), {"id": "x"}),
        (b'{"id": "x"}', {"id": "x"}),
        (b'{"event": 3}', {"event": 3}),
        (msgpack.packb({1: "a"}, strict_types=False), {"1": "a"}),
        (b"\xff\xfe\xfd", "fffefd"),
        (b"", ""),
    ],
)
def test_anything_else_is_event_message_with_the_payload_as_data(payload: bytes, data: Any) -> None:
    frame = normalize_external(TOPIC, payload)
    assert frame["event"] == MESSAGE_EVENT
    assert frame["data"] == data
    assert "offset" not in frame
    # Whatever arrived, both codecs can send it.
    encode_once(frame)
