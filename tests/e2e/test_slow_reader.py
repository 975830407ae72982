"""A client that stops reading is closed with 4008 without slowing the others, on uvicorn and on daphne.

uvicorn's `send` waits on a slow reader: the hub hands that socket to a writer with a bounded
backlog. daphne's never waits (Twisted buffers in memory): the bound comes from the bytes
buffered for the socket (consumers/backpressure.py). The slow client here is a raw TCP socket
with a small receive buffer that speaks just enough WebSocket to subscribe, then never reads.
"""

import asyncio
import base64
import json
import os
import socket
import struct
import time
from typing import Any

import pytest
import redis.asyncio as aredis
from django.conf import settings

from realtime import topics
from realtime.history import RedisHistory
from tests.e2e.conftest import ClientFactory, ServerFactory, alogin
from tests.factories import make_user

pytestmark = pytest.mark.django_db(transaction=True)

EVENTS = 300
PAD = "x" * 40_000  # 300 events of ~40 KB: ~12 MB, far past the socket buffers and the 1 MiB bound


def masked_text_frame(payload: bytes) -> bytes:
    mask = os.urandom(4)
    header = bytes([0x81]) + (
        bytes([0x80 | len(payload)]) if len(payload) < 126 else bytes([0x80 | 126]) + struct.pack("!H", len(payload))
    )
    return header + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(payload))


def close_code_of(stream: bytes) -> int | None:
    """Walk the server's (unmasked) frames; the code of its close frame, if one arrived."""
    position = 0
    while position + 2 <= len(stream):
        opcode, length = stream[position] & 0x0F, stream[position + 1] & 0x7F
        position += 2
        if length == 126:
            length = struct.unpack("!H", stream[position : position + 2])[0]
            position += 2
        elif length == 127:
            length = struct.unpack("!Q", stream[position : position + 8])[0]
            position += 8
        if opcode == 0x8:
            return int(struct.unpack("!H", stream[position : position + 2])[0]) if length >= 2 else None
        position += length
    return None


def open_raw_subscriber(port: int, token: str, topic: str) -> socket.socket:
    """Handshake, subscribe, read the reply, and from then on read nothing."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 16 * 1024)
    sock.settimeout(5)
    sock.connect(("127.0.0.1", port))
    key = base64.b64encode(os.urandom(16)).decode()
    sock.sendall(
        (
            f"GET /ws/ HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: pms.v1.json\r\n"
            f"Authorization: Bearer {token}\r\n\r\n"
        ).encode()
    )
    response = b""
    while b"\r\n\r\n" not in response:
        response += sock.recv(1)
    assert response.startswith(b"HTTP/1.1 101"), response
    sock.sendall(masked_text_frame(json.dumps({"type": "subscribe", "ref": 1, "topic": topic}).encode()))
    header = sock.recv(2)
    length = header[1] & 0x7F
    if length == 126:
        length = struct.unpack("!H", sock.recv(2))[0]
    reply = b""
    while len(reply) < length:
        reply += sock.recv(length - len(reply))
    assert json.loads(reply)["ok"] is True
    return sock


def read_until_closed(sock: socket.socket, seconds: float) -> tuple[bytes, bool]:
    """What the server sent until it closed the connection (or `seconds` passed in all); and
    whether it reset the connection (RST).

    Bounded by an overall deadline, not by a pause between reads: on a busy machine the server
    may be silent for seconds before its close arrives (a 5 s pause once ended the read before
    daphne's 4008 frame came, and the test saw no close code).
    """
    deadline = time.monotonic() + seconds
    data = bytearray()
    try:
        while (left := deadline - time.monotonic()) > 0:
            sock.settimeout(left)
            chunk = sock.recv(1 << 20)
            if not chunk:
                break
            data += chunk
    except TimeoutError:
        pass
    except ConnectionResetError:
        return bytes(data), True
    return bytes(data), False


@pytest.fixture
def user(transactional_db: None) -> Any:
    return make_user()


@pytest.mark.parametrize("kind", ["uvicorn", "daphne"])
async def test_slow_reader_is_closed_4008_and_others_get_everything(
    kind: str, user: Any, start_servers: ServerFactory, open_client: ClientFactory
) -> None:
    (server,) = start_servers(1, kind=kind)
    topic = topics.notifications(str(user.pk))
    fast = await open_client(server, await alogin(server, user.email))
    await fast.ok({"type": "subscribe", "topic": topic})
    slow = await asyncio.to_thread(open_raw_subscriber, server.port, await alogin(server, user.email), topic)
    try:
        redis = aredis.Redis.from_url(settings.REDIS_URL, decode_responses=True)
        history = RedisHistory(redis)

        async def publish() -> None:
            for n in range(EVENTS):
                await history.publish(topic, "notification", {"n": n, "pad": PAD})
                if n == EVENTS // 2:
                    await asyncio.sleep(1.5)  # past the buffered-bytes grace of servers that buffer

        async def read_fast() -> list[int]:
            received: list[int] = []
            while len(received) < EVENTS:
                frame = await fast.next_event(lambda f: f["topic"] == topic)
                received.append(frame["data"]["n"])
            return received

        try:
            async with asyncio.timeout(40):
                received, _ = await asyncio.gather(read_fast(), publish())
        finally:
            await redis.aclose()
        assert received == list(range(EVENTS))
        stream, reset = await asyncio.to_thread(read_until_closed, slow, 60)
        # The server sends its 4008 close frame behind the bytes the client never read. daphne
        # (autobahn) then waits out its close handshake and aborts the connection: if that RST
        # reaches this never-reading client first, the kernel discards the unread bytes, close
        # frame included; the server's own count says it closed the socket with 4008 either way.
        assert await asyncio.to_thread(server.metric, "pms_slow_consumer_closes_total") == 1
        assert close_code_of(stream) == 4008 or reset
        assert len(stream) < EVENTS * len(PAD)  # it did not get everything: it was cut off
    finally:
        slow.close()
