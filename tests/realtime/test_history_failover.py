"""A topic's history across a failover and across a restart, on real redis-server processes.

A replica promoted after a failover may lack the newest entries its old master handed out
(replication is asynchronous), and nothing in the data says which: every history it holds is
of the old master's life, so its epochs end (`realtime/lua/history_life.lua`) and every offset
of them answers recovered=false, even where nothing was lost. A restart keeps what was
persisted: that history goes on, its offsets still recover.
"""

import asyncio
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from realtime import topics
from realtime.history import RedisHistory, parse_offset
from tests.e2e.conftest import free_port
from tests.faults.conftest import RedisProcess

pytestmark = pytest.mark.timeout(60)

# The faults suite's Redis runs with an append-only file fsynced on every write; the failover
# test's master and replica run without persistence (replication alone is what it is about).
NO_PERSISTENCE = ("--appendonly", "no")


@pytest.fixture
def servers() -> Iterator[list[RedisProcess]]:
    """The test's own redis-server processes (`start_redis`), killed at teardown."""
    started: list[RedisProcess] = []
    yield started
    for server in started:
        server.kill()


def start_redis(servers: list[RedisProcess], directory: Path, *extra: str) -> RedisProcess:
    """A redis-server on a free port with its data in `directory`, started and killed at teardown."""
    directory.mkdir(parents=True, exist_ok=True)
    started = RedisProcess(free_port(), directory, extra)
    servers.append(started)
    started.start()
    return started


async def linked(replica: RedisProcess) -> None:
    """Returns once the replica finished its first sync with its master (WAIT counts it from then)."""
    client = replica.async_client()
    try:
        async with asyncio.timeout(30):
            while (await client.info("replication")).get("master_link_status") != "up":
                await asyncio.sleep(0.05)
    finally:
        await client.aclose()


def epoch(offset: str) -> str:
    parsed = parse_offset(offset)
    assert parsed is not None
    return parsed.epoch


async def test_a_promoted_replica_ends_the_epochs_of_the_old_masters_life(
    servers: list[RedisProcess], tmp_path: Path
) -> None:
    # No wait before the first sync (Redis 7 waits 5 s for more replicas by default; the WAIT
    # below once ran out first on a loaded machine).
    master = start_redis(servers, tmp_path / "master", *NO_PERSISTENCE, "--repl-diskless-sync-delay", "0")
    replica = start_redis(servers, tmp_path / "replica", *NO_PERSISTENCE, "--replicaof", "127.0.0.1", str(master.port))
    await linked(replica)
    busy, quiet = topics.chat_messages(str(uuid.uuid4())), topics.chat_messages(str(uuid.uuid4()))
    old = master.async_client()
    history = RedisHistory(old)
    first = await history.publish(busy, "chat.message", {"id": "1"})
    second = await history.publish(busy, "chat.message", {"id": "2"})
    watched = await history.position(quiet)
    assert await history.since(busy, first["offset"]) == (True, [second])
    assert await old.execute_command("WAIT", 1, 5000) == 1  # the replica holds all of it
    await old.aclose()

    master.kill()  # the failover: the replica is promoted
    new = replica.async_client()
    await new.execute_command("REPLICAOF", "NO", "ONE")
    promoted = RedisHistory(new)
    # Nothing was lost here, but the promoted master cannot know that: every offset of the old
    # life answers recovered=false, for a busy topic and a quiet one alike.
    assert await promoted.since(busy, first["offset"]) == (False, [])
    assert await promoted.since(busy, second["offset"]) == (False, [])
    assert await promoted.since(quiet, watched) == (False, [])
    assert await promoted.since_many([(busy, first["offset"]), (quiet, watched)]) == [(False, []), (False, [])]
    # The next publish or position starts a new epoch, whose offsets recover as usual.
    after = await promoted.publish(busy, "chat.message", {"id": "3"})
    assert epoch(after["offset"]) != epoch(first["offset"])
    later = await promoted.publish(busy, "chat.message", {"id": "4"})
    assert await promoted.since(busy, after["offset"]) == (True, [later])
    position = await promoted.position(quiet)
    assert epoch(position) != epoch(watched)
    assert await promoted.since(quiet, position) == (True, [])
    await new.aclose()


async def test_a_restart_with_persistence_keeps_the_history(servers: list[RedisProcess], tmp_path: Path) -> None:
    aof = start_redis(servers, tmp_path / "aof")  # the faults suite's Redis: append-only, fsync always, no RDB
    topic = topics.chat_messages(str(uuid.uuid4()))
    client = aof.async_client()
    first = await RedisHistory(client).publish(topic, "chat.message", {"id": "1"})
    second = await RedisHistory(client).publish(topic, "chat.message", {"id": "2"})
    before = await client.execute_command("INFO", "replication")
    await client.aclose()

    aof.stop()  # SIGTERM: the append-only file keeps the history
    await asyncio.to_thread(aof.start)
    client = aof.async_client()
    after = await client.execute_command("INFO", "replication")
    assert before["master_replid"] != after["master_replid"]  # Redis 7 takes a new id on a restart
    history = RedisHistory(client)
    assert await history.since(topic, first["offset"]) == (True, [second])
    third = await history.publish(topic, "chat.message", {"id": "3"})
    assert epoch(third["offset"]) == epoch(first["offset"])
    assert await history.since(topic, first["offset"]) == (True, [second, third])
    await client.aclose()
