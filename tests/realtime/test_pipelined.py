"""Pipelined calls on real Redis: scripts loaded on NOSCRIPT, one reply or error per call, in order;
round trips keep a connection between batches and give it up on any failure."""

import asyncio
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest
import redis.asyncio as aredis
from django.conf import settings
from redis.exceptions import ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError

from realtime.pipelined import LuaScript, TickPipeline, evalsha_many, round_trip


@pytest.fixture
async def client() -> AsyncIterator[aredis.Redis]:
    redis_client = aredis.Redis.from_url(settings.REDIS_URL, decode_responses=True)
    yield redis_client
    await redis_client.aclose()


async def test_a_script_unknown_to_the_server_is_loaded_and_every_call_runs_once(client: aredis.Redis) -> None:
    # A fresh script text: the server cannot have it cached, so the first EVALSHAs answer NOSCRIPT.
    script = client.register_script(f"-- {uuid.uuid4()}\nreturn redis.call('INCRBY', KEYS[1], ARGV[1])")
    key = f"test:pipelined:{uuid.uuid4()}"
    assert await client.script_exists(script.sha) == [False]
    try:
        assert await evalsha_many(client, script, [([key], [1]), ([key], [10]), ([key], [100])]) == [1, 11, 111]
        assert await client.get(key) == "111"  # nothing ran twice
        assert await evalsha_many(client, script, []) == []
    finally:
        await client.delete(key)


async def test_a_failing_call_leaves_its_error_in_place_and_the_others_run(client: aredis.Redis) -> None:
    script = client.register_script("return redis.call('INCRBY', KEYS[1], ARGV[1])")
    key = f"test:pipelined:{uuid.uuid4()}"
    try:
        first, bad, last = await evalsha_many(client, script, [([key], [2]), ([key], ["x"]), ([key], [3])])
        assert (first, last) == (2, 5) and isinstance(bad, ResponseError)
    finally:
        await client.delete(key)


async def test_commands_of_one_tick_share_one_round_trip_and_keep_their_own_errors(client: aredis.Redis) -> None:
    key, text = f"test:pipelined:{uuid.uuid4()}", f"test:pipelined:{uuid.uuid4()}"
    await client.set(text, "not a number")
    pipeline = TickPipeline(client)
    try:
        replies = await asyncio.gather(
            pipeline.execute("INCR", key),
            pipeline.execute("INCR", text),
            pipeline.execute("HGETALL", f"test:pipelined:{uuid.uuid4()}"),
            pipeline.execute("INCR", key),
            return_exceptions=True,
        )
        assert replies[0] == 1 and replies[3] == 2  # in the order issued
        assert isinstance(replies[1], ResponseError)
        assert replies[2] == {}  # decoded as the client decodes it
        assert pipeline.flushes == 1
    finally:
        await client.delete(key, text)


async def test_a_tick_pipeline_loads_a_script_the_server_does_not_know_once(client: aredis.Redis) -> None:
    script = LuaScript(f"-- {uuid.uuid4()}\nreturn redis.call('INCRBY', KEYS[1], ARGV[1])")
    key = f"test:pipelined:{uuid.uuid4()}"
    pipeline = TickPipeline(client)
    loads = 0
    original = client.script_load

    async def counted(script_text: Any) -> str:
        nonlocal loads
        loads += 1
        return await original(script_text)

    client.script_load = counted  # type: ignore[method-assign,assignment]  # counting the loads
    try:
        replies = await asyncio.gather(*(pipeline.evalsha(script, [key], [n]) for n in (1, 10, 100, 1000)))
        assert len(set(replies)) == 4 and max(replies) == 1111  # in any order, each its own increment
        assert await client.get(key) == "1111"  # each ran exactly once
        assert loads == 1  # the four NOSCRIPTs shared one load
    finally:
        await client.delete(key)


def _count_checkouts(client: aredis.Redis) -> list[int]:
    """How many times the pool hands out a connection from now on (a list to read it back)."""
    pool = client.connection_pool
    original = pool.get_connection
    count = [0]

    async def counted() -> object:
        count[0] += 1
        return await original()

    pool.get_connection = counted  # type: ignore[method-assign,assignment]
    return count


async def test_round_trips_keep_their_connection_instead_of_checking_one_out_each(client: aredis.Redis) -> None:
    key = f"test:pipelined:{uuid.uuid4()}"
    value = "v" * 1000
    await client.set(key, value)
    checkouts = _count_checkouts(client)
    try:
        for _ in range(20):
            assert await round_trip(client, [("GET", key), ("STRLEN", key)]) == [value, 1000]
        assert checkouts[0] == 1
        # Replies over many socket reads (2,000 x 1 KB) come back whole and in order.
        many = await round_trip(client, [("GET", key) if i % 2 else ("INCR", f"{key}:n") for i in range(2000)])
        assert many[1::2] == [value] * 1000 and many[0::2] == list(range(1, 1001))
        assert checkouts[0] == 1
    finally:
        await client.delete(key, f"{key}:n")


async def test_a_connection_killed_while_kept_is_replaced_and_the_kept_ones_let_go(client: aredis.Redis) -> None:
    checkouts = _count_checkouts(client)
    (conn_id,) = await round_trip(client, [("CLIENT", "ID")])
    assert checkouts[0] == 1
    await aredis.Redis.from_url(settings.REDIS_URL).execute_command("CLIENT", "KILL", "ID", conn_id)
    (new_id,) = await round_trip(client, [("CLIENT", "ID")])  # the dead one fails, a fresh one answers
    assert new_id != conn_id and checkouts[0] == 2


async def test_a_batch_that_times_out_gives_up_its_connection_and_its_late_reply(client: aredis.Redis) -> None:
    key, empty = f"test:pipelined:{uuid.uuid4()}", f"test:pipelined:{uuid.uuid4()}"
    await client.set(key, "here")
    try:
        with pytest.raises(RedisTimeoutError):
            await round_trip(client, [("BLPOP", empty, 0)], timeout=0.1)  # blocks until a push
        # The push answers that BLPOP at once, on its connection if it were still kept.
        await client.lpush(empty, "late")
        assert await round_trip(client, [("GET", key)]) == ["here"]  # not the late reply
        assert await client.lrange(empty, 0, -1) == ["late"]  # nobody popped it: that connection was closed
    finally:
        await client.delete(key, empty)
