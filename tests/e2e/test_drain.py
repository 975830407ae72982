"""End-to-end: a real uvicorn process drains on SIGTERM (pms/health.py).

First `/readyz` answers 503 `draining` while sockets stay open and new ones are still
accepted (connections a balancer already sent must not fail), for `PMS_DRAIN_SECONDS`; then
the sockets are closed with 1012 and the process exits. A second SIGTERM stops at once.
"""

import asyncio
import json
import signal
import time
import urllib.error
import urllib.request
from typing import Any

import pytest
from websockets.exceptions import ConnectionClosed

from realtime import topics
from tests.e2e.conftest import WAIT, Client, ClientFactory, ServerFactory, ServerProcess, alogin
from tests.factories import make_user

pytestmark = pytest.mark.django_db(transaction=True)

GRACE = 8.0  # long enough for the checks made while draining, on a busy machine


@pytest.fixture
def drain_seconds() -> float:
    return GRACE


@pytest.fixture
def user(transactional_db: None) -> Any:
    return make_user()


@pytest.fixture
def server_env(server_env: dict[str, str], drain_seconds: float) -> dict[str, str]:
    return {**server_env, "PMS_DRAIN_SECONDS": str(drain_seconds)}


def get(server: ServerProcess, path: str) -> tuple[int, dict[str, Any]]:
    try:
        with urllib.request.urlopen(f"{server.http_url}{path}", timeout=WAIT) as response:  # noqa: S310
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        with error:
            return error.code, json.loads(error.read())


async def close_code(client: Client, timeout: float) -> int | None:
    """Wait (bounded by `timeout`) for the server to close the socket; the code it sent."""
    try:
        async with asyncio.timeout(timeout):
            while True:
                await client.ws.recv()
    except ConnectionClosed as closed:
        return closed.rcvd.code if closed.rcvd is not None else None


async def wait_for_draining(server: ServerProcess) -> dict[str, Any]:
    """Poll /readyz until it answers 503 `draining` (bounded by WAIT)."""
    async with asyncio.timeout(WAIT):
        while True:
            status, body = await asyncio.to_thread(get, server, "/readyz")
            if status == 503 and body["status"] == "draining":
                return body
            assert status == 200, body  # ready until the drain starts, never another failure
            await asyncio.sleep(0.05)


async def test_sigterm_answers_readyz_503_first_then_closes_sockets_with_1012_after_the_grace(
    user: Any, start_servers: ServerFactory, open_client: ClientFactory
) -> None:
    (server,) = start_servers(1)
    token = await alogin(server, user.email)
    client: Client = await open_client(server, token)
    await client.ok({"type": "subscribe", "topic": topics.notifications(str(user.pk))})
    status, body = await asyncio.to_thread(get, server, "/readyz")
    assert status == 200 and body["status"] == "ok" and body["pid"] == server.process.pid

    signalled_at = time.monotonic()
    server.signal(signal.SIGTERM)
    body = await wait_for_draining(server)
    assert body["pid"] == server.process.pid and body["drainingFor"] >= 0
    # Draining is not dying: liveness holds, open sockets work, and a connection that is
    # already on its way from the balancer is accepted.
    assert (await asyncio.to_thread(get, server, "/healthz"))[0] == 200
    assert client.ws.state.name == "OPEN"
    late: Client = await open_client(server, token)
    for socket in (client, late):
        await socket.ok({"type": "presence.query", "userIds": [str(user.pk)]})

    codes = await asyncio.gather(close_code(client, GRACE + WAIT), close_code(late, GRACE + WAIT))
    closed_after = time.monotonic() - signalled_at
    assert list(codes) == [1012, 1012]
    assert closed_after >= GRACE, f"closed {closed_after:.2f} s after SIGTERM, before the {GRACE} s grace"
    exit_status = await asyncio.wait_for(asyncio.to_thread(server.process.wait), WAIT)
    assert exit_status in (0, -signal.SIGTERM)
    assert "Finished server process" in server.logs()


@pytest.mark.parametrize("drain_seconds", [60.0])
async def test_a_second_sigterm_stops_without_waiting_out_the_grace(
    user: Any, start_servers: ServerFactory, open_client: ClientFactory
) -> None:
    (server,) = start_servers(1)
    client: Client = await open_client(server, await alogin(server, user.email))
    server.signal(signal.SIGTERM)
    await wait_for_draining(server)
    assert client.ws.state.name == "OPEN"

    server.signal(signal.SIGTERM)
    assert await client.close_code() == 1012  # within WAIT, far inside the 60 s grace
    assert await asyncio.wait_for(asyncio.to_thread(server.process.wait), WAIT) in (0, -signal.SIGTERM)
