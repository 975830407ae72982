"""Mass disconnect: many sockets closing at once (a load balancer restart, a network blip).

The issue measured 1,000 sockets closing with 500 closes in flight: 879 presence updates
failed with `No connection available` (one Redis call per close ran the pool dry), those
users stayed `online` for the presence TTL (5 minutes), and the log got a traceback per
socket. Closes are now batched like opens (one pipelined round trip per burst, retried,
one log line per burst). Here the TTL is the production 5 minutes, so a user still
`online` after the burst can only be a failed update, never something expiry hid.
"""

import asyncio
import signal
import time

import pytest
import redis
from websockets.asyncio.client import ClientConnection, connect

from realtime.keys import chat_presence, chat_presence_connections
from tests.e2e.conftest import ServerFactory, ServerProcess
from tests.factories import make_user
from tests.faults.conftest import WAIT, RedisProcess, session_token, start_own_servers, wait_for

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.timeout(300)]

USERS = 250
SOCKETS_PER_USER = 4  # 1,000 sockets, as measured in the issue
STALL_SECONDS = 6.0  # longer than a Redis command's timeout (5 s)
CONNECTS_IN_FLIGHT = 100  # opening is not what is tested: keep it gentle on a shared machine


def _statuses(client: redis.Redis, user_ids: list[str]) -> dict[str, tuple[str | None, int]]:
    """Per user: the presence hash's status and how many sockets are registered."""
    with client.pipeline(transaction=False) as pipe:
        for user_id in user_ids:
            pipe.hget(chat_presence(user_id), "status")
            pipe.zcard(chat_presence_connections(user_id))
        replies = pipe.execute()
    return {user_id: (replies[2 * i], int(replies[2 * i + 1])) for i, user_id in enumerate(user_ids)}


@pytest.fixture
def crowd(start_servers: ServerFactory, server_env: dict[str, str]) -> tuple[ServerProcess, dict[str, str]]:
    """One server with the production presence TTL, and a session token per user (committed)."""
    server_env["PMS_PRESENCE_TTL_SECONDS"] = "300"  # production: only a write can mark them offline in time
    tokens = {}
    for _ in range(USERS):
        user = make_user()
        tokens[str(user.pk)] = session_token(user)
    (server,) = start_own_servers(start_servers, 1)
    return server, tokens


@pytest.mark.parametrize("stall", [0.0, STALL_SECONDS], ids=["redis-healthy", "redis-stalled"])
async def test_a_thousand_sockets_closing_at_once_leave_every_user_offline_with_no_traceback_per_socket(
    crowd: tuple[ServerProcess, dict[str, str]], redis_process: RedisProcess, stall: float
) -> None:
    server, tokens = crowd
    user_ids = sorted(tokens)
    store = redis_process.client()

    gate = asyncio.Semaphore(CONNECTS_IN_FLIGHT)

    async def open_socket(token: str) -> ClientConnection:
        async with gate:
            return await connect(
                server.ws_url,
                additional_headers={"Authorization": f"Bearer {token}"},
                subprotocols=["pms.v1.json"],  # type: ignore[list-item]
                open_timeout=WAIT * 3,
                close_timeout=WAIT,
            )

    sockets = await asyncio.gather(*(open_socket(tokens[u]) for u in user_ids for _ in range(SOCKETS_PER_USER)))
    try:
        await wait_for(
            lambda: all(
                status == "online" and count == SOCKETS_PER_USER
                for status, count in _statuses(store, user_ids).values()
            ),
            60,
            "every user online with all their sockets registered",
        )
        # Redis shows the sockets registered before the opening batches have announced them
        # (one more read each): a stall then would fail an opening batch, not the closes.
        await wait_for(
            lambda: server.metric("pms_presence_opens_settled_total") == len(sockets),
            60,
            "every opening socket's presence registration finished",
        )
        logged_before = len(server.logs())
        started = time.monotonic()
        # Every socket at once, as a network blip does: no close handshake, the server sees
        # 1,000 connections reset within a loop turn or two.
        if stall:
            redis_process.signal(signal.SIGSTOP)
        for ws in sockets:
            ws.transport.abort()
        if stall:
            # Redis answers nothing for longer than a command's 5 s timeout while the burst
            # arrives: whatever write of it fails must be written again when Redis is back.
            await asyncio.sleep(stall)  # the stall itself, not a wait for a condition
            redis_process.signal(signal.SIGCONT)
        await wait_for(
            lambda: all(status == "offline" and count == 0 for status, count in _statuses(store, user_ids).values()),
            60,
            "every user offline with no socket registered",
        )
        took = time.monotonic() - started
    finally:
        await asyncio.gather(*(ws.close() for ws in sockets), return_exceptions=True)
        store.close()
    burst_log = server.logs()[logged_before:]
    print(f"[mass disconnect] {len(sockets)} sockets closed; every user offline after {took:.1f} s")
    assert "Traceback" not in burst_log, burst_log[-5000:]
    assert "No connection available" not in burst_log
    failures = burst_log.count("presence update failed for")
    if stall:
        # Writes Redis could not answer are retried: at most one line per batch of closes (500
        # sockets), never one per socket.
        assert failures <= len(sockets) // 500 + 1, burst_log[-5000:]
    else:
        # Redis healthy: not one failed write (the issue measured 879 of 1,000).
        assert failures == 0, burst_log[-5000:]
