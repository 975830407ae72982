"""Pooled Redis connections after a Redis restart: the next command works (issue #15).

A pool keeps its idle connections across a restart as dead sockets. Without a retry each
one failed its next command once; with up to 200 of them, presence writes kept failing
for a minute after Redis was back. Here a pool is filled, Redis is SIGKILLed and
restarted, and every command after that must succeed, the first one included.
"""

import asyncio
import uuid
from collections.abc import AsyncIterator

import pytest

from realtime import connections
from realtime.config import RealtimeSettings
from realtime.presence import RedisPresence
from tests.faults.conftest import RedisProcess

POOLED = 150  # connections opened before the restart, all dead after it


@pytest.fixture
async def pool_on(redis_process: RedisProcess) -> AsyncIterator[None]:
    """The realtime core's clients on the test's own Redis; closed, and the previous settings back, afterwards."""
    before = connections.current_settings()
    connections.configure(RealtimeSettings(redis_url=redis_process.url))
    yield
    await connections.aclose_loop_clients()
    connections.configure(before)


@pytest.mark.usefixtures("pool_on")
@pytest.mark.parametrize("keep_data", [True, False], ids=["with-data", "empty"])
async def test_every_pooled_command_after_a_redis_restart_succeeds(
    redis_process: RedisProcess, keep_data: bool
) -> None:
    client = connections.get_redis()
    presence = RedisPresence(client)
    users = [str(uuid.uuid4()) for _ in range(POOLED)]
    # POOLED commands at once: the pool opens a connection for each.
    await asyncio.gather(*(presence.connect(user, f"{user}-phone") for user in users))
    admin = redis_process.client()
    assert len(admin.client_list()) > POOLED // 2
    admin.close()

    await asyncio.to_thread(redis_process.kill)
    await asyncio.to_thread(redis_process.start, keep_data=keep_data)

    # One by one, so each takes the next idle (dead) connection; then all at once.
    for user in users:
        await presence.touch(user, f"{user}-phone", True)
    await asyncio.gather(*(presence.disconnect(user, f"{user}-phone") for user in users))
    answers = await presence.query(users)
    assert {answer["status"] for answer in answers.values()} == {"offline"}
