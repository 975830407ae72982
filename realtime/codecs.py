"""Wire encodings: socket frame codecs keyed by subprotocol, and the servers' control messages.

Both frame codecs carry the same maps (PROTOCOL.md "Values"): ids are strings, times
ISO 8601 UTC strings, money decimal strings, and no MessagePack extension types ever
leave the server. Values that are not plain wire values (datetime, Decimal, UUID,
ObjectId, ...) are converted by one `default` hook shared by both codecs.

Text is Unicode both ways. Incoming, every string of a frame (keys included) must be
encodable as UTF-8: JSON's `\\ud800` escape can spell a lone surrogate, which no store,
no Redis payload and no reply could carry, so such a frame is refused at the edge
(`UnencodableText`, a `bad_request` that still names the frame so the socket can answer
its `ref`). MessagePack needs no check: its str values are decoded as strict UTF-8.
Outgoing, a lone surrogate that reached a frame some other way (an external publisher,
an old stored document) is sent as U+FFFD rather than failing the write.
"""

import base64
import json
import math
import re
from collections.abc import Iterable
from datetime import UTC, date, datetime, time
from decimal import Decimal
from typing import Any
from uuid import UUID

import msgpack

from realtime.errors import BAD_REQUEST, ProtocolError

JSON = "pms.v1.json"
MSGPACK = "pms.v1.msgpack"

NOT_JSON = "frame is not valid JSON"
NOT_MSGPACK = "frame is not valid MessagePack"
NOT_A_MAP = "frame must be a map"
WANTS_TEXT = "pms.v1.json takes text frames"
WANTS_BINARY = "pms.v1.msgpack takes binary frames"
NOT_UNICODE = "`{field}` holds text that is not valid Unicode (a lone surrogate such as \\ud800)"
NOT_UNICODE_KEY = "a field name is not valid Unicode (a lone surrogate such as \\ud800)"

# A JSON escape of a UTF-16 surrogate (`\\ud800`-`\\udfff`): a frame without one cannot hold a lone
# surrogate, so only frames that match are walked. (Pairs are fine: json joins them into one character.)
_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89abcdefABCDEF]")
# In a decoded str any surrogate code point is a lone one (pairs were joined while decoding).
_SURROGATE = re.compile("[\ud800-\udfff]")
REPLACEMENT = "\ufffd"


class UnencodableText(ProtocolError):
    """`bad_request`: a string of the decoded `frame` cannot be encoded as UTF-8 (a lone surrogate).

    `field` is the top-level field holding it ("" for a top-level key). The frame was read, so
    the socket may still answer its `ref` when the `ref` itself is sound.
    """

    def __init__(self, frame: dict[str, Any], field: str) -> None:
        super().__init__(BAD_REQUEST, NOT_UNICODE.format(field=field[:64]) if field else NOT_UNICODE_KEY)
        self.frame = frame
        self.field = field


def encodable_text(text: str) -> bool:
    """True when `text` encodes as UTF-8 (holds no lone surrogate); ASCII answers at once."""
    if text.isascii():
        return True
    try:
        text.encode()
    except UnicodeEncodeError:
        return False
    return True


def unencodable_field(frame: dict[str, Any]) -> str | None:
    """The top-level field of `frame` under which the first string UTF-8 cannot encode sits (as a
    value or a nested key), "" when it is a top-level key itself, None when all its text is sound.

    Iterative, so a frame nested as deep as the decoder allowed cannot exhaust the stack.
    """
    for name, value in frame.items():
        if isinstance(name, str) and not encodable_text(name):
            return ""
        field = name if isinstance(name, str) else ""
        stack = [value]
        while stack:
            item = stack.pop()
            if isinstance(item, str):
                if not encodable_text(item):
                    return field
            elif isinstance(item, dict):
                for key, inner in item.items():
                    if isinstance(key, str) and not encodable_text(key):
                        return field
                    stack.append(inner)
            elif isinstance(item, list):
                stack.extend(item)
    return None


def without_surrogates(value: Any) -> Any:
    """A copy of `value` with every lone surrogate in its strings (keys too) replaced by U+FFFD."""
    if isinstance(value, str):
        return _SURROGATE.sub(REPLACEMENT, value)
    if isinstance(value, dict):
        return {without_surrogates(k): without_surrogates(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [without_surrogates(v) for v in value]
    return value


def iso_utc(value: datetime) -> str:
    """ISO 8601 in UTC with a `Z` suffix; a naive datetime is taken as UTC already."""
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z")


def wire_value(value: Any) -> Any:
    """The wire form of a value neither codec carries natively (`bytes` excepted: see the JSON codec)."""
    if isinstance(value, datetime):
        return iso_utc(value)
    if isinstance(value, date | time):
        return value.isoformat()
    if isinstance(value, Decimal | UUID):
        return str(value)
    if isinstance(value, msgpack.Timestamp):
        return iso_utc(value.to_datetime())
    if isinstance(value, msgpack.ExtType):
        return value.data.hex()
    if isinstance(value, set | frozenset):
        return list(value)
    # ObjectId and other id-like objects: their string form is the wire id.
    return str(value)


def _json_default(value: Any) -> Any:
    if isinstance(value, bytes | bytearray | memoryview):
        return base64.b64encode(bytes(value)).decode("ascii")
    return wire_value(value)


def _finite(value: Any) -> Any:
    """A copy with NaN and infinities as null: JSON has no spelling for them."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(v) for v in value]
    return value


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def _reject_ext(code: int, data: bytes) -> Any:
    raise ValueError("MessagePack extension types are not accepted")


class FrameCodec:
    """One subprotocol's encoding of protocol maps; `decode` raises only `ProtocolError(bad_request)`."""

    name: str
    binary: bool

    def decode(self, data: str | bytes) -> dict[str, Any]:
        """The frame as a map, or `ProtocolError("bad_request")` for anything else."""
        raise NotImplementedError

    def encode(self, frame: dict[str, Any]) -> str | bytes:
        """The frame's wire form (text for text codecs, bytes for binary ones)."""
        raise NotImplementedError

    def asgi_message(self, frame: dict[str, Any]) -> dict[str, Any]:
        """The ready ASGI `websocket.send` message carrying the encoded frame."""
        encoded = self.encode(frame)
        if self.binary:
            return {"type": "websocket.send", "bytes": encoded}
        return {"type": "websocket.send", "text": encoded}

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name}>"


class JsonCodec(FrameCodec):
    """`pms.v1.json`: compact UTF-8 JSON in text frames; bytes values travel as base64 strings."""

    name = JSON
    binary = False

    def __init__(self) -> None:
        self._encoder = json.JSONEncoder(
            ensure_ascii=False, separators=(",", ":"), allow_nan=False, default=_json_default
        )

    def decode(self, data: str | bytes) -> dict[str, Any]:
        if not isinstance(data, str):
            raise ProtocolError(BAD_REQUEST, WANTS_TEXT)
        try:
            frame = json.loads(data, parse_constant=_reject_constant)
        except (ValueError, RecursionError) as exc:
            raise ProtocolError(BAD_REQUEST, NOT_JSON) from exc
        if not isinstance(frame, dict):
            raise ProtocolError(BAD_REQUEST, NOT_A_MAP)
        # `in` first: a plain substring search is several times cheaper than the pattern.
        if "\\u" in data and _SURROGATE_ESCAPE.search(data) and (field := unencodable_field(frame)) is not None:
            raise UnencodableText(frame, field)
        return frame

    def encode(self, frame: dict[str, Any]) -> str:
        try:
            text = self._encoder.encode(frame)
        except ValueError:
            # Only non-finite floats fail here (allow_nan=False): send them as null
            # rather than a frame that JSON.parse rejects.
            text = self._encoder.encode(_finite(frame))
        # The server writes text frames as UTF-8: a lone surrogate would fail that write.
        if not encodable_text(text):
            text = _SURROGATE.sub(REPLACEMENT, text)
        return text


class MsgpackCodec(FrameCodec):
    """`pms.v1.msgpack`: MessagePack maps in binary frames, str as str and bytes as bin, no ext types."""

    name = MSGPACK
    binary = True

    def decode(self, data: str | bytes) -> dict[str, Any]:
        if not isinstance(data, bytes | bytearray):
            raise ProtocolError(BAD_REQUEST, WANTS_BINARY)
        try:
            frame = msgpack.unpackb(data, raw=False, strict_map_key=True, ext_hook=_reject_ext, timestamp=3)
        except Exception as exc:
            # Any failure to read the bytes is the frame's fault: invalid UTF-8 in a str
            # (UnicodeDecodeError), nesting past the decoder's stack (StackError), a timestamp
            # beyond the years datetime holds (OverflowError), an unhashable key (TypeError) ...
            raise ProtocolError(BAD_REQUEST, NOT_MSGPACK) from exc
        if not isinstance(frame, dict):
            raise ProtocolError(BAD_REQUEST, NOT_A_MAP)
        return frame

    def encode(self, frame: dict[str, Any]) -> bytes:
        return pack(frame)


def pack(value: Any) -> bytes:
    """MessagePack of a value in wire form (str/bin types, no ext types, `wire_value` for the rest)."""
    try:
        packed: bytes = msgpack.packb(value, use_bin_type=True, datetime=False, default=wire_value)
    except UnicodeEncodeError:  # a lone surrogate in some string: sent as U+FFFD (see the module's docstring)
        packed = msgpack.packb(without_surrogates(value), use_bin_type=True, datetime=False, default=wire_value)
    return packed


JSON_CODEC = JsonCodec()
MSGPACK_CODEC = MsgpackCodec()
CODECS: dict[str, FrameCodec] = {JSON_CODEC.name: JSON_CODEC, MSGPACK_CODEC.name: MSGPACK_CODEC}
DEFAULT_CODEC = JSON_CODEC


def negotiate(offered: list[str]) -> FrameCodec | None:
    """The codec of the first known subprotocol offered; JSON when none is offered; None when only unknown ones are."""
    if not offered:
        return DEFAULT_CODEC
    for name in offered:
        codec = CODECS.get(name.strip())
        if codec is not None:
            return codec
    return None


def encode_once(frame: dict[str, Any], names: Iterable[str] | None = None) -> dict[str, dict[str, Any]]:
    """The frame's ASGI send message per codec name (all codecs, or only `names`), each encoded once."""
    if names is None:
        return {name: codec.asgi_message(frame) for name, codec in CODECS.items()}
    return {name: CODECS[name].asgi_message(frame) for name in names}


def pack_control(kind: str, **fields: Any) -> bytes:
    """A control-channel message: `{kind, ...fields}` in MessagePack."""
    packed: bytes = msgpack.packb({"kind": kind, **fields})
    return packed


def unpack_control(payload: bytes) -> dict[str, Any]:
    """The control message's map; ValueError when the payload is not one."""
    data = msgpack.unpackb(payload, raw=False)
    if not isinstance(data, dict) or "kind" not in data:
        raise ValueError("not a control message")
    return data
