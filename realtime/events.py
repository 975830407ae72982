"""Server event frames: built here for our own publishes, normalized here for whatever arrives on a topic."""

import json
from datetime import UTC, datetime
from typing import Any

import msgpack

from realtime.codecs import iso_utc, wire_value

MESSAGE_EVENT = "message"
_EVENT_KEYS = frozenset({"type", "topic", "event", "data", "ts"})


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
    offset. Another map with a string `event` is that event (its `data` and `ts` kept, but
    no offset: only the history hands out offsets); anything else is event `message` with the decoded payload as
    `data` (MessagePack, else JSON, else the UTF-8 text, else the bytes as hex).
    """
    value = _decode(payload)
    if isinstance(value, dict):
        event = value.get("event")
        if isinstance(event, str) and event:
            if value.get("type") == "event" and value.get("topic") == topic and _EVENT_KEYS <= value.keys():
                # Our own publish (history.py): already the exact frame, offset included.
                return value
            ts = value.get("ts")
            return make_event(topic, event, value.get("data", {}), ts=ts if isinstance(ts, str) else None)
    return make_event(topic, MESSAGE_EVENT, value)


def _decode(payload: bytes | str) -> Any:
    """MessagePack maps first; then JSON; then a MessagePack scalar or array; then text; then hex."""
    if isinstance(payload, str):
        text: str | None = payload
        raw = payload.encode("utf-8", "surrogatepass")
    else:
        raw = bytes(payload)
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError:
            text = None
    unpacked, from_msgpack = _unpack(raw)
    if from_msgpack and isinstance(unpacked, dict):
        return unpacked
    if text is not None:
        try:
            # A short text such as "5" is also a MessagePack fixint: JSON wins for non-maps.
            return json.loads(text, parse_constant=_reject_constant)
        except (ValueError, RecursionError):
            pass
    if from_msgpack:
        return unpacked
    return text if text is not None else raw.hex()


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
