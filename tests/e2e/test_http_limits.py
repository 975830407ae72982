"""A body announced larger than any endpoint takes is refused 413 before it is read (pms/bodylimit.py),
against a real uvicorn process: the client sends only the headers and the server answers anyway."""

import json
import socket

from django.conf import settings

from pms.bodylimit import BODY_TOO_LARGE
from tests.e2e.conftest import WAIT, ServerFactory


def raw_post(port: int, path: str, content_length: int, body: bytes = b"") -> tuple[int, bytes]:
    """Status and body of a POST whose headers announce `content_length` bytes but carry only `body`."""
    with socket.create_connection(("127.0.0.1", port), timeout=WAIT) as conn:
        head = (
            f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
            f"Content-Length: {content_length}\r\n\r\n"
        )
        conn.sendall(head.encode() + body)
        response = b""
        while b"\r\n\r\n" not in response or not response.endswith(b"}"):
            chunk = conn.recv(65536)
            if not chunk:
                break
            response += chunk
    status_line, _, rest = response.partition(b"\r\n")
    return int(status_line.split()[1]), rest.partition(b"\r\n\r\n")[2]


def test_a_body_announced_past_every_limit_is_refused_before_it_is_read(start_servers: ServerFactory) -> None:
    (server,) = start_servers(1)
    limit = settings.MAX_UPLOAD_BYTES + settings.DATA_UPLOAD_MAX_MEMORY_SIZE
    status, body = raw_post(server.port, "/api/v1/auth/login", 50 * 1024**3, b'{"email": ')
    assert status == 413
    assert json.loads(body) == {"error": {"code": "too_large", "message": BODY_TOO_LARGE.format(limit=limit)}}
    # Within the bound the request reaches the API as before.
    payload = b'{"email": "nobody@example.test", "password": "x"}'
    assert raw_post(server.port, "/api/v1/auth/login", len(payload), payload)[0] == 401
