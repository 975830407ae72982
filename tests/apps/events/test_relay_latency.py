"""Commit-to-publish latency of the relay task, measured on the real stack (prints p50/p99/max).

Run alone to read the figures: `scripts/test tests/apps/events/test_relay_latency.py -q -s`.
The module docstring of `apps/events/relay.py` quotes them.
"""

import asyncio
import statistics
import threading
import time
from collections.abc import Iterator

import msgpack
import pytest
import redis.asyncio as aredis
from django.conf import settings
from django.db import connections as db_connections
from django.db import transaction

from apps.events import relay as outbox_relay
from apps.events.outbox import send_event_on_commit
from apps.events.relay import OutboxRelay
from realtime import topics

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.timeout(60)]

COMMITS = 300
GAP_SECONDS = 0.02
# The bound this test holds the relay to: far above the measured p99, far below a sweep.
P99_BOUND_SECONDS = 0.25


@pytest.fixture
def relay_installed() -> Iterator[None]:
    yield
    outbox_relay.install(None)


async def test_commit_to_publish_latency(relay_installed: None) -> None:
    topic = topics.property_changes("00000000-0000-4000-8000-0000000000b1")
    relay = OutboxRelay(sweep_seconds=60)  # signals only: the sweep must not be what delivers
    outbox_relay.install(relay)
    relay.start()
    client = aredis.Redis.from_url(settings.REDIS_URL)
    pubsub = client.pubsub()
    await pubsub.subscribe(topic)
    committed: dict[int, float] = {}
    received: dict[int, float] = {}

    def write() -> None:
        try:
            for n in range(COMMITS):
                with transaction.atomic():
                    send_event_on_commit(topic=topic, event="property.updated", data={"n": n})
                committed[n] = time.perf_counter()
                time.sleep(GAP_SECONDS)  # the load's pace, not a wait for the result
        finally:
            db_connections.close_all()

    async def read() -> None:
        while len(received) < COMMITS:
            message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=1.0)
            if message is not None:
                frame = msgpack.unpackb(message["data"], raw=False)
                received[frame["data"]["n"]] = time.perf_counter()

    writer = threading.Thread(target=write)
    try:
        reader = asyncio.create_task(read())
        writer.start()
        await asyncio.wait_for(reader, timeout=COMMITS * GAP_SECONDS + 20)
    finally:
        writer.join(30)
        await relay.stop()
        await pubsub.aclose()
        await client.aclose()
    latencies = sorted(received[n] - committed[n] for n in range(COMMITS))
    p50 = statistics.median(latencies)
    p99 = latencies[int(len(latencies) * 0.99) - 1]
    print(
        f"\noutbox commit-to-publish over {COMMITS} commits: p50 {p50 * 1000:.1f} ms,"
        f" p99 {p99 * 1000:.1f} ms, max {latencies[-1] * 1000:.1f} ms ({relay.passes} relay passes)"
    )
    assert p99 < P99_BOUND_SECONDS
