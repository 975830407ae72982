"""Many calls of one registered Lua script in one pipelined round trip.

redis-py's `Script(..., client=pipeline)` checks `SCRIPT EXISTS` before every pipeline it
runs (an extra round trip per batch); here EVALSHA goes out directly and, only if the
server answers NOSCRIPT (first use, or after a flush or failover), the script is loaded
and the calls that did not run are sent again.
"""

import hashlib
from typing import Any, Protocol

import redis.asyncio as aredis
from redis.exceptions import NoScriptError

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
