"""Pipelined script calls on real Redis: loaded on NOSCRIPT, one reply or error per call, in order."""

import asyncio
import uuid
from collections.abc import AsyncIterator

import pytest
import redis.asyncio as aredis
from django.conf import settings
from redis.exceptions import ResponseError

from realtime.pipelined import LuaScript, TickPipeline, evalsha_many


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


async def test_a_tick_pipeline_loads_a_script_the_server_does_not_know(client: aredis.Redis) -> None:
    script = LuaScript(f"-- {uuid.uuid4()}\nreturn redis.call('INCRBY', KEYS[1], ARGV[1])")
    key = f"test:pipelined:{uuid.uuid4()}"
    pipeline = TickPipeline(client)
    try:
        first, second = await asyncio.gather(
            pipeline.evalsha(script, [key], [1]), pipeline.evalsha(script, [key], [10])
        )
        assert (first, second) in {(1, 11), (11, 10)}  # in either order, each its own increment
        assert await client.get(key) == "11"  # each ran exactly once
    finally:
        await client.delete(key)
