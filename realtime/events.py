"""Server event frames: built here for our own publishes, normalized here for whatever arrives on a topic."""

import json
import re
from datetime import UTC, datetime
from typing import Any

import msgpack

from realtime.codecs import iso_utc, wire_value, without_surrogates

MESSAGE_EVENT = "message"
# Our own publishes (history_publish.lua) are MessagePack maps with exactly these keys in
# this order: `make_event`'s, then the offset the script appends. Keep in step with
# `realtime.history` (its offsets: "<16 hex epoch>-<ms>-<seq>").
_OWN_KEYS = ["type", "topic", "event", "data", "ts", "offset"]
_OWN_OFFSET = re.compile(r"[0-9a-f]{16}-[0-9]{1,15}-[0-9]{1,15}")


def utc_now_iso() -> str:
    """The current time as an ISO 8601 UTC string with millisecond precision and a `Z` suffix."""
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def make_event(
    topic: str,
    event: str,
    data: Any,
    *,
    offset: str | None = None,
    ts: str | datetime | None = None,
) -> dict[str, Any]:
    """The protocol's server event frame; `ts` defaults to now, `offset` is present only when given."""
    if ts is None:
        ts = utc_now_iso()
    elif isinstance(ts, datetime):
        ts = iso_utc(ts)
    frame: dict[str, Any] = {"type": "event", "topic": topic, "event": event, "data": data, "ts": ts}
    if offset is not None:
        frame["offset"] = offset
    return frame


def normalize_external(topic: str, payload: bytes | str) -> dict[str, Any]:
    """The event frame for a payload published on `topic`'s channel by anyone, never raising.

    Our own publishes (history.py) arrive as whole frames and pass through with their
    offset. Anything else is external and normalised: a map with a string `event` is that
    event (its `data` kept; its `ts` kept only if it is an ISO 8601 time, as UTC, else now;
    never an `offset` of its own: only the history hands out offsets, and a client stores
    them as bookmarks); anything else is event `message` with the decoded payload as `data`
    (MessagePack, else JSON, else the UTF-8 text, else the bytes as hex). Unpaired
    surrogates (JSON's "\\ud800") become U+FFFD, so the frame can be encoded for every socket.
    """
    value, from_msgpack = _decode(payload)
    if isinstance(value, dict):
        if from_msgpack and _is_own(topic, value):
            return value
        value = without_surrogates(value)
        event = value.get("event")
        if isinstance(event, str) and event:
            return make_event(topic, event, value.get("data", {}), ts=_checked_ts(value.get("ts")))
    return make_event(topic, MESSAGE_EVENT, without_surrogates(value))


def _is_own(topic: str, value: dict[str, Any]) -> bool:
    """A frame as `history_publish.lua` publishes it (an external one has no such offset)."""
    offset = value.get("offset")
    return (
        list(value) == _OWN_KEYS
        and value["type"] == "event"
        and value["topic"] == topic
        and isinstance(value["event"], str)
        and isinstance(value["ts"], str)
        and isinstance(offset, str)
        and _OWN_OFFSET.fullmatch(offset) is not None
    )


def _checked_ts(value: Any) -> str | None:
    """An external `ts` if it is an ISO 8601 time: as sent when in UTC with `Z` (our own
    ephemeral events), else converted to UTC with milliseconds (a time without a zone taken
    as UTC); None (now) when it is not a time."""
    if not isinstance(value, str) or not 0 < len(value) <= 64:
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        return None
    if value.endswith("Z"):
        return value
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    try:
        return parsed.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    except (OverflowError, ValueError):
        return None


def _decode(payload: bytes | str) -> tuple[Any, bool]:
    """The decoded payload and whether it was MessagePack: maps first; then JSON; then a
    MessagePack scalar or array; then text; then hex."""
    raw = payload.encode("utf-8", "surrogatepass") if isinstance(payload, str) else bytes(payload)
    unpacked, from_msgpack = _unpack(raw)
    if from_msgpack and isinstance(unpacked, dict):
        return unpacked, True  # every publish of ours: decoded once, no text decode of the payload
    text: str | None = payload if isinstance(payload, str) else None
    if text is None:
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError:
            pass
    if text is not None:
        try:
            # A short text such as "5" is also a MessagePack fixint: JSON wins for non-maps.
            return json.loads(text, parse_constant=_reject_constant), False
        except (ValueError, RecursionError):
            pass
    if from_msgpack:
        return unpacked, True
    return (text if text is not None else raw.hex()), False


def _unpack(raw: bytes) -> tuple[Any, bool]:
    try:
        return msgpack.unpackb(raw, raw=False, timestamp=3, ext_hook=_ext_to_hex), True
    except (ValueError, TypeError, RecursionError, msgpack.UnpackException):
        pass
    try:
        # Maps keyed by numbers are valid MessagePack but not valid protocol maps: string keys.
        lenient = msgpack.unpackb(raw, raw=False, timestamp=3, ext_hook=_ext_to_hex, strict_map_key=False)
    except (ValueError, TypeError, RecursionError, msgpack.UnpackException):
        return None, False
    return _string_keys(lenient), True


def _ext_to_hex(code: int, data: bytes) -> str:
    return data.hex()


def _string_keys(value: Any) -> Any:
    if isinstance(value, dict):
        return {_key(k): _string_keys(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_string_keys(v) for v in value]
    return value


def _key(key: Any) -> str:
    if isinstance(key, str):
        return key
    if isinstance(key, bytes):
        return key.decode("utf-8", "replace")
    if isinstance(key, bool | int | float) or key is None:
        return json.dumps(key)
    return str(wire_value(key))


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")
