"""Keepalive: the server pings; a peer that answers no ping is closed, one that answers stays.

Production uses pings every 25 s and closes after 60 s of silence (pms/devstack.py); the
same uvicorn options are shortened here so the real expiry runs in a second or two.
"""

import asyncio
import socket
import time
from typing import Any

import pytest

from tests.e2e.conftest import ClientFactory, ServerFactory, alogin
from tests.e2e.test_slow_reader import open_raw_subscriber
from tests.factories import make_user

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def user(transactional_db: None) -> Any:
    return make_user()


def silent_until_closed(sock: socket.socket, seconds: float) -> float | None:
    """Never answer pings; return after how long the server closed the connection (None: still open)."""
    started = time.monotonic()
    sock.settimeout(0.2)
    while time.monotonic() - started < seconds:
        try:
            chunk = sock.recv(65536)  # reads the server's pings, answers none
        except TimeoutError:
            continue
        except ConnectionResetError:
            return time.monotonic() - started
        if not chunk:
            return time.monotonic() - started
    return None


async def test_a_peer_that_answers_no_ping_is_closed_and_a_live_one_stays(
    user: Any, start_servers: ServerFactory, open_client: ClientFactory
) -> None:
    (server,) = start_servers(1, extra_args=("--ws-ping-interval", "0.5", "--ws-ping-timeout", "1"))
    live = await open_client(server, await alogin(server, user.email))
    silent = await asyncio.to_thread(
        open_raw_subscriber, server.port, await alogin(server, user.email), f"notifications:{user.pk}"
    )
    try:
        closed_after = await asyncio.to_thread(silent_until_closed, silent, 8)
        assert closed_after is not None and closed_after < 6, "a silent peer must be closed by the keepalive"
        await live.send({"type": "ping", "ref": "still-here"})
        assert await live.recv() == {"type": "pong", "ref": "still-here"}
    finally:
        silent.close()
