"""The upgrade-first HTTP protocol: a plain opening handshake goes straight to the WebSocket protocol
and is answered, scoped and read exactly as on uvicorn's httptools path; everything else is
httptools' protocol's, byte for byte."""

import asyncio
from typing import Any

import pytest
from uvicorn.config import Config
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
from uvicorn.server import ServerState
from websockets.frames import Frame, Opcode

from pms import httpprotocol
from pms.httpprotocol import UpgradeFirstProtocol
from pms.wsprotocol import LeanWebSocketsProtocol

KEY = b"dGhlIHNhbXBsZSBub25jZQ=="
# Header names as browsers and most clients send them: mixed case (ASGI's scope has them lower-cased).
HANDSHAKE = (
    b"GET /ws/?a=1&b=%20 HTTP/1.1\r\nHost: 127.0.0.1:8000\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
    b"Sec-WebSocket-Key: " + KEY + b"\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: pms.v1.json, x\r\n"
    b"Authorization: Bearer abc  \r\nX-Empty:\r\n\r\n"
)
PLAIN_GET = b"GET /healthz?x=1 HTTP/1.1\r\nHost: 127.0.0.1:8000\r\nAccept: */*\r\n\r\n"


class Transport(asyncio.Transport):
    """A transport that hands what it reads to whichever protocol it has now, as uvloop's does."""

    def __init__(self) -> None:
        super().__init__()
        self.protocol: Any = None
        self.written: list[bytes] = []
        self.closed = False

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return {"sockname": ("127.0.0.1", 8000), "peername": ("127.0.0.1", 50000)}.get(name, default)

    def set_protocol(self, protocol: Any) -> None:
        self.protocol = protocol

    def get_protocol(self) -> Any:
        return self.protocol

    def write(self, data: Any) -> None:
        self.written.append(bytes(data))

    def is_closing(self) -> bool:
        return self.closed

    def close(self) -> None:
        self.closed = True

    def pause_reading(self) -> None:
        pass

    def resume_reading(self) -> None:
        pass

    def receive(self, data: bytes) -> None:
        self.protocol.data_received(data)


class Made:
    """The HTTP protocols built on httptools' path (patched in where the router builds them)."""

    count = 0


class CountedHttpTools(HttpToolsProtocol):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        Made.count += 1
        super().__init__(*args, **kwargs)


@pytest.fixture(autouse=True)
def counted(monkeypatch: pytest.MonkeyPatch) -> None:
    Made.count = 0
    monkeypatch.setattr(httpprotocol, "HttpToolsProtocol", CountedHttpTools)


async def _serve(protocol_class: type[asyncio.Protocol], *chunks: bytes) -> tuple[Transport, dict[str, Any]]:
    """One connection through `protocol_class` (the router or httptools' protocol): the app answers
    HTTP with a small 200 and accepts a WebSocket, then reads one text frame."""
    seen: dict[str, Any] = {}

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        seen["scope"] = scope
        seen["headers"] = list(scope["headers"])
        if scope["type"] == "http":
            await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/plain")]})
            await send({"type": "http.response.body", "body": b"ok"})
            return
        assert (await receive())["type"] == "websocket.connect"
        await send({"type": "websocket.accept", "subprotocol": "pms.v1.json"})
        seen["message"] = await receive()

    config = Config(app=app, ws=LeanWebSocketsProtocol, ws_ping_interval=None, lifespan="off", log_level="warning")
    config.load()
    transport = Transport()
    protocol = protocol_class(config=config, server_state=ServerState(), app_state={})  # type: ignore[call-arg]
    transport.protocol = protocol
    protocol.connection_made(transport)
    for chunk in chunks:
        transport.receive(chunk)
        await asyncio.sleep(0)
    for _ in range(20):
        await asyncio.sleep(0)
    if seen.get("scope", {}).get("type") == "websocket":
        transport.receive(Frame(Opcode.TEXT, b'{"type":"ping"}').serialize(mask=True, extensions=[]))
        for _ in range(20):
            await asyncio.sleep(0)
    return transport, seen


def _without_date(response: bytes) -> list[bytes]:
    return [line for line in response.split(b"\r\n") if not line.lower().startswith(b"date:")]


async def test_a_plain_handshake_skips_httptools_and_is_served_as_on_its_path() -> None:
    routed, routed_seen = await _serve(UpgradeFirstProtocol, HANDSHAKE)
    assert Made.count == 0  # no httptools protocol was built for it
    assert isinstance(routed.protocol, LeanWebSocketsProtocol)
    upstream, upstream_seen = await _serve(HttpToolsProtocol, HANDSHAKE)
    assert routed.written[0].startswith(b"HTTP/1.1 101 ")
    assert routed.written[0] == upstream.written[0]
    assert routed_seen["headers"] == upstream_seen["headers"]
    assert all(name == name.lower() for name, _ in routed_seen["headers"])
    assert (b"authorization", b"Bearer abc") in routed_seen["headers"]
    for name in ("path", "raw_path", "query_string", "subprotocols", "client", "server", "scheme", "http_version"):
        assert routed_seen["scope"][name] == upstream_seen["scope"][name], name
    assert (
        routed_seen["message"] == upstream_seen["message"] == {"type": "websocket.receive", "text": '{"type":"ping"}'}
    )


@pytest.mark.parametrize(
    "chunks",
    [
        (PLAIN_GET,),
        (HANDSHAKE[:40], HANDSHAKE[40:]),  # a handshake over two reads
        (HANDSHAKE.replace(b"/ws/?a=1", b"/ws/\x01", 1),),  # a control byte in the target: httptools' 400
        (HANDSHAKE.replace(b"Sec-WebSocket-Version: 13", b"Sec-WebSocket-Version: 8", 1),),  # websockets' 426
        (b"NOT HTTP\r\n\r\n",),
    ],
    ids=["http-get", "split-handshake", "control-byte", "old-version", "garbage"],
)
async def test_everything_else_takes_httptools_path_with_the_same_answer(chunks: tuple[bytes, ...]) -> None:
    routed, routed_seen = await _serve(UpgradeFirstProtocol, *chunks)
    assert Made.count == 1
    upstream, upstream_seen = await _serve(HttpToolsProtocol, *chunks)
    assert [_without_date(w) for w in routed.written] == [_without_date(w) for w in upstream.written]
    assert routed.written  # something was answered
    assert routed.closed == upstream.closed
    assert routed_seen.get("headers") == upstream_seen.get("headers")


async def test_a_connection_that_sent_nothing_is_counted_and_closed_by_a_graceful_shutdown() -> None:
    config = Config(app=lambda *args: None, ws=LeanWebSocketsProtocol, lifespan="off")
    state = ServerState()
    protocol = UpgradeFirstProtocol(config=config, server_state=state, app_state={})
    transport = Transport()
    protocol.connection_made(transport)
    connections: set[Any] = set(state.connections)  # uvicorn types it as a set of its own protocols
    assert connections == {protocol}
    protocol.shutdown()  # what uvicorn's Server.shutdown calls on each connection
    assert transport.closed
    protocol.connection_lost(None)
    assert not state.connections


async def test_with_another_websocket_protocol_every_connection_takes_httptools_path() -> None:
    config = Config(app=lambda *args: None, ws="websockets-sansio", lifespan="off")
    protocol = UpgradeFirstProtocol(config=config, server_state=ServerState(), app_state={})
    transport = Transport()
    transport.protocol = protocol
    protocol.connection_made(transport)
    transport.receive(HANDSHAKE)
    assert Made.count == 1
