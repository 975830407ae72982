"""The WebSocket entry: `/ws/` is the only socket route.

A plain path check instead of Channels' URLRouter: the router copies the whole scope per
socket to add `url_route` and runs a URL resolver; with one route that is memory and CPU
for nothing (measured in docs/benchmarks.md, idle KiB per socket).
"""

from typing import Any

from consumers.socket import SocketConsumer

SOCKET_PATHS = frozenset({"/ws/", "/ws"})

socket_consumer = SocketConsumer.as_asgi()


async def websocket_application(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """Hands `/ws/` to the socket consumer; any other path is refused at the handshake (403)."""
    if scope.get("path") in SOCKET_PATHS:
        await socket_consumer(scope, receive, send)  # type: ignore[arg-type]  # a plain dict scope, not a TypedDict
        return
    message = await receive()
    if message["type"] == "websocket.connect":
        await send({"type": "websocket.close"})
