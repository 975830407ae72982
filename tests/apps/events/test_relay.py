"""The outbox relay: its own task, outside any transaction, one relay at a time, never in the request."""

import asyncio
import json
import socket
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
import redis
from asgiref.sync import sync_to_async
from channels.testing import HttpCommunicator
from django.db import connection as db_connection
from django.db import connections as db_connections
from django.db import transaction
from django.db.transaction import TransactionManagementError

from apps.events import relay as outbox_relay
from apps.events.models import OutboxEvent
from apps.events.outbox import send_event_on_commit
from apps.events.relay import RELAY_LOCK_KEY, OutboxRelay
from apps.events.relay import outbox_relay as relay_now
from realtime import connections, topics
from tests.apps.test_change_events import Listener, position, since
from tests.consumers.conftest import token_for
from tests.factories import make_property, make_user

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def blackhole() -> Iterator[str]:
    """A TCP port that accepts connections and never answers: a Redis that hangs (not one that refuses)."""
    server = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    server.bind(("127.0.0.1", 0))
    server.listen(64)
    yield f"redis://127.0.0.1:{server.getsockname()[1]}/0"
    server.close()


def hanging_client(url: str, timeout: float) -> redis.Redis:
    return redis.Redis.from_url(url, socket_timeout=timeout, socket_connect_timeout=timeout)


@pytest.fixture
def relay_installed() -> Iterator[None]:
    """Uninstall the relay a test installed as the process's (the test stops it)."""
    yield
    outbox_relay.install(None)


def lock_holders() -> list[int]:
    """Backends of this database holding the relay's session advisory lock."""
    with db_connection.cursor() as cursor:
        cursor.execute(
            "SELECT pid FROM pg_locks WHERE locktype = 'advisory' AND granted AND objsubid = 1"
            " AND classid = %s AND objid = %s"
            " AND database = (SELECT oid FROM pg_database WHERE datname = current_database())",
            [RELAY_LOCK_KEY >> 32, RELAY_LOCK_KEY & 0xFFFFFFFF],
        )
        return [pid for (pid,) in cursor.fetchall()]


def backend_state(pid: int) -> tuple[str, Any]:
    with db_connection.cursor() as cursor:
        cursor.execute("SELECT state, xact_start FROM pg_stat_activity WHERE pid = %s", [pid])
        row = cursor.fetchone()
    assert row is not None
    return row[0], row[1]


def record(topic: str, n: int) -> None:
    with transaction.atomic():
        send_event_on_commit(topic=topic, event="property.updated", data={"n": n})


def test_the_relay_refuses_to_run_inside_a_transaction() -> None:
    with pytest.raises(TransactionManagementError), transaction.atomic():
        relay_now()


async def test_the_relay_publishes_with_no_transaction_open(blackhole: str, relay_installed: Any) -> None:
    topic = topics.property_changes("00000000-0000-4000-8000-0000000000a1")
    relay = OutboxRelay(sweep_seconds=60, retry_min_seconds=0.05, redis_client=hanging_client(blackhole, 1.5))
    outbox_relay.install(relay)
    relay.start()
    try:
        await sync_to_async(record)(topic, 1)  # its commit wakes the relay
        holders: list[int] = []
        deadline = time.monotonic() + 3
        while not holders and time.monotonic() < deadline:
            holders = await sync_to_async(lock_holders)()
            await asyncio.sleep(0.02)
        assert len(holders) == 1, "the relay holds its lock while Redis keeps it waiting"
        # Sampled while it waits for Redis: its backend is never inside a transaction, and idle
        # (no statement, no transaction) while the publish hangs.
        samples = []
        for _ in range(15):
            samples.append(await sync_to_async(backend_state)(holders[0]))
            await asyncio.sleep(0.05)
        assert all(state != "idle in transaction" for state, _ in samples), samples
        assert ("idle", None) in samples, samples
        assert await sync_to_async(OutboxEvent.objects.count)() == 1
    finally:
        await relay.stop()
        await sync_to_async(db_connections.close_all)()


async def test_an_http_write_answers_without_waiting_for_redis_and_the_event_follows(
    blackhole: str, relay_installed: Any
) -> None:
    landlord = await sync_to_async(make_user)(user_type="landlord")
    prop = await sync_to_async(make_property)(owner=landlord)
    token = await token_for(landlord)
    changes = topics.property_changes(str(prop.pk))
    listener = await sync_to_async(Listener, thread_sensitive=False)(changes)
    # The relay's Redis hangs 5 s per attempt (connect succeeds, no reply ever comes).
    relay = OutboxRelay(sweep_seconds=60, retry_min_seconds=0.05, redis_client=hanging_client(blackhole, 5.0))
    outbox_relay.install(relay)
    relay.start()
    try:
        started = time.monotonic()
        request = HttpCommunicator(
            wiring_app(),
            "PATCH",
            f"/api/v1/properties/{prop.pk}",
            body=json.dumps({"propertyName": "Renamed"}).encode(),
            headers=[
                (b"host", b"localhost"),
                (b"authorization", f"Bearer {token}".encode()),
                (b"content-type", b"application/json"),
            ],
        )
        response = await request.get_response(timeout=10)
        elapsed = time.monotonic() - started
        assert response["status"] == 200, response
        assert elapsed < 2.5, f"the response took {elapsed:.2f} s: it waited for Redis"
        assert await sync_to_async(OutboxEvent.objects.filter(topic=changes).count)() == 1
        assert await sync_to_async(listener.nothing, thread_sensitive=False)(0.2)

        relay.redis_client = None  # Redis is back (the process's client): the next attempt publishes
        frame = await sync_to_async(listener.next, thread_sensitive=False)(10.0)
        assert frame is not None and frame["event"] == "property.updated"
        assert frame["data"]["propertyName"] == "Renamed"
        assert await outbox_empties(), "the published row is deleted"
    finally:
        await relay.stop()
        await sync_to_async(listener.close, thread_sensitive=False)()
        await connections.aclose_loop_clients()  # the request's middleware opened this loop's clients
        await sync_to_async(db_connections.close_all)()


async def outbox_empties(timeout: float = 2.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not await sync_to_async(OutboxEvent.objects.exists)():
            return True
        await asyncio.sleep(0.02)
    return False


def wiring_app() -> Any:
    from pms.asgi import application

    return application


def test_relays_of_two_processes_and_racing_commits_keep_commit_order(relay_installed: Any) -> None:
    """Two relay tasks (each on its own loop and thread, as in two processes) plus the inline
    relay of the committing threads race; the topic's history is in commit order, each event once."""
    topic = topics.property_changes("00000000-0000-4000-8000-0000000000a2")
    start = position(topic)
    counter = {"n": 0}
    writers, per_writer = 3, 25

    def write(_: int) -> None:
        for _ in range(per_writer):
            with transaction.atomic():
                # Serialize the writers as a shared row lock would: commit order is `n` order.
                with db_connection.cursor() as cursor:
                    cursor.execute("SELECT pg_advisory_xact_lock(4242)")
                counter["n"] += 1
                send_event_on_commit(topic=topic, event="property.updated", data={"n": counter["n"]})

    stop = threading.Event()
    passes: list[int] = []

    def process(_: int) -> None:
        async def main() -> None:
            relay = OutboxRelay(sweep_seconds=0.005)
            relay.start()
            while not stop.is_set():
                await asyncio.sleep(0.01)
            await relay.stop()
            passes.append(relay.passes)

        asyncio.run(main())

    relays = [threading.Thread(target=process, args=(i,)) for i in range(2)]
    for thread in relays:
        thread.start()
    try:
        threads = [threading.Thread(target=_closing(write), args=(i,)) for i in range(writers)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(30)
        deadline = time.monotonic() + 5
        while OutboxEvent.objects.exists() and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        stop.set()
        for thread in relays:
            thread.join(10)
    assert not OutboxEvent.objects.exists()
    assert len(passes) == 2 and all(passes), passes
    assert [f["data"]["n"] for f in since(topic, start)] == list(range(1, writers * per_writer + 1))


def _closing(work: Any) -> Any:
    def run(index: int) -> None:
        try:
            work(index)
        finally:
            db_connections.close_all()

    return run


def test_inline_fallback_relays_after_commit_where_no_task_runs() -> None:
    """A management command or script (no relay task): the event goes out when the transaction commits."""
    topic = topics.property_changes("00000000-0000-4000-8000-0000000000a3")
    assert outbox_relay.current() is None or not outbox_relay.current().running  # type: ignore[union-attr]
    listener = Listener(topic)
    try:
        record(topic, 7)
        frame = listener.next()
        assert frame is not None and frame["data"] == {"n": 7}
        assert not OutboxEvent.objects.exists()
    finally:
        listener.close()


async def test_the_sweep_publishes_rows_no_commit_signalled(relay_installed: None) -> None:
    """Rows an outage or a crashed process left (here: inserted without a signal) go out on the sweep."""
    topic = topics.property_changes("00000000-0000-4000-8000-0000000000a4")
    start = await sync_to_async(position, thread_sensitive=False)(topic)
    relay = OutboxRelay(sweep_seconds=0.2)
    relay.start()
    try:
        while relay.passes < 1:  # its start-up pass (finds nothing) is done: what follows is the sweep's
            await asyncio.sleep(0.01)
        await OutboxEvent.objects.abulk_create(
            [OutboxEvent(topic=topic, event="property.updated", data={"n": n}) for n in range(3)]
        )
        assert await outbox_empties(3.0)
        frames = await sync_to_async(since, thread_sensitive=False)(topic, start)
        assert [f["data"]["n"] for f in frames] == [0, 1, 2]
    finally:
        await relay.stop()
        await sync_to_async(db_connections.close_all)()


async def test_the_asgi_lifespan_starts_and_stops_the_relay(relay_installed: None) -> None:
    from asgiref.testing import ApplicationCommunicator

    lifespan = ApplicationCommunicator(wiring_app(), {"type": "lifespan", "asgi": {"version": "3.0"}})
    await lifespan.send_input({"type": "lifespan.startup"})
    assert await lifespan.receive_output(timeout=5) == {"type": "lifespan.startup.complete"}
    relay = outbox_relay.current()
    assert relay is not None and relay.running
    await lifespan.send_input({"type": "lifespan.shutdown"})
    assert await lifespan.receive_output(timeout=15) == {"type": "lifespan.shutdown.complete"}
    assert not relay.running
    await lifespan.wait(timeout=5)
