"""The costs of the connect path's plumbing, in thread CPU, on one process and the real Redis.

    python -m loadtests.bench.micro [--redis redis://127.0.0.1:6379/15]

- `round trip`: one HGET through `realtime.pipelined.round_trip` on a client built like the
  server's (`BlockingConnectionPool` with a socket timeout), and the pool's own checkout and
  release beside it, which the round trip no longer pays per batch.
- `coalescer submit`: a call waiting on `realtime.coalesce.Coalescer` from twelve coroutine
  frames deep (what a socket command's `await` sits under), 1,000 at a time.
- `pub/sub read`: the broker's reader taking 5,000 published messages off its connection
  (`realtime.broker._Liveness.next_reply`, as the broker reads every event it fans out).

Run it side by side with another tree (`python -m loadtests.bench.micro` from each; the numbers
move with this machine's speed, `python -m loadtests.bench.speed`), alternated a few times.
"""

from __future__ import annotations

import argparse
import asyncio
import time
from typing import Any

import redis.asyncio as aredis

from realtime.broker import _Liveness
from realtime.coalesce import Coalescer
from realtime.pipelined import round_trip

ROUND_TRIPS = 5000
SUBMITS = 20
MESSAGES = 5000


async def round_trip_cost(url: str) -> tuple[float, float]:
    """(µs per one-command round trip, µs per pool checkout + release)."""
    pool = aredis.BlockingConnectionPool.from_url(
        url, decode_responses=True, max_connections=50, timeout=5, socket_timeout=5
    )
    client = aredis.Redis(connection_pool=pool)
    try:
        await client.hset("bench:micro", mapping={"field": "1"})
        for _ in range(200):
            await round_trip(client, [("HGET", "bench:micro", "field")])
        started = time.thread_time()
        for _ in range(ROUND_TRIPS):
            await round_trip(client, [("HGET", "bench:micro", "field")])
        trips = time.thread_time() - started
        started = time.thread_time()
        for _ in range(ROUND_TRIPS):
            conn = await pool.get_connection()
            await pool.release(conn)
        checkouts = time.thread_time() - started
        await client.delete("bench:micro")
        return trips / ROUND_TRIPS * 1e6, checkouts / ROUND_TRIPS * 1e6
    finally:
        await client.aclose()


async def submit_cost() -> float:
    """µs per `Coalescer.submit` awaited from twelve frames deep (with the gather that starts it)."""

    async def flush(items: list[int]) -> list[int]:
        return items

    coalescer: Coalescer[int, int] = Coalescer(flush)

    async def deep(levels: int, item: int) -> Any:
        if levels == 0:
            return await coalescer.submit(item)
        return await deep(levels - 1, item)

    await asyncio.gather(*(deep(12, i) for i in range(1000)))
    started = time.thread_time()
    for _ in range(SUBMITS):
        await asyncio.gather(*(deep(12, i) for i in range(1000)))
    return (time.thread_time() - started) / (SUBMITS * 1000) * 1e6


async def pubsub_read_cost(url: str) -> float:
    """µs per message read off a subscribed connection by the broker's reader."""
    channel = "bench:micro:channel"
    listener = aredis.Redis.from_url(url, protocol=2)  # as the broker's pub/sub connection speaks
    publisher = aredis.Redis.from_url(url)
    conn = listener.connection_pool.make_connection()
    try:
        await conn.connect()
        await conn.send_command("SUBSCRIBE", channel, check_health=False)
        await conn.read_response()  # the confirmation

        async def no_ping() -> None:
            return None

        liveness = _Liveness(60.0, 60.0, no_ping)
        payload = b"x" * 200
        async with publisher.pipeline(transaction=False) as pipe:
            for _ in range(MESSAGES):
                pipe.publish(channel, payload)
            await pipe.execute()
        started = time.thread_time()
        for _ in range(MESSAGES):
            reply = await liveness.next_reply(conn)
            assert reply[0] == b"message"
        return (time.thread_time() - started) / MESSAGES * 1e6
    finally:
        await conn.disconnect()
        await listener.aclose()
        await publisher.aclose()


async def run(url: str) -> None:
    for _ in range(3):
        trip, checkout = await round_trip_cost(url)
        submit = await submit_cost()
        read = await pubsub_read_cost(url)
        print(
            f"round trip {trip:.1f} us (pool checkout + release {checkout:.1f} us), "
            f"coalescer submit {submit:.1f} us, pub/sub read {read:.1f} us"
        )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--redis", default="redis://127.0.0.1:6379/15")
    args = parser.parse_args()
    import uvloop

    uvloop.run(run(args.redis))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
