"""Pipelined script calls on real Redis: loaded on NOSCRIPT, one reply or error per call, in order."""

import uuid
from collections.abc import AsyncIterator

import pytest
import redis.asyncio as aredis
from django.conf import settings
from redis.exceptions import ResponseError

from realtime.pipelined import evalsha_many


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
