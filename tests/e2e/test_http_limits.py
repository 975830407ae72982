"""A body larger than any endpoint takes is refused 413 (pms/bodylimit.py), against a real uvicorn
process: announced, before it is read (the client sends only the headers and the server answers
anyway); chunked, as soon as the bound is passed while it streams."""

import json
import selectors
import socket
import time

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


def test_a_chunked_body_is_refused_as_soon_as_it_passes_the_limit_not_read_to_its_end(
    start_servers: ServerFactory, server_env: dict[str, str]
) -> None:
    """No `Content-Length`: the server counts the chunks and answers 413 once the bound is passed,
    while the client is still sending (it would send ten times the bound)."""
    server_env.update(PMS_MAX_UPLOAD_BYTES=str(1024**2), PMS_MAX_BODY_BYTES=str(256 * 1024))
    limit = 1024**2 + 256 * 1024
    (server,) = start_servers(1)
    chunk = b"x" * 65536
    frame = f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n"
    sent = 0
    response = b""
    # selectors, not select.select: a long-lived test worker may hold descriptors past 1024.
    with (
        socket.create_connection(("127.0.0.1", server.port), timeout=WAIT) as conn,
        selectors.DefaultSelector() as ready,
    ):
        ready.register(conn, selectors.EVENT_READ)
        conn.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 65536)  # keep the client's own buffering small
        conn.sendall(
            b"POST /api/v1/auth/login HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
            b"Transfer-Encoding: chunked\r\n\r\n"
        )
        while sent < 10 * limit and not response:
            try:
                conn.sendall(frame)
            except OSError:
                break  # the server answered and closed while this chunk was on its way
            sent += len(chunk)
            if ready.select(0):
                response = conn.recv(65536)
        deadline = time.monotonic() + WAIT
        while not response.endswith(b"}") and time.monotonic() < deadline:
            if not ready.select(0.1):
                continue
            more = conn.recv(65536)
            if not more:
                break
            response += more
    status_line, _, rest = response.partition(b"\r\n")
    assert int(status_line.split()[1]) == 413, response[:500]
    body = rest.partition(b"\r\n\r\n")[2]
    assert json.loads(body) == {"error": {"code": "too_large", "message": BODY_TOO_LARGE.format(limit=limit)}}
    # Refused while streaming: what was sent before the answer is the bound plus what the
    # kernel's socket buffers and the server's read buffer held, far from the whole body.
    assert sent < 3 * limit, f"the server read {sent} bytes before answering"
    print(f"[chunked 413] bound {limit} bytes; answered after the client had sent {sent}")
    assert "Traceback" not in server.logs(), server.logs()[-3000:]
