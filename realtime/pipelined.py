"""Many Redis calls in one pipelined round trip: calls of one Lua script, and the commands of one loop tick.

redis-py's `Script(..., client=pipeline)` checks `SCRIPT EXISTS` before every pipeline it
runs (an extra round trip per batch); here EVALSHA goes out directly and, only if the
server answers NOSCRIPT (first use, or after a flush or failover), the script is loaded
and the calls that did not run are sent again.
"""

import asyncio
import hashlib
import math
import weakref
from typing import Any, Protocol

import hiredis
import redis.asyncio as aredis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import NoScriptError, ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError

from realtime.coalesce import Coalescer
from realtime.connections import is_cluster

Call = tuple[list[str], list[Any]]


class Script(Protocol):
    """A Lua script and its SHA1 (redis-py's registered scripts qualify, as does `LuaScript`)."""

    @property
    def script(self) -> str | bytes | memoryview: ...

    @property
    def sha(self) -> str: ...


class LuaScript:
    """A script not bound to one client (redis-py's `register_script` is)."""

    def __init__(self, script: str) -> None:
        self.script = script
        self.sha = hashlib.sha1(script.encode()).hexdigest()


async def evalsha_many(client: aredis.Redis, script: Script, calls: list[Call]) -> list[Any]:
    """One reply per (keys, args), in order; a call that failed has its exception in its place."""
    replies = await _send(client, script, calls)
    unrun = [i for i, reply in enumerate(replies) if isinstance(reply, NoScriptError)]
    if unrun:
        await client.script_load(script.script)
        for i, reply in zip(unrun, await _send(client, script, [calls[i] for i in unrun]), strict=True):
            replies[i] = reply
    return replies


async def _send(client: aredis.Redis, script: Script, calls: list[Call]) -> list[Any]:
    return await round_trip(
        client, [("EVALSHA", script.sha, len(script_keys), *script_keys, *args) for script_keys, args in calls]
    )


async def round_trip(client: aredis.Redis, commands: list[tuple[Any, ...]], timeout: float = 5.0) -> list[Any]:
    """One reply per command, in order, in one write and one read on one pooled connection.

    The lean path for the hottest commands: hiredis packs them (in C, where redis-py's
    pipeline packs each argument in Python), one timer covers the batch, and an error reply
    stays in its command's place. HGETALL answers a dict; other replies are as Redis sends
    them (RESP2), decoded as the client decodes. A connection error is retried once on a
    fresh connection (as redis-py's pipelines retry): use it for reads and for scripts that
    may run twice (idempotent, or at least once by contract).
    """
    if not commands:
        return []
    if is_cluster(client):
        return await _cluster_round_trip(client, commands, timeout)
    packed = b"".join([hiredis.pack_command(command) for command in commands])
    try:
        return await _round_trip(client, packed, commands, timeout)
    except RedisConnectionError:
        # A pooled connection the server closed while idle: once more on a fresh one.
        return await _round_trip(client, packed, commands, timeout)


async def _round_trip(
    client: aredis.Redis, packed: bytes, commands: list[tuple[Any, ...]], timeout: float
) -> list[Any]:
    pool = client.connection_pool
    conn = await pool.get_connection()
    try:
        async with asyncio.timeout(timeout):  # one timer for the batch, not one per reply
            await conn.send_packed_command(packed, check_health=False)
            replies: list[Any] = []
            for command in commands:
                try:
                    reply = await conn.read_response(timeout=math.inf)
                except ResponseError as exc:  # that command's own error; the stream stays in step
                    reply = exc
                if command[0] == "HGETALL" and isinstance(reply, list):
                    reply = dict(zip(reply[::2], reply[1::2], strict=True))
                replies.append(reply)
            return replies
    except TimeoutError as exc:  # asyncio's: callers handle Redis's errors
        await conn.disconnect(nowait=True)
        raise RedisTimeoutError(f"no reply within {timeout} s") from exc
    except BaseException:
        await conn.disconnect(nowait=True)  # replies may be left unread on it
        raise
    finally:
        await pool.release(conn)


async def _cluster_round_trip(client: aredis.Redis, commands: list[tuple[Any, ...]], timeout: float) -> list[Any]:
    """`round_trip` on Redis Cluster: redis-py's cluster pipeline, one round trip per master involved.

    Correctness first, at a cost: commands are packed by redis-py in Python (not hiredis) and
    routed by slot, with MOVED/ASK and failover retries. An MGET whose keys span slots goes
    out as one GET per key, its replies joined back into one list (no CROSSSLOT error).
    """
    expanded: list[tuple[Any, ...]] = []
    spans: list[tuple[int, int | None]] = []  # (first reply, number of GETs of a split MGET, else None)
    for command in commands:
        if command[0] == "MGET":
            spans.append((len(expanded), len(command) - 1))
            expanded.extend(("GET", key) for key in command[1:])
        else:
            spans.append((len(expanded), None))
            expanded.append(command)
    pipe = client.pipeline(transaction=False)
    for command in expanded:
        pipe.execute_command(*command)
    try:
        async with asyncio.timeout(timeout):
            raw = await pipe.execute(raise_on_error=False)
    except TimeoutError as exc:
        raise RedisTimeoutError(f"no reply within {timeout} s") from exc
    for reply in raw:
        if isinstance(reply, (RedisConnectionError, RedisTimeoutError)):
            raise reply  # the batch failed, as on one server
    replies: list[Any] = []
    for start, count in spans:
        if count is None:
            replies.append(raw[start])
        else:
            part = raw[start : start + count]
            error = next((reply for reply in part if isinstance(reply, Exception)), None)
            replies.append(error if error is not None else part)
    return replies


class TickPipeline:
    """Redis commands issued while the previous batch is out go together, in one round trip.

    Sockets opening in a burst each read their session hash, their topic decisions and
    their topics' positions: one command each, from many tasks. Sent one by one, each pays
    redis-py's pool checkout, retry and timeout wrappers, its Python packing and a socket
    write and read (50-80 µs of Python per command measured on the connect path, and a
    burst of them ran the pool dry). Here the commands of one loop turn, and those issued
    while a batch is out, share one pooled connection, one write (packed by hiredis, in C)
    and one timeout; each caller still gets its own reply or its own exception. One batch is
    out at a time (`Coalescer`), so a burst holds one connection of the pool, not hundreds.

    Replies as `round_trip` gives them. Commands go out in the order they were issued. A
    connection error fails the whole batch once it was retried on a new connection: use it
    for reads and scripts that may run twice.
    """

    def __init__(self, client: aredis.Redis, *, timeout: float = 5.0) -> None:
        self._client = client
        self._timeout = timeout
        self._coalescer: Coalescer[tuple[Any, ...], Any] = Coalescer(self._flush)

    @property
    def flushes(self) -> int:
        """Round trips made so far (tests)."""
        return self._coalescer.flushes

    def execute(self, *args: Any) -> "asyncio.Future[Any]":
        """Await it for the reply of one command (`"HGETALL", key`), or its error raised.

        The coalescer's future itself, not a coroutine around it: one frame less to resume."""
        return self._coalescer.submit(args)

    async def evalsha(self, script: Script, keys: list[str], args: list[Any]) -> Any:
        """One call of a script; loaded first if Redis does not know it (NOSCRIPT)."""
        try:
            return await self._coalescer.submit(("EVALSHA", script.sha, len(keys), *keys, *args))
        except NoScriptError:
            await self._client.script_load(script.script)
            return await self._coalescer.submit(("EVALSHA", script.sha, len(keys), *keys, *args))

    async def _flush(self, commands: list[tuple[Any, ...]]) -> list[Any]:
        return await round_trip(self._client, commands, self._timeout)


_tick_pipelines: "weakref.WeakKeyDictionary[aredis.Redis, TickPipeline]" = weakref.WeakKeyDictionary()


def tick_pipeline(client: aredis.Redis) -> TickPipeline:
    """The tick pipeline of `client` (clients are per event loop, so this is too)."""
    pipeline = _tick_pipelines.get(client)
    if pipeline is None:
        pipeline = _tick_pipelines[client] = TickPipeline(client)
    return pipeline
