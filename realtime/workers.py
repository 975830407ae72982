"""Active maintenance workers: the seed's `maintenance:active:workers` set, kept honest by expiry.

Each member keeps `maintenance:worker:{userId}` alive (TTL 90 s by default) with heartbeats;
a worker whose server process died stops heartbeating, and the next `sweep` removes it.
"""

import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import cast

import redis.asyncio as aredis

from realtime.keys import MAINTENANCE_ACTIVE_WORKERS, maintenance_worker

DEFAULT_WORKER_TTL_SECONDS = 90.0
SWEEP_BATCH = 500

_SWEEP = (Path(__file__).parent / "lua" / "workers_sweep.lua").read_text()


class ActiveWorkers:
    """The set of maintenance staff with a socket open, on Redis, shared by every server process.

    Call `join` when a worker's first socket opens (and on reconnect), `heartbeat` more often
    than `ttl_seconds` while any is open, and `leave` when presence reports their last socket gone.
    """

    def __init__(
        self,
        redis: aredis.Redis,
        *,
        ttl_seconds: float = DEFAULT_WORKER_TTL_SECONDS,
        clock: Callable[[], float] = time.time,
    ) -> None:
        """`redis` must decode responses to str."""
        if ttl_seconds < 0.01:
            raise ValueError("worker ttl must be >= 10 ms")
        self._redis = redis
        self._ttl_ms = int(ttl_seconds * 1000)
        self._clock = clock
        self._sweep = redis.register_script(_SWEEP)

    async def join(self, user_id: str) -> None:
        """Add the worker to the set and (re)start their liveness key, in one transaction."""
        seen = datetime.fromtimestamp(self._clock(), tz=UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.sadd(MAINTENANCE_ACTIVE_WORKERS, user_id)
            pipe.set(maintenance_worker(user_id), seen, px=self._ttl_ms)
            await pipe.execute()

    async def heartbeat(self, user_id: str) -> None:
        """Refresh the liveness key; re-adds a worker a sweep removed while their heartbeat was late."""
        await self.join(user_id)

    async def leave(self, user_id: str) -> None:
        """Remove the worker and their liveness key at once."""
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.srem(MAINTENANCE_ACTIVE_WORKERS, user_id)
            pipe.delete(maintenance_worker(user_id))
            await pipe.execute()

    async def sweep(self) -> list[str]:
        """Remove members whose liveness key expired; returns their ids. A concurrent heartbeat is never lost."""
        candidates = sorted(cast(set[str], await self._redis.smembers(MAINTENANCE_ACTIVE_WORKERS)))
        removed: list[str] = []
        for start in range(0, len(candidates), SWEEP_BATCH):
            batch = candidates[start : start + SWEEP_BATCH]
            keys = [MAINTENANCE_ACTIVE_WORKERS, *(maintenance_worker(user_id) for user_id in batch)]
            removed.extend(await self._sweep(keys=keys, args=batch))
        return removed

    async def members(self) -> set[str]:
        """Members whose liveness key is alive (expired ones are left for `sweep` to remove)."""
        candidates = sorted(cast(set[str], await self._redis.smembers(MAINTENANCE_ACTIVE_WORKERS)))
        if not candidates:
            return set()
        async with self._redis.pipeline(transaction=False) as pipe:
            for user_id in candidates:
                pipe.exists(maintenance_worker(user_id))
            alive = await pipe.execute()
        return {user_id for user_id, exists in zip(candidates, alive, strict=True) if exists}
