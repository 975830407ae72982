"""Active maintenance workers on real Redis: membership, heartbeats, and the sweep after real expiry."""

import asyncio
import uuid
from collections.abc import AsyncIterator

import pytest
import redis.asyncio as aredis
from django.conf import settings

from realtime.keys import MAINTENANCE_ACTIVE_WORKERS, maintenance_worker
from realtime.workers import ActiveWorkers


@pytest.fixture
async def redis_client() -> AsyncIterator[aredis.Redis]:
    client = aredis.Redis.from_url(settings.REDIS_URL, decode_responses=True)
    yield client
    await client.aclose()


def new_id() -> str:
    return str(uuid.uuid4())


async def test_join_adds_the_worker_and_starts_a_90_second_key(redis_client: aredis.Redis) -> None:
    workers, worker = ActiveWorkers(redis_client), new_id()
    await workers.join(worker)
    assert await redis_client.smembers(MAINTENANCE_ACTIVE_WORKERS) == {worker}
    assert 89_000 < await redis_client.pttl(maintenance_worker(worker)) <= 90_000
    assert await workers.members() == {worker}


async def test_heartbeats_keep_a_worker_past_the_ttl(redis_client: aredis.Redis) -> None:
    workers, worker = ActiveWorkers(redis_client, ttl_seconds=1.0), new_id()
    await workers.join(worker)
    for _ in range(5):
        await asyncio.sleep(0.25)
        await workers.heartbeat(worker)
    assert await workers.sweep() == []
    assert await workers.members() == {worker}


async def test_sweep_removes_only_workers_whose_key_expired(redis_client: aredis.Redis) -> None:
    workers, gone, alive = ActiveWorkers(redis_client, ttl_seconds=0.6), new_id(), new_id()
    await workers.join(gone)
    await workers.join(alive)
    for _ in range(4):
        await asyncio.sleep(0.2)
        await workers.heartbeat(alive)
    assert await workers.members() == {alive}  # read before the sweep: expired members are not reported
    assert await redis_client.smembers(MAINTENANCE_ACTIVE_WORKERS) == {gone, alive}
    assert await workers.sweep() == [gone]
    assert await redis_client.smembers(MAINTENANCE_ACTIVE_WORKERS) == {alive}
    assert await workers.sweep() == []


async def test_a_late_heartbeat_after_a_sweep_adds_the_worker_back(redis_client: aredis.Redis) -> None:
    workers, worker = ActiveWorkers(redis_client, ttl_seconds=0.2), new_id()
    await workers.join(worker)
    await asyncio.sleep(0.3)
    assert await workers.sweep() == [worker]
    await workers.heartbeat(worker)
    assert await workers.members() == {worker}


async def test_leave_removes_the_worker_and_its_key(redis_client: aredis.Redis) -> None:
    workers, worker, other = ActiveWorkers(redis_client), new_id(), new_id()
    await workers.join(worker)
    await workers.join(other)
    await workers.leave(worker)
    assert await workers.members() == {other}
    assert await redis_client.exists(maintenance_worker(worker)) == 0


async def test_sweep_of_an_empty_set_removes_nothing(redis_client: aredis.Redis) -> None:
    assert await ActiveWorkers(redis_client).sweep() == []
    assert await ActiveWorkers(redis_client).members() == set()
