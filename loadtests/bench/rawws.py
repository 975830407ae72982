"""A minimal WebSocket client (RFC 6455) for the load generators: cheap per received frame.

The `websockets` client spends ~20 µs of the load generator's CPU per frame it receives
(queue, task wake-up, assembler); at 50,000 deliveries/s four such processes need more
CPU than this 2-core machine has next to the server under test. This one parses frames
in `data_received` and hands each text frame straight to a callback. It speaks what the
bench needs and nothing more: no extensions, no fragmentation on send, answers pings,
closes cleanly. The same client measures every server kind.
"""

from __future__ import annotations

import asyncio
import base64
import os
import random
import struct
from collections.abc import Callable
from urllib.parse import urlsplit

TEXT, BINARY, CONTINUATION, CLOSE, PING, PONG = 0x1, 0x2, 0x0, 0x8, 0x9, 0xA


class Closed(ConnectionError):
    """The connection is closed (by either side); `code` is the peer's close code if it sent one."""

    def __init__(self, code: int | None = None) -> None:
        super().__init__(f"websocket closed ({code})")
        self.code = code


def _frame(opcode: int, payload: bytes) -> bytes:
    """One masked client frame (clients must mask, RFC 6455 5.3)."""
    n = len(payload)
    if n < 126:
        head = struct.pack("!BB", 0x80 | opcode, 0x80 | n)
    elif n < 65536:
        head = struct.pack("!BBH", 0x80 | opcode, 0x80 | 126, n)
    else:
        head = struct.pack("!BBQ", 0x80 | opcode, 0x80 | 127, n)
    mask = random.getrandbits(32).to_bytes(4, "big")
    if n:
        repeated = (mask * (n // 4 + 1))[:n]
        payload = (int.from_bytes(payload, "big") ^ int.from_bytes(repeated, "big")).to_bytes(n, "big")
    return head + mask + payload


class RawWebSocket(asyncio.Protocol):
    def __init__(self, on_message: Callable[[str | bytes], None], on_close: Callable[[int | None], None]) -> None:
        self.on_message = on_message
        self.on_close = on_close
        self.transport: asyncio.Transport | None = None
        self.opened: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        # A handshake that fails after `connect` gave up waiting must not log "never retrieved".
        self.opened.add_done_callback(lambda done: done.cancelled() or done.exception())
        self.closed = False
        self.close_code: int | None = None
        self._buffer = bytearray()
        self._handshaking = True
        self._fragments: list[bytes] = []
        self._fragment_opcode = TEXT

    # --- connection --------------------------------------------------------------------
    @classmethod
    async def connect(
        cls,
        url: str,
        headers: dict[str, str],
        on_message: Callable[[str | bytes], None],
        on_close: Callable[[int | None], None],
        *,
        local_addr: tuple[str, int] | None = None,
        timeout: float = 60,
    ) -> RawWebSocket:
        parts = urlsplit(url)
        host, port = parts.hostname or "127.0.0.1", parts.port or 80
        loop = asyncio.get_running_loop()
        _, protocol = await asyncio.wait_for(
            loop.create_connection(lambda: cls(on_message, on_close), host, port, local_addr=local_addr), timeout
        )
        key = base64.b64encode(os.urandom(16)).decode()
        lines = [
            f"GET {parts.path or '/'}{'?' + parts.query if parts.query else ''} HTTP/1.1",
            f"Host: {host}:{port}",
            "Upgrade: websocket",
            "Connection: Upgrade",
            f"Sec-WebSocket-Key: {key}",
            "Sec-WebSocket-Version: 13",
        ]
        lines += [f"{name}: {value}" for name, value in headers.items()]
        assert protocol.transport is not None
        protocol.transport.write(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1"))
        try:
            await asyncio.wait_for(asyncio.shield(protocol.opened), timeout)
        except BaseException:
            protocol.abort()
            raise
        return protocol

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.opened.done():
            self.opened.set_exception(Closed(None))
        if not self.closed:
            self.closed = True
            self.on_close(self.close_code)

    def abort(self) -> None:
        self.closed = True
        if self.transport is not None:
            self.transport.abort()

    # --- frames ----------------------------------------------------------------------------
    def data_received(self, data: bytes) -> None:
        buffer = self._buffer
        buffer += data
        if self._handshaking:
            end = buffer.find(b"\r\n\r\n")
            if end < 0:
                return
            status = bytes(buffer[: buffer.find(b"\r\n")])
            del buffer[: end + 4]
            self._handshaking = False
            if not status.startswith(b"HTTP/1.1 101"):
                self.opened.set_exception(Closed(None))
                self.abort()
                return
            self.opened.set_result(None)
        while len(buffer) >= 2:
            first, second = buffer[0], buffer[1]
            length = second & 0x7F
            offset = 2
            if length == 126:
                if len(buffer) < 4:
                    return
                length = int.from_bytes(buffer[2:4], "big")
                offset = 4
            elif length == 127:
                if len(buffer) < 10:
                    return
                length = int.from_bytes(buffer[2:10], "big")
                offset = 10
            if len(buffer) < offset + length:
                return
            payload = bytes(buffer[offset : offset + length])
            del buffer[: offset + length]
            self._frame_received(first & 0x80, first & 0x0F, payload)
            if self.closed:
                return

    def _frame_received(self, fin: int, opcode: int, payload: bytes) -> None:
        if opcode in (TEXT, BINARY, CONTINUATION):
            if opcode != CONTINUATION:
                self._fragment_opcode = opcode
            if not fin or self._fragments:
                self._fragments.append(payload)
                if not fin:
                    return
                payload, self._fragments = b"".join(self._fragments), []
            self.on_message(payload.decode() if self._fragment_opcode == TEXT else payload)
        elif opcode == PING:
            self._write(PONG, payload)
        elif opcode == CLOSE:
            self.close_code = int.from_bytes(payload[:2], "big") if len(payload) >= 2 else 1005
            self._write(CLOSE, payload[:2])
            self.closed = True
            if self.transport is not None:
                self.transport.close()
            self.on_close(self.close_code)

    def _write(self, opcode: int, payload: bytes) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.write(_frame(opcode, payload))

    # --- the part of websockets' client API the worker uses -------------------------------------
    async def send(self, message: str | bytes) -> None:
        if self.closed or self.transport is None or self.transport.is_closing():
            raise Closed(self.close_code)
        if isinstance(message, str):
            self._write(TEXT, message.encode())
        else:
            self._write(BINARY, message)

    async def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        self._write(CLOSE, (1000).to_bytes(2, "big"))
        if self.transport is not None:
            self.transport.close()
