"""The lean uvicorn protocol: its queue and event behave as the asyncio ones uvicorn expects, and its
opening handshake answers exactly as upstream's or leaves the request to upstream."""

import asyncio
from collections.abc import AsyncIterator
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


async def _open(
    protocol_class: type[WebSocketsSansIOProtocol],
    request: bytes,
    *,
    accept: bool = True,
    early=b"",
    linger: asyncio.Event | None = None,
):
    """Hand `request` to the protocol as uvicorn's HTTP protocol does; the app accepts (or refuses) and
    reads one message after the connect, then returns (uvicorn then closes the transport) or, with
    `linger`, keeps the socket open until it is set."""
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
        if linger is not None:
            await linger.wait()

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


# --- frames written without websockets' framing ------------------------------------------------


@pytest.fixture
async def linger() -> AsyncIterator[asyncio.Event]:
    """Keeps the apps of a test's sockets open until the test ends."""
    event = asyncio.Event()
    yield event
    event.set()
    await asyncio.sleep(0)


def _sends(*payloads: str | bytes) -> list[dict[str, Any]]:
    return [
        {"type": "websocket.send", "bytes": p} if isinstance(p, bytes) else {"type": "websocket.send", "text": p}
        for p in payloads
    ]


# Lengths around the three length encodings (7 bits, 16 bits, 64 bits), text and binary, non-ASCII text.
PAYLOADS: list[str | bytes] = [
    "",
    "x" * 125,
    "é" * 63,
    "y" * 126,
    b"\x00" * 65535,
    "z" * 65536,
    b"\x01\x02",
    '{"type":"reply"}',
]


async def test_write_frames_writes_the_bytes_upstreams_send_writes_in_one_write(linger: asyncio.Event) -> None:
    upstream, upstream_transport, _ = await _open(WebSocketsSansIOProtocol, REQUEST, linger=linger)
    lean, lean_transport, _ = await _open(LeanWebSocketsProtocol, REQUEST, linger=linger)
    assert len(upstream_transport.written) == len(lean_transport.written) == 1  # the 101
    for message in _sends(*PAYLOADS):
        await upstream.send(message)
    assert lean.write_frames(_sends(*PAYLOADS)) is True
    assert len(lean_transport.written) == 2  # every frame in one transport write
    assert lean_transport.written[1] == b"".join(upstream_transport.written[1:])


async def test_write_frames_writes_what_websockets_queued_first(linger: asyncio.Event) -> None:
    lean, transport, _ = await _open(LeanWebSocketsProtocol, REQUEST, linger=linger)
    lean.conn.send_ping(b"keepalive")
    ping = Frame(Opcode.PING, b"keepalive").serialize(mask=False, extensions=[])
    assert lean.write_frames(_sends("a")) is True
    assert transport.written[1] == ping + Frame(Opcode.TEXT, b"a").serialize(mask=False, extensions=[])


async def test_write_frames_writes_nothing_unless_the_socket_takes_writes_now(linger: asyncio.Event) -> None:
    lean, transport, _ = await _open(LeanWebSocketsProtocol, REQUEST, linger=linger)
    lean.writable.clear()  # the transport pushed back: the ASGI send waits, the caller uses it
    assert lean.write_frames(_sends("a")) is False
    lean.writable.set()
    assert lean.write_frames([{"type": "websocket.close", "code": 1000}]) is False
    await lean.send({"type": "websocket.close", "code": 1000})
    written = len(transport.written)
    assert lean.write_frames(_sends("a")) is False
    assert len(transport.written) == written


async def test_write_frames_raises_on_text_utf8_cannot_carry_with_nothing_written(linger: asyncio.Event) -> None:
    lean, transport, _ = await _open(LeanWebSocketsProtocol, REQUEST, linger=linger)
    with pytest.raises(UnicodeEncodeError):
        lean.write_frames(_sends("fine", "\ud800"))
    assert len(transport.written) == 1 and lean.write_frames(_sends("next")) is True
    assert transport.written[1] == Frame(Opcode.TEXT, b"next").serialize(mask=False, extensions=[])


async def test_write_frames_lets_websockets_frame_when_an_extension_was_negotiated(linger: asyncio.Event) -> None:
    deflate = b"sec-websocket-extensions: permessage-deflate\r\nhost:"
    request = REQUEST.replace(b"host:", deflate, 1)
    upstream, upstream_transport, _ = await _open(WebSocketsSansIOProtocol, request, linger=linger)
    lean, lean_transport, _ = await _open(LeanWebSocketsProtocol, request, linger=linger)
    assert lean.conn.extensions  # permessage-deflate, negotiated on upstream's path
    for message in _sends("hello " * 50, b"\x00" * 300):
        await upstream.send(message)
    assert lean.write_frames(_sends("hello " * 50, b"\x00" * 300)) is True
    assert lean_transport.written[1] == b"".join(upstream_transport.written[1:])
