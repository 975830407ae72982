"""uvicorn's `--http` protocol for a server whose connections are nearly all WebSockets.

    uvicorn pms.asgi:application --http pms.httpprotocol:UpgradeFirstProtocol --ws pms.wsprotocol:LeanWebSocketsProtocol ...

uvicorn gives every connection an `HttpToolsProtocol`, WebSockets included: it is built (two
`logging.getLogger` calls, an httptools parser, flow control, both addresses), httptools parses
the opening handshake calling back into Python for the URL and for every header, the upgrade
is detected by scanning the headers twice more, and the request is written out again as bytes
for the WebSocket protocol, which parses it once more. Only that last parse is needed.

This protocol waits for a connection's first bytes. When they are one plainly valid opening
handshake (`pms.wsprotocol.parse_handshake`: the request `LeanWebSocketsProtocol` would answer
101 on its lean path, with the same checks and lower-cased header names as uvicorn's parser
gives), the WebSocket protocol takes the connection and that parsed handshake at once. Anything
else (every HTTP request, a handshake split over several reads, one that needs negotiation or
a refusal) goes to uvicorn's `HttpToolsProtocol` with the bytes as they came, so it is served
exactly as before, upgrades included.

The 101, the ASGI scope and everything after are the WebSocket protocol's, as on uvicorn's
path (tests/pms/test_httpprotocol.py compares both byte for byte). Measured in
docs/benchmarks.md ("Issue 14, fifth round").
"""

from __future__ import annotations

import asyncio
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from pms.wsprotocol import LeanWebSocketsProtocol, parse_handshake


class UpgradeFirstProtocol(asyncio.Protocol):
    """Hands the connection, on its first bytes, to the WebSocket protocol or to httptools' (module doc)."""

    __slots__ = ("config", "server_state", "app_state", "loop", "transport", "_lean")

    def __init__(
        self,
        config: Any,
        server_state: Any,
        app_state: dict[str, Any],
        _loop: asyncio.AbstractEventLoop | None = None,
    ) -> None:
        if not config.loaded:
            config.load()
        self.config = config
        self.server_state = server_state
        self.app_state = app_state
        self.loop = _loop
        self.transport: asyncio.Transport | None = None
        ws_class = config.ws_protocol_class
        # Only our protocol takes a parsed handshake; with any other, httptools' path for all.
        self._lean = ws_class is not None and issubclass(ws_class, LeanWebSocketsProtocol)

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        # Counted as uvicorn counts its own (`--limit-concurrency`), and closed by its shutdown.
        self.server_state.connections.add(self)

    def data_received(self, data: bytes) -> None:
        self.server_state.connections.discard(self)
        transport = self.transport
        assert transport is not None
        handshake = parse_handshake(data, deflate=bool(self.config.ws_per_message_deflate)) if self._lean else None
        if handshake is not None:
            ws = self.config.ws_protocol_class(
                config=self.config, server_state=self.server_state, app_state=self.app_state
            )
            ws.connection_made(transport)
            transport.set_protocol(ws)
            ws.start_handshake(handshake)
            return
        http = HttpToolsProtocol(
            config=self.config, server_state=self.server_state, app_state=self.app_state, _loop=self.loop
        )
        http.connection_made(transport)
        transport.set_protocol(http)
        http.data_received(data)

    def connection_lost(self, exc: Exception | None) -> None:
        self.server_state.connections.discard(self)

    def shutdown(self) -> None:
        """uvicorn's graceful shutdown: a connection that has sent nothing yet is closed."""
        if self.transport is not None:
            self.transport.close()
