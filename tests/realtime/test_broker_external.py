"""Payloads other services PUBLISH on a topic's channel: normalised on receipt (issue #15)."""

import json
from datetime import UTC, datetime

import msgpack
import pytest

from realtime.codecs import encode_once
from realtime.events import make_event, normalize_external
from realtime.history import parse_offset

TOPIC = "chat:messages:6b9f8f7e-3f0c-4d36-9a53-6b1c3c1a7e01"
OFFSET = "00000000000000ab-1795622546944-0"


def test_our_own_frame_keeps_its_offset() -> None:
    sent = make_event(TOPIC, "chat.message", {"id": "m1"}, offset=OFFSET)
    assert normalize_external(TOPIC, msgpack.packb(sent)) == sent


@pytest.mark.parametrize(
    "payload",
    [
        # the exact shape of ours, but JSON: never ours
        json.dumps(make_event(TOPIC, "chat.message", {"id": "m1"}, offset=OFFSET)).encode(),
        # MessagePack, but an offset the history never hands out
        msgpack.packb(make_event(TOPIC, "chat.message", {"id": "m1"}, offset="42")),
        # an offset of the right form in a map of another shape
        msgpack.packb({"event": "chat.message", "data": {"id": "m1"}, "offset": OFFSET}),
        # keys in another order than history_publish.lua writes them
        msgpack.packb({"offset": OFFSET, **make_event(TOPIC, "chat.message", {"id": "m1"})}),
    ],
)
def test_an_external_payload_never_brings_an_offset_of_its_own(payload: bytes) -> None:
    frame = normalize_external(TOPIC, payload)
    assert "offset" not in frame
    assert frame["event"] == "chat.message" and frame["data"] == {"id": "m1"}


@pytest.mark.parametrize(
    ("ts", "expected"),
    [
        ("2026-05-04T10:15:30.127Z", "2026-05-04T10:15:30.127Z"),
        ("2026-05-04T12:15:30+02:00", "2026-05-04T10:15:30.000Z"),
        ("2026-05-04T10:15:30", "2026-05-04T10:15:30.000Z"),  # no zone: taken as UTC
    ],
)
def test_an_external_ts_that_is_a_time_is_kept_in_utc(ts: str, expected: str) -> None:
    frame = normalize_external(TOPIC, json.dumps({"event": "broadcast", "ts": ts}).encode())
    assert frame["ts"] == expected


@pytest.mark.parametrize("ts", ["yesterday", "", 1714817730, None, ["2026-05-04"], "9" * 100])
def test_an_external_ts_that_is_not_a_time_becomes_the_arrival_time(ts: object) -> None:
    before = datetime.now(UTC)
    frame = normalize_external(TOPIC, json.dumps({"event": "broadcast", "ts": ts}).encode())
    assert frame["ts"].endswith("Z")
    assert datetime.fromisoformat(frame["ts"]) >= before.replace(microsecond=before.microsecond // 1000 * 1000)


@pytest.mark.parametrize(
    "payload",
    [
        b'{"event": "broadcast", "data": {"title": "\\ud800 heater"}}',
        b'{"event": "broadcast", "data": {"\\udfff": ["x\\ud83d"]}}',
        b'["\\ud800"]',
        b'"\\udc00"',
    ],
)
def test_a_lone_surrogate_is_replaced_so_every_codec_can_send_the_event(payload: bytes) -> None:
    frame = normalize_external(TOPIC, payload)
    messages = encode_once(frame)  # raised UnicodeEncodeError for every socket before
    assert len(messages) == 2  # JSON and MessagePack
    assert "\ufffd" in json.dumps(frame, ensure_ascii=False)


def test_a_valid_surrogate_pair_stays_the_character_it_encodes() -> None:
    frame = normalize_external(TOPIC, b'{"event": "broadcast", "data": {"title": "\\ud83d\\ude00"}}')
    assert frame["data"]["title"] == "\U0001f600"


def test_offsets_recognised_as_ours_are_the_history_s() -> None:
    assert parse_offset(OFFSET) is not None
