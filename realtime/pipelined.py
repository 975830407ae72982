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
from redis._parsers import hiredis as hiredis_parser
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import NoScriptError, RedisError, ResponseError
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
    stays in its command's place. HGETALL answers a dict; other replies are as redis-py's
    parser gives them for the client's protocol, decoded as the client decodes; a RESP3
    out-of-band push between them (a client-tracking invalidation) is skipped, as redis-py
    skips it. A connection error is retried once on a
    fresh connection (as redis-py's pipelines retry): use it for reads and for scripts that
    may run twice (idempotent, or at least once by contract).
    """
    if not commands:
        return []
    if is_cluster(client):
        return await _cluster_round_trip(client, commands, timeout)
    packed = b"".join([hiredis.pack_command(command) for command in commands])
    lane = _lane(client)
    try:
        return await _round_trip(lane, packed, commands, timeout)
    except RedisConnectionError:
        # A connection the server closed while idle (a restart closes them all: the lane let
        # its idle ones go with this one): once more on a fresh one.
        return await _round_trip(lane, packed, commands, timeout)


class _Lane:
    """A few connections of one client's pool kept checked out between round trips.

    redis-py's pool checkout and release (redis-py 8: a condition, a lock, a health read and
    observability records on each) and its `wait_for` around every write cost more than the
    rest of a one-command round trip: with the direct write and read below, one HGET went
    from ~120 to ~52 µs of CPU (`python -m loadtests.bench.micro`, three alternated runs).
    Round trips take an idle connection from here instead and put it back, up to `IDLE` of
    them. A connection comes back only after every reply of its batch was read; on any
    failure it is disconnected and given back to the pool, and the idle ones go too (a Redis
    restart closes them all). The pool still bounds the total: these count as in use there.
    """

    IDLE = 4

    def __init__(self, client: aredis.Redis) -> None:
        self.pool = client.connection_pool
        self.idle: list[Any] = []

    async def take(self) -> Any:
        if self.idle:
            return self.idle.pop()
        return await self.pool.get_connection()

    async def give_back(self, conn: Any) -> None:
        if len(self.idle) < self.IDLE:
            self.idle.append(conn)
        else:
            await self.pool.release(conn)

    async def discard(self, conn: Any) -> None:
        idle, self.idle = self.idle, []
        for other in (conn, *idle):
            await other.disconnect(nowait=True)
            await self.pool.release(other)


# What redis-py's hiredis reader answers while a reply is incomplete (hiredis's own default: False).
_NOT_ENOUGH_DATA = getattr(hiredis_parser, "NOT_ENOUGH_DATA", False)

# RESP3's out-of-band pushes as hiredis gives them (hiredis >= 3.2; None before: no such replies).
_PUSH = getattr(hiredis, "PushNotification", None)

_lanes: "weakref.WeakKeyDictionary[aredis.Redis, _Lane]" = weakref.WeakKeyDictionary()


def _lane(client: aredis.Redis) -> _Lane:
    lane = _lanes.get(client)
    if lane is None or lane.pool is not client.connection_pool:
        lane = _lanes[client] = _Lane(client)
    return lane


async def _round_trip(lane: _Lane, packed: bytes, commands: list[tuple[Any, ...]], timeout: float) -> list[Any]:
    conn = await lane.take()
    try:
        async with asyncio.timeout(timeout):  # one timer for the batch, not one per reply
            await _write_batch(conn, packed)
            replies = await _read_replies(conn, commands)
    except TimeoutError as exc:  # asyncio's: callers handle Redis's errors
        await lane.discard(conn)
        raise RedisTimeoutError(f"no reply within {timeout} s") from exc
    except OSError as exc:  # the socket itself (reset, broken pipe): a Redis connection error to callers
        await lane.discard(conn)
        raise RedisConnectionError(f"Redis connection lost: {exc}") from exc
    except BaseException:
        await lane.discard(conn)  # replies may be left unread on it
        raise
    await lane.give_back(conn)
    return replies


async def _write_batch(conn: Any, packed: bytes) -> None:
    """The batch written to the connection's stream. redis-py's `send_packed_command` wraps
    the write in `wait_for` (a task per call) for its socket timeout; the batch's own timer
    already covers it here."""
    writer = getattr(conn, "_writer", None)
    if writer is None or writer.is_closing():  # not connected (or a redis-py without it): its own way
        await conn.send_packed_command(packed, check_health=False)
        return
    writer.write(packed)
    await writer.drain()


NOT_BUFFERED = object()
"""What `buffered_reply` answers when no whole reply is buffered yet."""


def buffered_reply(conn: Any) -> Any:
    """The connection's next reply if a whole one is already buffered in redis-py's hiredis reader,
    else `NOT_BUFFERED`: no await, no timer. An error reply is raised, as `read_response` raises it.

    For readers that take replies one by one as they come (the broker's pub/sub connection):
    one socket read brings many, and redis-py's `read_response` sets up a timeout and its
    wrappers for each even when it is already there. Any other parser: always `NOT_BUFFERED`
    (the caller reads as before).
    """
    parser = getattr(conn, "_parser", None)
    if not isinstance(parser, hiredis_parser._AsyncHiredisParser) or not getattr(parser, "_connected", False):
        return NOT_BUFFERED
    reader = getattr(parser, "_reader", None)
    if reader is None:
        return NOT_BUFFERED
    reply = reader.gets()  # a RESP3 push comes as it is: on a pub/sub connection, that is the message
    if reply is _NOT_ENOUGH_DATA:
        return NOT_BUFFERED
    if isinstance(reply, RedisError):  # an error reply, or the connection's own failure
        raise reply
    return reply


async def _read_replies(conn: Any, commands: list[tuple[Any, ...]]) -> list[Any]:
    """One reply per command. With redis-py's hiredis parser, straight from its reader (a reply
    already buffered costs one `gets()`); otherwise through `read_response`, one call each."""
    parser = getattr(conn, "_parser", None)
    reader = getattr(parser, "_reader", None) if isinstance(parser, hiredis_parser._AsyncHiredisParser) else None
    replies: list[Any] = []
    for command in commands:
        if reader is not None:
            reply = reader.gets()
            # No whole reply buffered yet, or a RESP3 out-of-band push (redis-py only logs them).
            while reply is _NOT_ENOUGH_DATA or (_PUSH is not None and isinstance(reply, _PUSH)):
                if reply is _NOT_ENOUGH_DATA:
                    await parser.read_from_socket()  # type: ignore[union-attr]  # raises on EOF
                reply = reader.gets()
            if isinstance(reply, RedisConnectionError):  # what redis-py raises rather than returns
                raise reply
        else:
            try:
                reply = await conn.read_response(timeout=math.inf)
            except ResponseError as exc:
                reply = exc
        # An error reply (a ResponseError) stays in its command's place; the stream stays in step.
        if command[0] == "HGETALL" and isinstance(reply, list):
            reply = dict(zip(reply[::2], reply[1::2], strict=True))
        replies.append(reply)
    return replies


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
        self._loading: dict[str, asyncio.Future[Any]] = {}  # script sha -> its SCRIPT LOAD in flight

    @property
    def flushes(self) -> int:
        """Round trips made so far (tests)."""
        return self._coalescer.flushes

    def execute(self, *args: Any) -> "asyncio.Future[Any]":
        """Await it for the reply of one command (`"HGETALL", key`), or its error raised.

        The coalescer's future itself, not a coroutine around it: one frame less to resume."""
        return self._coalescer.submit(args)

    async def evalsha(self, script: Script, keys: list[str], args: list[Any]) -> Any:
        """One call of a script; loaded first if Redis does not know it (NOSCRIPT).

        The calls that meet NOSCRIPT together (a burst's first batch after a Redis start or
        SCRIPT FLUSH: ~500 in the bench's first connect phase) wait for one load, not one each.
        """
        try:
            return await self._coalescer.submit(("EVALSHA", script.sha, len(keys), *keys, *args))
        except NoScriptError:
            loading = self._loading.get(script.sha)
            if loading is None:
                loading = self._loading[script.sha] = asyncio.ensure_future(self._client.script_load(script.script))
                loading.add_done_callback(lambda _: self._loading.pop(script.sha, None))
            await asyncio.shield(loading)  # one caller cancelled does not cancel the others' load
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
