"""Replies read straight from redis-py's hiredis reader, on real Redis: `buffered_reply` takes one
already buffered without a read and raises an error reply; a RESP3 push between replies is skipped."""

import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest
import redis.asyncio as aredis
from django.conf import settings
from redis.exceptions import ResponseError

from realtime.pipelined import NOT_BUFFERED, buffered_reply, round_trip


@pytest.fixture
async def client() -> AsyncIterator[aredis.Redis]:
    redis_client = aredis.Redis.from_url(settings.REDIS_URL, decode_responses=True)
    yield redis_client
    await redis_client.aclose()


async def _buffered(conn: Any) -> Any:
    """`buffered_reply`, reading the socket until a whole reply is there (what a reader's await does)."""
    reply = buffered_reply(conn)
    while reply is NOT_BUFFERED:
        await conn._parser.read_from_socket()
        reply = buffered_reply(conn)
    return reply


async def test_replies_already_buffered_are_taken_without_a_read_and_errors_raised(client: aredis.Redis) -> None:
    channel = f"test:pipelined:{uuid.uuid4()}"
    conn = client.connection_pool.make_connection()
    await conn.connect()
    try:
        assert buffered_reply(conn) is NOT_BUFFERED  # nothing sent, nothing there
        await conn.send_command("SUBSCRIBE", channel, check_health=False)
        assert await _buffered(conn) == ["subscribe", channel, 1]
        for n in range(3):
            await client.publish(channel, f"m{n}")
        messages = [await _buffered(conn), await _buffered(conn), await _buffered(conn)]
        assert messages == [["message", channel, f"m{n}"] for n in range(3)]
        assert buffered_reply(conn) is NOT_BUFFERED
        await conn.send_command("NOSUCHCOMMAND", check_health=False)
        with pytest.raises(ResponseError):
            await _buffered(conn)
    finally:
        await conn.disconnect()
    plain = await client.connection_pool.get_connection()
    parser = plain._parser
    try:
        plain._parser = object()  # not redis-py's hiredis parser: the caller reads as before
        assert buffered_reply(plain) is NOT_BUFFERED
    finally:
        plain._parser = parser
        await client.connection_pool.release(plain)


async def test_a_resp3_push_between_replies_is_skipped_as_redis_py_skips_it() -> None:
    client = aredis.Redis.from_url(settings.REDIS_URL, decode_responses=True, protocol=3)
    other = aredis.Redis.from_url(settings.REDIS_URL, decode_responses=True)
    key = f"test:pipelined:{uuid.uuid4()}"
    try:
        await other.set(key, "one")
        # Tracking on the connection round trips keep: reading the key makes Redis push an
        # invalidation to that connection when someone else changes it.
        assert await round_trip(client, [("CLIENT", "TRACKING", "ON"), ("GET", key)]) == ["OK", "one"]
        await other.set(key, "two")  # the push goes out now, ahead of the next reply
        assert await round_trip(client, [("GET", key), ("STRLEN", key)]) == ["two", 3]
        assert await round_trip(client, [("GET", key)]) == ["two"]
    finally:
        await other.delete(key)
        await client.aclose()
        await other.aclose()
