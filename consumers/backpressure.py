"""How many bytes the ASGI server still holds for a socket, where the server lets us see it.

uvicorn's `send` waits while a client reads slowly, which the hub notices by itself.
daphne's never waits: Twisted appends to the transport's in-memory buffer, so a reader
that stopped would grow it without bound. Daphne's `send` is
`functools.partial(server.handle_reply, protocol)`; from the protocol we read the
transport's unwritten bytes (Twisted `FileDescriptor`: `dataBuffer[offset:]` plus
`_tempDataLen`).
"""

import functools
from collections.abc import Callable, Sequence
from typing import Any


def buffered_bytes_probe(send: Any) -> Callable[[], int] | None:
    """A zero-argument function giving the bytes buffered for this socket, or None if unknown."""
    if not isinstance(send, functools.partial) or not send.args:
        return None
    owner = getattr(send.func, "__self__", None)
    if owner is None or type(owner).__module__ != "daphne.server":
        return None
    transport = getattr(send.args[0], "transport", None)
    if transport is None or not hasattr(transport, "dataBuffer"):
        return None

    def buffered() -> int:
        return len(transport.dataBuffer) - getattr(transport, "offset", 0) + getattr(transport, "_tempDataLen", 0)

    return buffered


def batch_writer_probe(send: Any) -> Callable[[Sequence[dict[str, Any]]], bool] | None:
    """The server's synchronous "write these messages with one transport write" for this socket, or None.

    uvicorn hands the app its protocol's bound `send`; our protocol class (`pms.wsprotocol`,
    `LeanWebSocketsProtocol.write_frames`) has such a method, upstream ones and daphne do not.
    """
    writer = getattr(getattr(send, "__self__", None), "write_frames", None)
    return writer if callable(writer) else None
