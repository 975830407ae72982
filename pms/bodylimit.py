"""ASGI guard: an HTTP request that announces a body larger than any endpoint takes is answered 413
before a byte of it is read.

Django's ASGI handler reads a whole body (into memory, then a temporary file) before any view
or size check runs, so without this a client could make the server store gigabytes for a
request that would be refused anyway. The bound is the largest body an endpoint accepts: an
upload of PMS_MAX_UPLOAD_BYTES plus PMS_MAX_BODY_BYTES of form fields and multipart framing.
Bodies without a `Content-Length` (chunked) are left to Django's own limits.
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
        length = announced_length(scope) if scope["type"] == "http" else None
        if length is None or length <= self.limit:
            await self.app(scope, receive, send)
            return
        body = json.dumps({"error": {"code": TOO_LARGE, "message": BODY_TOO_LARGE.format(limit=self.limit)}}).encode()
        headers = [
            (b"content-type", b"application/json"),
            (b"content-length", str(len(body)).encode()),
            (b"connection", b"close"),  # the unread body must not be taken for the next request
        ]
        await send({"type": "http.response.start", "status": 413, "headers": headers})
        await send({"type": "http.response.body", "body": body})
