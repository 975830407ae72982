"""Sliding-window rate limits on Redis sorted sets, shared by every server process."""

import math
import secrets
import time
import weakref
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import redis.asyncio as aredis

_SCRIPT = (Path(__file__).parent / "lua" / "sliding_window.lua").read_text()
# One registered script per client: limiters are built per request, hashing the script each time is waste.
_scripts: "weakref.WeakKeyDictionary[aredis.Redis, Any]" = weakref.WeakKeyDictionary()


def _script_for(redis: aredis.Redis) -> Any:
    script = _scripts.get(redis)
    if script is None:
        script = _scripts[redis] = redis.register_script(_SCRIPT)
    return script


@dataclass(frozen=True)
class LimitDecision:
    allowed: bool
    count: int
    retry_after_seconds: int


class SlidingWindowLimiter:
    """At most `limit` hits per `window_seconds` per key; the check and the record are one atomic script."""

    def __init__(self, redis: aredis.Redis, *, limit: int, window_seconds: int) -> None:
        self._redis = redis
        self._limit = limit
        self._window_ms = window_seconds * 1000
        self._script = _script_for(redis)

    async def check(self, key: str) -> LimitDecision:
        """Whether one more hit would be allowed, recording nothing."""
        return await self._run(key, record=False)

    async def hit(self, key: str) -> LimitDecision:
        """Record one hit if allowed; refused hits are not recorded."""
        return await self._run(key, record=True)

    async def _run(self, key: str, *, record: bool) -> LimitDecision:
        now_ms = int(time.time() * 1000)
        member = f"{now_ms}-{secrets.token_hex(4)}"
        allowed, count, retry_ms = await self._script(
            keys=[key], args=[now_ms, self._window_ms, self._limit, "1" if record else "0", member]
        )
        return LimitDecision(
            allowed=bool(allowed), count=int(count), retry_after_seconds=max(1, math.ceil(int(retry_ms) / 1000))
        )
