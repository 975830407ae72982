"""Wire encodings. Control messages between server processes are MessagePack maps."""

from typing import Any

import msgpack


def pack_control(kind: str, **fields: Any) -> bytes:
    """A control-channel message: `{kind, ...fields}` in MessagePack."""
    return msgpack.packb({"kind": kind, **fields})


def unpack_control(payload: bytes) -> dict[str, Any]:
    data = msgpack.unpackb(payload, raw=False)
    if not isinstance(data, dict) or "kind" not in data:
        raise ValueError("not a control message")
    return data
