"""The notice outbox: recorded in the writer's transaction, delivered exactly once after commit
(real PostgreSQL, Redis DB 15, MongoDB `pms_test`); outages delay, never lose or duplicate."""

import asyncio
import time
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import redis.asyncio as aredis
from asgiref.sync import sync_to_async
from bson import ObjectId
from django.conf import settings
from django.db import connections as db_connections
from django.db import transaction
from pymongo import AsyncMongoClient, MongoClient

from apps.events import delivery, notices
from apps.events import relay as outbox_relay
from apps.events.models import NoticeOutbox
from apps.events.notices import Notice, notify_on_commit
from apps.events.relay import OutboxRelay
from realtime import notifications as notifications_module
from realtime import topics
from realtime.history import RedisHistory
from realtime.keys import notifications_count
from realtime.notifications import NotificationService
from realtime.runtime import get_realtime, stop_realtime
from tests.apps.messaging.http_chat import AsyncApi
from tests.apps.test_change_events import Listener
from tests.factories import make_user

pytestmark = pytest.mark.django_db(transaction=True)

DEAD_REDIS = "redis://127.0.0.1:1/0"
DEAD_MONGO = "mongodb://127.0.0.1:1/"


def stored(user_id: str) -> list[dict[str, Any]]:
    client: MongoClient[dict[str, Any]] = MongoClient(settings.MONGO_URL)
    try:
        return list(client[settings.MONGO_DATABASE]["notifications"].find({"userId": user_id}).sort("_id", 1))
    finally:
        client.close()


def notice(user_id: str, n: int = 1, **extra: Any) -> Notice:
    return Notice(user_id=user_id, type="payment", title=f"Rent {n}", message="Your rent is due on the 1st.", **extra)


def record(*items: Notice) -> list[str]:
    """Commit `items` in one transaction; the ids their rows fixed for MongoDB."""
    with transaction.atomic():
        before = set(NoticeOutbox.objects.values_list("notification_id", flat=True))
        notify_on_commit(*items)
        ids = [oid for oid in NoticeOutbox.objects.values_list("notification_id", flat=True) if oid not in before]
    return ids


@pytest.fixture
async def core() -> AsyncIterator[Any]:
    """This test loop's realtime core (as a server process has), stopped at the end."""
    realtime = await get_realtime()
    yield realtime
    await stop_realtime()
    await sync_to_async(db_connections.close_all)()


@pytest.fixture
def held() -> Iterator[None]:
    """Commits deliver nothing inline (this process backs off as after a failure): the test drives delivery."""
    notices._set_inline_backoff(True)
    yield
    notices._set_inline_backoff(False)


def service_on(redis_url: str = "", mongo_url: str = "") -> tuple[NotificationService, Any, Any]:
    redis_client = aredis.Redis.from_url(
        redis_url or settings.REDIS_URL, decode_responses=True, socket_connect_timeout=0.5, socket_timeout=0.5
    )
    mongo: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(
        mongo_url or settings.MONGO_URL, serverSelectionTimeoutMS=500, connectTimeoutMS=500, tz_aware=True
    )
    service = NotificationService(mongo[settings.MONGO_DATABASE], redis_client, RedisHistory(redis_client))
    return service, redis_client, mongo


async def close(redis_client: Any, mongo: Any) -> None:
    await redis_client.aclose()
    await mongo.close()


def test_a_rolled_back_write_records_and_notifies_nothing() -> None:
    user = str(make_user().pk)
    with pytest.raises(RuntimeError), transaction.atomic():
        notify_on_commit(notice(user))
        raise RuntimeError("the write fails")
    assert NoticeOutbox.objects.count() == 0
    assert stored(user) == []


def test_without_a_relay_task_the_commit_delivers_at_once(clean_redis: Any) -> None:
    # No server loop here (a job worker, a command): the commit's hook delivers, after the commit.
    user = str(make_user().pk)
    [oid] = record(notice(user))
    assert NoticeOutbox.objects.count() == 0
    assert [str(d["_id"]) for d in stored(user)] == [oid]
    assert clean_redis.get(notifications_count(user)) == "1"


def test_invalid_notices_are_refused_in_the_callers_transaction() -> None:
    user = str(make_user().pk)
    with pytest.raises(Exception, match="priority"):
        record(notice(user, priority="urgent"))
    assert NoticeOutbox.objects.count() == 0


async def test_an_http_only_user_is_notified_and_reads_the_right_count_over_http(core: Any) -> None:
    user = await sync_to_async(make_user)()
    me = await AsyncApi.login(user)
    await sync_to_async(record)(notice(str(user.pk), 1), notice(str(user.pk), 2))
    assert (await me.get("/notifications/unread-count")).json() == {"unread": 2}
    # The counter lapses (its TTL): the next read counts again in MongoDB, never reads 0.
    await core.notifications._redis.delete(notifications_count(str(user.pk)))
    assert (await me.get("/notifications/unread-count")).json() == {"unread": 2}
    first = (await me.get("/notifications")).json()["notifications"][-1]
    assert (await me.post("/notifications/read", {"ids": [first["id"]]})).json() == {"unread": 1}
    assert (await me.get("/notifications/unread-count")).json() == {"unread": 1}
    await sync_to_async(record)(notice(str(user.pk), 3))
    assert (await me.get("/notifications/unread-count")).json() == {"unread": 2}
    assert (await me.post("/notifications/read", {"all": True})).json() == {"unread": 0}
    assert (await me.get("/notifications/unread-count")).json() == {"unread": 0}


async def test_the_counter_has_a_ttl(core: Any) -> None:
    user = await sync_to_async(make_user)()
    await sync_to_async(record)(notice(str(user.pk)))
    assert await core.notifications.unread_count(str(user.pk)) == 1
    ttl = await core.notifications._redis.ttl(notifications_count(str(user.pk)))
    assert 0 < ttl <= notifications_module.COUNT_TTL_SECONDS


async def test_the_count_drops_when_a_notification_expires(core: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    user = await sync_to_async(make_user)()
    start = datetime.now(UTC).replace(microsecond=0)
    clock = {"now": start}
    monkeypatch.setattr(notifications_module, "_now", lambda: clock["now"])
    me = await AsyncApi.login(user)
    await sync_to_async(record)(
        notice(str(user.pk), 1, expires_at=start + timedelta(hours=1)),
        notice(str(user.pk), 2, expires_at=start + timedelta(hours=3)),
        notice(str(user.pk), 3),
    )
    assert (await me.get("/notifications/unread-count")).json() == {"unread": 3}
    clock["now"] = start + timedelta(minutes=59)
    assert (await me.get("/notifications/unread-count")).json() == {"unread": 3}
    clock["now"] = start + timedelta(hours=1, seconds=1)  # the first one expired: counted out at once
    assert (await me.get("/notifications/unread-count")).json() == {"unread": 2}
    await sync_to_async(record)(notice(str(user.pk), 4))  # moves the recounted counter
    assert (await me.get("/notifications/unread-count")).json() == {"unread": 3}
    clock["now"] = start + timedelta(hours=3, seconds=1)
    assert (await me.get("/notifications/unread-count")).json() == {"unread": 2}
    assert (await me.post("/notifications/read", {"all": True})).json() == {"unread": 0}


async def test_redis_down_keeps_the_notice_and_it_goes_out_exactly_once_when_back(core: Any, held: None) -> None:
    user = str((await sync_to_async(make_user)()).pk)
    [oid] = await sync_to_async(record)(notice(user))
    listener = await sync_to_async(Listener, thread_sensitive=False)(topics.notifications(user))
    try:
        down, redis_client, mongo = service_on(redis_url=DEAD_REDIS)
        try:
            for attempt in (1, 2):
                assert await delivery.adeliver_pending(service=down) == (0, True)
                row = await NoticeOutbox.objects.aget(notification_id=oid)
                assert (row.attempts, row.claimed_until) == (attempt, None)
                assert "ConnectionError" in (row.last_error or "")
        finally:
            await close(redis_client, mongo)
        # MongoDB took the insert before Redis failed: the retry must not add a second one.
        assert await delivery.adeliver_pending(service=core.notifications) == (1, False)
        assert await NoticeOutbox.objects.acount() == 0
        assert [str(d["_id"]) for d in await sync_to_async(stored)(user)] == [oid]
        assert await core.notifications.unread_count(user) == 1
        frames = await sync_to_async(listener.take, thread_sensitive=False)(1)
        assert frames[0]["event"] == "notification" and frames[0]["data"]["id"] == oid
        assert await sync_to_async(listener.nothing, thread_sensitive=False)()
    finally:
        await sync_to_async(listener.close, thread_sensitive=False)()


async def test_mongodb_down_keeps_the_notice_and_it_is_stored_once_when_back(core: Any, held: None) -> None:
    user = str((await sync_to_async(make_user)()).pk)
    [oid] = await sync_to_async(record)(notice(user))
    down, redis_client, mongo = service_on(mongo_url=DEAD_MONGO)
    try:
        assert await delivery.adeliver_pending(service=down) == (0, True)
    finally:
        await close(redis_client, mongo)
    row = await NoticeOutbox.objects.aget(notification_id=oid)
    assert row.attempts == 1 and row.claimed_until is None
    assert await sync_to_async(stored)(user) == []
    assert await delivery.adeliver_pending(service=core.notifications) == (1, False)
    assert [str(d["_id"]) for d in await sync_to_async(stored)(user)] == [oid]
    assert await core.notifications.unread_count(user) == 1


async def test_a_delivery_repeated_after_a_crash_stores_and_counts_one(core: Any, held: None) -> None:
    user = str((await sync_to_async(make_user)()).pk)
    await core.notifications.unread_count(user)  # a counter exists (0): a repeat must not move it twice
    [oid] = await sync_to_async(record)(notice(user))
    rows = await sync_to_async(delivery.claim)(10)
    # The first run crashed after the MongoDB insert, before the row was deleted: the same
    # claimed row is delivered again (as the next process would after the claim lapsed).
    assert await delivery.adeliver_rows(core.notifications, rows) == (1, False)
    assert await delivery.adeliver_rows(core.notifications, rows) == (1, False)
    assert [str(d["_id"]) for d in await sync_to_async(stored)(user)] == [oid]
    assert await core.notifications.unread_count(user) == 1


async def test_a_crash_after_the_insert_before_the_count_still_counts_one(core: Any, held: None) -> None:
    user = str((await sync_to_async(make_user)()).pk)
    assert await core.notifications.unread_count(user) == 0  # cached 0
    await sync_to_async(record)(notice(user))
    [row] = await sync_to_async(delivery.claim)(10)
    document = delivery.document_of(row)
    assert document is not None
    await core.notifications._collection.insert_one(document)  # the insert that went through
    assert await delivery.adeliver_pending(service=core.notifications) == (0, False)  # still claimed
    await NoticeOutbox.objects.filter(pk=row.pk).aupdate(claimed_until=None)  # the claim lapsed
    assert await delivery.adeliver_pending(service=core.notifications) == (1, False)
    assert len(await sync_to_async(stored)(user)) == 1
    assert await core.notifications.unread_count(user) == 1


async def test_a_notice_that_expired_before_delivery_is_dropped(core: Any, held: None) -> None:
    user = str((await sync_to_async(make_user)()).pk)
    await sync_to_async(record)(notice(user, expires_at=datetime.now(UTC) + timedelta(hours=1)))
    await NoticeOutbox.objects.aupdate(
        document={**(await NoticeOutbox.objects.aget()).document, "expiresAt": "2020-01-01T00:00:00.000+00:00"}
    )
    assert await delivery.adeliver_pending(service=core.notifications) == (0, False)
    assert await NoticeOutbox.objects.acount() == 0
    assert await sync_to_async(stored)(user) == []


async def test_the_servers_relay_task_delivers_notices_on_commit() -> None:
    user = str((await sync_to_async(make_user)()).pk)
    await get_realtime()
    relay = OutboxRelay(sweep_seconds=60)
    outbox_relay.install(relay)
    relay.start()
    try:
        [oid] = await sync_to_async(record)(notice(user))  # its commit wakes the task
        deadline = time.monotonic() + 5
        while await NoticeOutbox.objects.aexists() and time.monotonic() < deadline:
            await asyncio.sleep(0.02)
        assert [str(d["_id"]) for d in await sync_to_async(stored)(user)] == [oid]
        assert relay.passes >= 1
    finally:
        await relay.stop()
        outbox_relay.install(None)
        await stop_realtime()
        await sync_to_async(db_connections.close_all)()


def test_two_claims_never_take_the_same_row() -> None:
    user = str(make_user().pk)
    notices._set_inline_backoff(True)
    try:
        record(*(notice(user, n) for n in range(5)))
    finally:
        notices._set_inline_backoff(False)
    first = delivery.claim(3)
    second = delivery.claim(3)
    assert len(first) == 3 and len(second) == 2
    assert not {row.id for row in first} & {row.id for row in second}
    assert delivery.claim(3) == []
    assert all(ObjectId.is_valid(row.notification_id) for row in first + second)
