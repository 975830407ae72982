"""Many Redis calls in one pipelined round trip: calls of one Lua script, and the commands of one loop tick.

redis-py's `Script(..., client=pipeline)` checks `SCRIPT EXISTS` before every pipeline it
runs (an extra round trip per batch); here EVALSHA goes out directly and, only if the
server answers NOSCRIPT (first use, or after a flush or failover), the script is loaded
and the calls that did not run are sent again.
"""

import hashlib
import weakref
from typing import Any, Protocol

import redis.asyncio as aredis
from redis.exceptions import NoScriptError

from realtime.batching import Batcher

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
    async with client.pipeline(transaction=False) as pipe:
        for script_keys, args in calls:
            pipe.evalsha(script.sha, len(script_keys), *script_keys, *args)
        return list(await pipe.execute(raise_on_error=False))


class TickPipeline:
    """Redis commands issued in one event-loop tick go out as one pipelined round trip.

    Sockets opening in a burst each read their session hash, their topic decisions and
    their topics' positions: one command each, from many tasks in the same tick. Sent one by
    one, each pays redis-py's pool checkout, its retry and timeout wrappers and a socket
    write and read (50-80 µs of Python per command measured on the connect path, and a
    burst of them runs the pool dry). Here the tick's commands share one checkout, one write
    and one read; each caller still gets its own reply or its own exception.

    Replies are decoded as the client's (`decode_responses`). Commands are sent in the order
    they were issued, so two commands of one task keep their order.
    """

    def __init__(self, client: aredis.Redis, *, max_size: int = 500) -> None:
        self._client = client
        self._batcher: Batcher[tuple[Any, ...], Any] = Batcher(self._flush, max_size=max_size)

    @property
    def flushes(self) -> int:
        """Round trips made so far (tests)."""
        return self._batcher.flushes

    async def execute(self, *args: Any) -> Any:
        """The reply of one command (`"HGETALL", key`), or its error raised."""
        return await self._batcher.submit(args)

    async def evalsha(self, script: Script, keys: list[str], args: list[Any]) -> Any:
        """One call of a registered script; loaded first if Redis does not know it (NOSCRIPT)."""
        try:
            return await self._batcher.submit(("EVALSHA", script.sha, len(keys), *keys, *args))
        except NoScriptError:
            await self._client.script_load(script.script)
            return await self._batcher.submit(("EVALSHA", script.sha, len(keys), *keys, *args))

    async def _flush(self, commands: list[tuple[Any, ...]]) -> list[Any]:
        async with self._client.pipeline(transaction=False) as pipe:
            for command in commands:
                pipe.execute_command(*command)
            return list(await pipe.execute(raise_on_error=False))


_tick_pipelines: "weakref.WeakKeyDictionary[aredis.Redis, TickPipeline]" = weakref.WeakKeyDictionary()


def tick_pipeline(client: aredis.Redis) -> TickPipeline:
    """The tick pipeline of `client` (clients are per event loop, so this is too)."""
    pipeline = _tick_pipelines.get(client)
    if pipeline is None:
        pipeline = _tick_pipelines[client] = TickPipeline(client)
    return pipeline
