"""ASGI guard: an HTTP request whose body is larger than any endpoint takes is answered 413, before
a byte of it is read when it announces its length, as soon as the bound is passed when it does not.

Django's ASGI handler reads a whole body (into memory, then a temporary file) before any view
or size check runs, so without this a client could make the server store gigabytes for a
request that would be refused anyway. The bound is the largest body an endpoint accepts: an
upload of PMS_MAX_UPLOAD_BYTES plus PMS_MAX_BODY_BYTES of form fields and multipart framing.
A body without a `Content-Length` (chunked transfer) is counted as it streams in: the message
that passes the bound gets the 413 sent at once, and the app is told the client went away
(`http.disconnect`: Django drops the request it was reading), so no more of it is read or
stored; anything the app would still send is dropped. Measured by
`tests/e2e/test_http_limits.py` against a real uvicorn with a raw socket.
"""

import json
from collections.abc import Awaitable, Callable
from typing import Any

from realtime.errors import TOO_LARGE

Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]
App = Callable[..., Awaitable[None]]

BODY_TOO_LARGE = "The request body is larger than this server accepts ({limit} bytes)."


def announced_length(scope: Scope) -> int | None:
    """The request's `Content-Length` as a number; None when absent or not a number."""
    for name, value in scope.get("headers", ()):
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None


class BodyLimit:
    """Wraps the HTTP app: over `limit` announced bytes, 413 `too_large` in the API's error shape."""

    def __init__(self, app: App, limit: int) -> None:
        self.app = app
        self.limit = limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        length = announced_length(scope)
        if length is not None:
            if length <= self.limit:
                await self.app(scope, receive, send)
            else:
                await self._refuse(send)
            return
        await self._counted(scope, receive, send)

    async def _counted(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Run the app on a body of unknown length, refusing it the moment it passes the bound."""
        received = 0
        refused = False

        async def counting_receive() -> dict[str, Any]:
            nonlocal received, refused
            if refused:
                return {"type": "http.disconnect"}
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.limit:
                    refused = True
                    await self._refuse(send)
                    return {"type": "http.disconnect"}
            return message

        async def guarded_send(message: dict[str, Any]) -> None:
            if not refused:
                await send(message)

        await self.app(scope, counting_receive, guarded_send)

    async def _refuse(self, send: Send) -> None:
        body = json.dumps({"error": {"code": TOO_LARGE, "message": BODY_TOO_LARGE.format(limit=self.limit)}}).encode()
        headers = [
            (b"content-type", b"application/json"),
            (b"content-length", str(len(body)).encode()),
            (b"connection", b"close"),  # the unread body must not be taken for the next request
        ]
        await send({"type": "http.response.start", "status": 413, "headers": headers})
        await send({"type": "http.response.body", "body": body})
