"""The lean uvicorn protocol: its queue and event behave as the asyncio ones uvicorn expects, and its
opening handshake answers exactly as upstream's or leaves the request to upstream."""

import asyncio
from typing import Any

import pytest
from uvicorn.config import Config
from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol
from uvicorn.server import ServerState
from websockets.frames import Frame, Opcode

from pms.wsprotocol import LeanEvent, LeanReceiveQueue, LeanWebSocketsProtocol, parse_handshake


async def test_queue_is_fifo_and_wakes_a_waiting_getter() -> None:
    queue = LeanReceiveQueue()
    assert queue.empty() and queue.qsize() == 0
    waiting = asyncio.ensure_future(queue.get())
    await asyncio.sleep(0)
    queue.put_nowait("connect")
    assert await asyncio.wait_for(waiting, 1) == "connect"
    for item in ("a", "b", "c"):
        queue.put_nowait(item)
    assert queue.qsize() == 3 and not queue.empty()
    assert [await queue.get() for _ in range(3)] == ["a", "b", "c"]
    assert queue.empty() and queue._getters is None  # no waiter kept while idle


async def test_queue_serves_several_getters_and_a_cancelled_one_passes_its_turn_on() -> None:
    queue = LeanReceiveQueue()
    first, second = asyncio.ensure_future(queue.get()), asyncio.ensure_future(queue.get())
    await asyncio.sleep(0)
    queue.put_nowait(1)
    first.cancel()  # woken for the item, cancelled before it ran
    with pytest.raises(asyncio.CancelledError):
        await first
    assert await asyncio.wait_for(second, 1) == 1
    both = [asyncio.ensure_future(queue.get()) for _ in range(2)]
    await asyncio.sleep(0)
    queue.put_nowait(2)
    queue.put_nowait(3)
    assert sorted(await asyncio.wait_for(asyncio.gather(*both), 1)) == [2, 3]


async def test_event_waits_until_set_and_keeps_no_waiters() -> None:
    event = LeanEvent(True)
    assert event.is_set() and await event.wait() is True
    event.clear()
    waiters = [asyncio.ensure_future(event.wait()) for _ in range(2)]
    await asyncio.sleep(0.01)
    assert not any(w.done() for w in waiters)
    event.set()
    assert await asyncio.wait_for(asyncio.gather(*waiters), 1) == [True, True]
    event.clear()
    cancelled = asyncio.ensure_future(event.wait())
    await asyncio.sleep(0)
    cancelled.cancel()
    with pytest.raises(asyncio.CancelledError):
        await cancelled
    assert event._waiters == []
    event.set()
    assert event._waiters is None


# --- the lean opening handshake -------------------------------------------------------


KEY = b"dGhlIHNhbXBsZSBub25jZQ=="
REQUEST = (
    b"GET /ws/?a=1 HTTP/1.1\r\nhost: 127.0.0.1:8000\r\nupgrade: websocket\r\nconnection: Upgrade\r\n"
    b"sec-websocket-key: " + KEY + b"\r\nsec-websocket-version: 13\r\nsec-websocket-protocol: pms.v1.json, x\r\n"
    b"authorization: Bearer abc\r\n\r\n"
)


class FakeTransport(asyncio.Transport):
    def __init__(self) -> None:
        super().__init__()
        self.written: list[bytes] = []
        self.closed = False
        self.paused = False

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return {"sockname": ("127.0.0.1", 8000), "peername": ("127.0.0.1", 50000)}.get(name, default)

    def write(self, data: Any) -> None:
        self.written.append(bytes(data))

    def is_closing(self) -> bool:
        return self.closed

    def close(self) -> None:
        self.closed = True

    def pause_reading(self) -> None:
        self.paused = True

    def resume_reading(self) -> None:
        self.paused = False


async def _open(protocol_class: type[WebSocketsSansIOProtocol], request: bytes, *, accept: bool = True, early=b""):
    """Hand `request` to the protocol as uvicorn's HTTP protocol does; the app accepts (or refuses) and
    reads one message after the connect."""
    seen: dict[str, Any] = {}
    accepted = asyncio.Event()

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        seen["scope"] = scope
        seen["headers"] = list(scope["headers"])
        assert (await receive())["type"] == "websocket.connect"
        await accepted.wait()
        if not accept:
            await send({"type": "websocket.close"})
            return
        await send({"type": "websocket.accept", "subprotocol": "pms.v1.json"})
        seen["message"] = await receive()

    config = Config(app=app, ws_ping_interval=None, lifespan="off")
    config.load()
    state = ServerState()
    protocol = protocol_class(config=config, server_state=state, app_state={})
    transport = FakeTransport()
    protocol.connection_made(transport)
    protocol.data_received(request)
    if early:
        protocol.data_received(early)
    await asyncio.sleep(0)
    accepted.set()
    if accept:
        protocol.data_received(Frame(Opcode.TEXT, b'{"type":"ping"}').serialize(mask=True, extensions=[]))
    for _ in range(20):
        await asyncio.sleep(0)
    return protocol, transport, seen


@pytest.mark.parametrize(
    "early",
    [b"", Frame(Opcode.TEXT, b"first").serialize(mask=True, extensions=[])],
    ids=["alone", "with-a-frame"],  # the frame's mask is random: stable ids for xdist's collection
)
async def test_lean_handshake_answers_and_scopes_exactly_as_upstream(early: bytes) -> None:
    assert parse_handshake(REQUEST, deflate=True) is not None
    _, upstream_transport, upstream_seen = await _open(WebSocketsSansIOProtocol, REQUEST, early=early)
    _, lean_transport, lean_seen = await _open(LeanWebSocketsProtocol, REQUEST, early=early)
    assert lean_transport.written[0] == upstream_transport.written[0]
    assert lean_transport.written[0].startswith(b"HTTP/1.1 101 ")
    assert b"Sec-WebSocket-Protocol: pms.v1.json\r\n" in lean_transport.written[0]
    assert lean_seen["headers"] == upstream_seen["headers"]
    for name in ("path", "raw_path", "query_string", "subprotocols", "client", "server", "scheme"):
        assert lean_seen["scope"][name] == upstream_seen["scope"][name], name
    expected = "first" if early else '{"type":"ping"}'
    assert lean_seen["message"] == upstream_seen["message"] == {"type": "websocket.receive", "text": expected}
    assert lean_transport.paused == upstream_transport.paused  # uvicorn's own flow control, as upstream


async def test_a_refused_lean_handshake_is_answered_403_as_upstream() -> None:
    _, upstream_transport, _ = await _open(WebSocketsSansIOProtocol, REQUEST, accept=False)
    _, lean_transport, _ = await _open(LeanWebSocketsProtocol, REQUEST, accept=False)
    assert lean_transport.written[0].startswith(b"HTTP/1.1 403 ")
    assert lean_transport.closed and upstream_transport.closed
    strip_date = [line for line in lean_transport.written[0].split(b"\r\n") if not line.startswith(b"Date")]
    assert strip_date == [line for line in upstream_transport.written[0].split(b"\r\n") if not line.startswith(b"Date")]


@pytest.mark.parametrize(
    "change",
    [
        (b"GET ", b"POST "),  # upstream: 405
        (b"HTTP/1.1\r\nhost", b"HTTP/1.0\r\nhost"),
        (b"upgrade: websocket", b"upgrade: h2c"),
        (b"connection: Upgrade", b"connection: keep-alive"),
        (b"sec-websocket-version: 13", b"sec-websocket-version: 8"),
        (KEY, b"c2hvcnQ="),  # 5 bytes
        (b"authorization", b"bad name"),
        (b"pms.v1.json, x", b"pms.v1.json, (x)"),
        (b"host:", b"origin: a\r\norigin: b\r\nhost:"),
        (b"host:", b"content-length: 0\r\nhost:"),
        (b"host:", b"sec-websocket-extensions: permessage-deflate\r\nhost:"),
        (b"\r\n\r\n", b"\r\n\r\ntrailing"),
    ],
)
def test_anything_but_a_plain_handshake_takes_upstreams_path(change: tuple[bytes, bytes]) -> None:
    old, new = change
    assert parse_handshake(REQUEST.replace(old, new, 1), deflate=True) is None


def test_extensions_are_ignored_as_upstream_does_when_deflate_is_off() -> None:
    request = REQUEST.replace(b"host:", b"sec-websocket-extensions: permessage-deflate\r\nhost:", 1)
    assert parse_handshake(request, deflate=False) is not None
