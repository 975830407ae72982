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

One behaviour differs: a text frame that is not UTF-8 closes the socket 1007 (RFC 6455) as
upstream does, but is logged as one INFO line rather than an ERROR with a traceback: it is
the client's fault, and any client could otherwise fill the server's log with tracebacks.

The subclass relies on uvicorn internals (`queue`, `writable`, `response`, `frames`,
`curr_msg_data_type`), so the uvicorn version is pinned in constraints.txt and tests/e2e run
the server with this class.
"""

from __future__ import annotations

import asyncio
from typing import Any

from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol


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


class LeanWebSocketsProtocol(WebSocketsSansIOProtocol):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.queue = LeanReceiveQueue()  # type: ignore[assignment]
        self.writable = LeanEvent(True)  # type: ignore[assignment]

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
        super().start_keepalive()
