"""uvicorn's `websockets-sansio` protocol with less memory per idle socket.

    uvicorn pms.asgi:application --ws pms.wsprotocol:LeanWebSocketsProtocol ...

Same wire behaviour and code path as `--ws websockets-sansio` (this subclasses it); what
changes is what an open socket keeps. tracemalloc over 5,000 idle sockets
(`python -m loadtests.bench.memtrace`) showed about 4 KiB per socket in empty
`collections.deque`s (760 bytes each): `asyncio.Queue` holds three plus one in its
`Event`, and the `writable` `asyncio.Event` one more. A socket's receive queue has one
reader (the ASGI app) and rarely more than a few items, so a list and one future do;
`writable` needs a waiter only while the transport pushes back. The handshake response
and the handshake headers (the request's and the scope's copy) are dropped once the accept
is sent: an app must read headers before it accepts, as consumers/socket.py does.

The opening handshake takes a lean path too (`LeanWebSocketsProtocol._fast_handshake`). uvicorn's
httptools protocol parses the request, writes it out again and hands it to this protocol, whose
upstream path parses it a second time with websockets' HTTP parser (Python generators, a
`Headers` multi-dict), runs `ServerProtocol.accept` (a second `Headers` with a `Date` uvicorn then
deletes) and builds the 101 from it: a fifth of the server's CPU per connect under cProfile
(docs/benchmarks.md, "Connects"). A request that is plainly valid (one `GET ... HTTP/1.1`, every
line as websockets' parser would accept it, `Connection: upgrade`, `Upgrade: websocket`, a
16-byte key, version 13, no extension to negotiate) is split with `bytes` methods and answered
with the same bytes upstream writes; any other request, and every refusal, takes upstream's path
unchanged. With `pms.httpprotocol.UpgradeFirstProtocol` as uvicorn's `--http` protocol, httptools'
part is skipped too: a connection whose first bytes `parse_handshake` accepts comes straight here
(`start_handshake`), already parsed.

One behaviour differs: a text frame that is not UTF-8 closes the socket 1007 (RFC 6455) as
upstream does, but is logged as one INFO line rather than an ERROR with a traceback: it is
the client's fault, and any client could otherwise fill the server's log with tracebacks.

The subclass relies on uvicorn internals (`queue`, `writable`, `response`, `frames`,
`curr_msg_data_type`), so the uvicorn version is pinned in constraints.txt and tests/e2e run
the server with this class.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import re
import struct
from collections.abc import Sequence
from typing import Any
from urllib.parse import unquote

from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol
from websockets.http11 import MAX_LINE_LENGTH, MAX_NUM_HEADERS
from websockets.protocol import State
from websockets.utils import accept_key

# What websockets' HTTP parser accepts as a header name and value (RFC 9110 token and field value).
_TOKEN = re.compile(rb"[-!#$%&'*+.^_`|~0-9a-zA-Z]+")
# One header line as websockets' parser reads it: the name, then the value after its leading
# whitespace (an `\r` or `\n` is in no value; trailing whitespace is stripped after). Possessive,
# so a hostile line costs linear time. Matched for the whole block at once.
_HEADER = re.compile(rb"([-!#$%&'*+.^_`|~0-9a-zA-Z]+):[ \t]*+([\x09\x20-\x7e\x80-\xff]*+)\r\n")
_HEADERS = re.compile(rb"(?:" + _HEADER.pattern + rb")*")
# A request target as httptools takes it in a request line: visible ASCII only (a control
# character, a space or a byte above 0x7e is a 400 there).
_TARGET = re.compile(rb"[\x21-\x7e]+")
# Headers websockets reads as one value (a second one is a 400), and those it refuses or weighs.
_ONCE = frozenset({b"connection", b"upgrade", b"sec-websocket-key", b"sec-websocket-version", b"origin"})
_NOT_LEAN = frozenset({b"content-length", b"transfer-encoding"})
# A server's data frame (RFC 6455 5.2): FIN set, no mask; the payload length in 7, 16 or 64 bits.
_OP_TEXT, _OP_BINARY = 0x1, 0x2
_LENGTH_16 = struct.Struct("!BBH")
_LENGTH_64 = struct.Struct("!BBQ")


def _frame_header(opcode: int, length: int) -> bytes:
    """The header of an unmasked, final data frame of `length` payload bytes."""
    first = 0x80 | opcode
    if length < 126:
        return bytes((first, length))
    if length < 1 << 16:
        return _LENGTH_16.pack(first, 126, length)
    return _LENGTH_64.pack(first, 127, length)


def _token_list(value: bytes) -> list[bytes] | None:
    """The tokens of a comma-separated list of RFC 9110 tokens, None if it is anything else."""
    tokens = [token.strip(b" \t") for token in value.split(b",")]
    return tokens if all(_TOKEN.fullmatch(token) for token in tokens) else None


class LeanReceiveQueue:
    """The part of `asyncio.Queue` uvicorn uses (`put_nowait`, `get`, `empty`, `qsize`), unbounded;
    a getter's future exists only while it waits."""

    __slots__ = ("_items", "_getters")

    def __init__(self) -> None:
        self._items: list[Any] = []
        self._getters: list[asyncio.Future[None]] | None = None

    def put_nowait(self, item: Any) -> None:
        self._items.append(item)
        self._wake_one()

    def _wake_one(self) -> None:
        for getter in self._getters or ():
            if not getter.done():
                getter.set_result(None)
                return

    async def get(self) -> Any:
        while not self._items:
            getter = asyncio.get_running_loop().create_future()
            if self._getters is None:
                self._getters = []
            self._getters.append(getter)
            try:
                await getter
            except asyncio.CancelledError:
                self._forget(getter)
                if self._items:
                    self._wake_one()  # it may have been woken for an item: pass the turn on
                raise
            self._forget(getter)
        item = self._items.pop(0)
        if self._items:
            self._wake_one()  # items left: the next waiting getter, if any, takes one
        return item

    def _forget(self, getter: asyncio.Future[None]) -> None:
        if self._getters is not None:
            self._getters.remove(getter)
            if not self._getters:
                self._getters = None

    def empty(self) -> bool:
        return not self._items

    def qsize(self) -> int:
        return len(self._items)


class LeanEvent:
    """`asyncio.Event` (`set`, `clear`, `is_set`, `wait`) whose waiters exist only while waiting."""

    __slots__ = ("_value", "_waiters")

    def __init__(self, value: bool = False) -> None:
        self._value = value
        self._waiters: list[asyncio.Future[None]] | None = None

    def is_set(self) -> bool:
        return self._value

    def set(self) -> None:
        self._value = True
        waiters, self._waiters = self._waiters, None
        for waiter in waiters or ():
            if not waiter.done():
                waiter.set_result(None)

    def clear(self) -> None:
        self._value = False

    async def wait(self) -> bool:
        if self._value:
            return True
        waiter = asyncio.get_running_loop().create_future()
        if self._waiters is None:
            self._waiters = []
        self._waiters.append(waiter)
        try:
            await waiter
        finally:
            if self._waiters is not None and waiter in self._waiters:
                self._waiters.remove(waiter)
        return True


class Handshake:
    """A parsed opening handshake that the lean path can answer (see `parse_handshake`)."""

    __slots__ = ("raw_path", "query_string", "headers", "subprotocols", "accept")

    def __init__(
        self,
        raw_path: str,
        query_string: str,
        headers: list[tuple[bytes, bytes]],
        subprotocols: list[str],
        accept: str,
    ) -> None:
        self.raw_path = raw_path
        self.query_string = query_string
        self.headers = headers
        self.subprotocols = subprotocols
        self.accept = accept


def parse_handshake(data: bytes, *, deflate: bool) -> Handshake | None:
    """The handshake in `data` if it is one request that websockets' `ServerProtocol.accept`
    would answer 101 without negotiating anything (no `Sec-WebSocket-Extensions` to weigh when
    `deflate` is on), else None: the caller then takes upstream's path, which answers every
    other case (405, 426, 400, 431, ...) exactly as before."""
    request_line, sep, rest = data.partition(b"\r\n")
    if not sep or len(request_line) > MAX_LINE_LENGTH or not rest.endswith(b"\r\n\r\n"):
        return None
    method, _, remainder = request_line.partition(b" ")
    target, _, protocol = remainder.partition(b" ")
    if method != b"GET" or protocol != b"HTTP/1.1" or not _TARGET.fullmatch(target):
        return None
    block = rest[:-2]  # every header line, each ending in CRLF
    if len(block) > MAX_LINE_LENGTH or not _HEADERS.fullmatch(block):
        return None  # (a block this short has no line longer than websockets allows)
    lines: list[tuple[bytes, bytes]] = _HEADER.findall(block)
    if len(lines) > MAX_NUM_HEADERS:
        return None
    headers: list[tuple[bytes, bytes]] = []
    once: dict[bytes, bytes] = {}  # the headers that must come at most once
    subprotocols: list[str] = []
    for name, raw_value in lines:
        value = raw_value.rstrip(b" \t")
        lowered = name.lower()
        headers.append((lowered, value))  # ASGI's names are lower-case (uvicorn's HTTP parser lowers them too)
        if lowered in _ONCE:
            if lowered in once:
                return None
            once[lowered] = value
        elif lowered == b"sec-websocket-protocol":
            if _token_list(value) is None:
                return None  # websockets answers 400
            subprotocols.extend(token.strip() for token in value.decode("latin-1").split(","))
        elif lowered in _NOT_LEAN or (lowered == b"sec-websocket-extensions" and deflate):
            return None
    connection = _token_list(once.get(b"connection", b""))
    if not connection or b"upgrade" not in [token.lower() for token in connection]:
        return None
    if once.get(b"upgrade", b"").lower() != b"websocket" or once.get(b"sec-websocket-version") != b"13":
        return None
    key = once.get(b"sec-websocket-key", b"")
    try:
        if len(base64.b64decode(key, validate=True)) != 16:
            return None
    except binascii.Error:
        return None
    raw_path, _, query_string = target.decode("ascii").partition("?")
    return Handshake(raw_path, query_string, headers, subprotocols, accept_key(key.decode("ascii")))


class SwitchingProtocols:
    """The 101 response in the shape uvicorn's accept branch handles (`headers`: `del ...["Date"]`,
    `update`) and websockets' `send_response` writes (`serialize`; `raw_items` when it logs at
    DEBUG), without `Headers` objects: the same bytes as upstream's."""

    __slots__ = ("headers",)

    status_code = 101
    reason_phrase = "Switching Protocols"
    body = b""

    def __init__(self, accept: str) -> None:
        self.headers = _ResponseHeaders(
            [("Upgrade", "websocket"), ("Connection", "Upgrade"), ("Sec-WebSocket-Accept", accept)]
        )

    def serialize(self) -> bytes:
        lines = [b"HTTP/1.1 101 Switching Protocols\r\n"]
        for name, value in self.headers.raw_items():
            lines += [name.encode(), b": ", value.encode(), b"\r\n"]
        lines.append(b"\r\n")
        return b"".join(lines)


class _ResponseHeaders:
    """websockets' own 101 headers, then those uvicorn adds (its default headers, the app's, the subprotocol)."""

    __slots__ = ("items",)

    def __init__(self, items: list[tuple[str, str]]) -> None:
        self.items = items

    def __delitem__(self, name: str) -> None:
        pass  # uvicorn drops websockets' own `Date`; this response has none

    def update(self, headers: list[tuple[str, str]]) -> None:
        self.items.extend(headers)

    def raw_items(self) -> list[tuple[str, str]]:
        return self.items


class LeanWebSocketsProtocol(WebSocketsSansIOProtocol):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.queue = LeanReceiveQueue()  # type: ignore[assignment]
        self.writable = LeanEvent(True)  # type: ignore[assignment]
        # Bytes that arrive between a lean handshake and the app's answer (None: not in that state).
        self._early: list[bytes] | None = None

    def data_received(self, data: bytes) -> None:
        if self._early is not None:
            # Parsed as frames once accepted, dropped if refused; reading waits until then.
            if not self._early:
                self.transport.pause_reading()
            self._early.append(data)
            return
        if not self.handshake_initiated and self._fast_handshake(data):
            return
        super().data_received(data)

    def _fast_handshake(self, data: bytes) -> bool:
        """Start the app on a plainly valid handshake without websockets' HTTP parser (module doc)."""
        handshake = parse_handshake(data, deflate=bool(self.config.ws_per_message_deflate))
        if handshake is None:
            return False
        self.start_handshake(handshake)
        return True

    def start_handshake(self, handshake: Handshake) -> None:
        """Start the app on `handshake` (from `parse_handshake`, with this config's `deflate`), the
        first thing this protocol receives: `pms.httpprotocol` hands over one it parsed itself."""
        self.handshake_initiated = True
        self.response = SwitchingProtocols(handshake.accept)  # type: ignore[assignment]
        self._early = []
        self.scope = {
            "type": "websocket",
            "asgi": {"version": self.asgi_version, "spec_version": "2.4"},
            "http_version": "1.1",
            "scheme": self.scheme,
            "server": self.server,
            "client": self.client,
            "root_path": self.root_path,
            "path": self.root_path + unquote(handshake.raw_path),
            "raw_path": self.root_path.encode("ascii") + handshake.raw_path.encode("ascii"),
            "query_string": handshake.query_string.encode("ascii"),
            "headers": handshake.headers,
            "subprotocols": handshake.subprotocols,
            "state": self.app_state.copy(),
            "extensions": {"websocket.http.response": {}},
        }
        self.queue.put_nowait({"type": "websocket.connect"})
        task = self.loop.create_task(self.run_asgi())
        task.add_done_callback(self.on_task_complete)
        self.tasks.add(task)

    def write_frames(self, messages: Sequence[dict[str, Any]]) -> bool:
        """Writes `websocket.send` messages as frames, in order, with one transport write.

        `realtime.hub.Connection` writes every message through here when it can: one message
        (an event, a reply) or several (a chat reply with the sender's own event, one send()
        syscall instead of two). Writes nothing and answers False unless the socket is open and
        its transport takes writes now; the caller then uses the ASGI `send`, which waits,
        raises and closes as upstream does. Text is encoded before anything is framed, so a text
        UTF-8 cannot encode raises with nothing written. Without an extension (the bench's and
        our clients offer none) a frame is built here: FIN, opcode, length, the payload
        unmasked (RFC 6455 5.2, a server's frame), the bytes websockets' `send_text` would
        queue, without its `Frame` object and its extension pass; with per-message deflate
        negotiated (browsers), websockets frames them.
        """
        conn = self.conn
        if (
            conn.state is not State.OPEN
            or self.close_sent
            or self.disconnected
            or not self.writable.is_set()
            or self.transport.is_closing()
        ):
            return False
        payloads: list[tuple[int, bytes]] = []
        for message in messages:
            if message.get("type") != "websocket.send":
                return False
            data = message.get("bytes")
            if data is not None:
                payloads.append((_OP_BINARY, data))
            elif (text := message.get("text")) is not None:
                payloads.append((_OP_TEXT, text.encode()))
        if conn.extensions:
            for opcode, payload in payloads:
                if opcode == _OP_TEXT:
                    conn.send_text(payload)
                else:
                    conn.send_binary(payload)
            self.transport.write(b"".join(conn.data_to_send()))
            return True
        # Anything websockets queued meanwhile (a pong) goes first, as upstream's `send` writes it.
        chunks = conn.data_to_send()
        for opcode, payload in payloads:
            chunks.append(_frame_header(opcode, len(payload)))
            chunks.append(payload)
        self.transport.write(b"".join(chunks))
        return True

    def send_receive_event_to_app(self) -> None:
        if self.curr_msg_data_type != "text" or self.close_sent:
            super().send_receive_event_to_app()
            return
        # Upstream's text branch, with the invalid-UTF-8 case logged as the client's fault.
        data = self.frames[0] if len(self.frames) == 1 else b"".join(self.frames)
        self.frames = []
        try:
            text = data.decode()
        except UnicodeDecodeError:
            prefix = f"{self.client[0]}:{self.client[1]} - " if self.client else ""
            self.logger.info("%sText frame that is not UTF-8; closing 1007.", prefix)
            self.conn.send_close(1007)
            self.handle_parser_exception()
            return
        self.queue.put_nowait({"type": "websocket.receive", "text": text})
        if not self.read_paused:
            self.read_paused = True
            self.transport.pause_reading()

    def handle_connect(self, event: Any) -> None:
        super().handle_connect(event)
        # websockets' parser (a generator suspended for the socket's life) still references
        # the request; its headers are copied into the scope by now.
        event.headers.clear()

    def start_keepalive(self) -> None:
        # Called once, right after the 101 response is written (overriding `send` instead
        # would add a coroutine frame to every frame sent). Nothing reads the response
        # again, and the app read the handshake headers before it accepted.
        self.response = None  # type: ignore[assignment]
        self.scope["headers"] = []
        early, self._early = self._early, None
        if early is not None:
            # After a lean handshake websockets' parser still waits for the request: it parses
            # frames from here on, starting with any that came before the 101 went out.
            self.conn.parser = self.conn.parse()
            next(self.conn.parser)
            if early:
                self.transport.resume_reading()
                super().data_received(b"".join(early))
        super().start_keepalive()
