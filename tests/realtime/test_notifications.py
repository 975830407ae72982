"""Notifications on the MongoDB server (stand-in or mongod) and real Redis, with a recording publisher."""

import re
import uuid
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import redis.asyncio as aredis
from bson import ObjectId
from django.conf import settings
from pymongo import AsyncMongoClient, MongoClient

from realtime.documents import NOTIFICATIONS, SEED_INDEXES
from realtime.errors import BAD_REQUEST, UNAVAILABLE, ProtocolError
from realtime.keys import notifications_count
from realtime.notifications import (
    BAD_ACTIONS,
    BAD_EXPIRES,
    BAD_IDS,
    BAD_MESSAGE,
    BAD_PRIORITY,
    BAD_READ_TARGET,
    BAD_TITLE,
    BAD_TYPE,
    MONGO_DOWN,
    NotificationService,
    notification_document,
)

DATABASE = f"pms_test_notifications_{uuid.uuid4().hex[:8]}"
SEED_FIELDS = {
    "_id", "userId", "type", "title", "message", "referenceId", "referenceType",
    "isRead", "createdAt", "expiresAt", "priority", "actions",
}  # fmt: skip
ISO_MS = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")


class RecordingPublisher:
    """Stands in for the topic history + broker: records what would be stored and published."""

    def __init__(self) -> None:
        self.events: list[tuple[str, str, dict[str, Any]]] = []

    async def publish(self, topic: str, event: str, data: dict[str, Any]) -> dict[str, Any]:
        self.events.append((topic, event, data))
        return {"topic": topic, "event": event, "data": data, "offset": str(len(self.events))}


@pytest.fixture(scope="module", autouse=True)
def notifications_database() -> Iterator[str]:
    """A fresh database for this module with the seed's notification indexes; dropped at the end."""
    client: MongoClient[Any] = MongoClient(settings.MONGO_URL, serverSelectionTimeoutMS=3000)
    try:
        specs = [spec for spec in SEED_INDEXES if spec.collection == NOTIFICATIONS]
        client[DATABASE][NOTIFICATIONS].create_indexes([spec.model() for spec in specs])
        yield DATABASE
        client.drop_database(DATABASE)
    finally:
        client.close()


@pytest.fixture
async def mongo_db() -> AsyncIterator[Any]:
    client: AsyncMongoClient[Any] = AsyncMongoClient(settings.MONGO_URL, serverSelectionTimeoutMS=3000)
    yield client[DATABASE]
    await client.close()


@pytest.fixture
async def redis_client() -> AsyncIterator[aredis.Redis]:
    client = aredis.Redis.from_url(settings.REDIS_URL, decode_responses=True)
    yield client
    await client.aclose()


@pytest.fixture
def publisher() -> RecordingPublisher:
    return RecordingPublisher()


@pytest.fixture
def service(mongo_db: Any, redis_client: aredis.Redis, publisher: RecordingPublisher) -> NotificationService:
    return NotificationService(mongo_db, redis_client, publisher)


def new_user() -> str:
    return str(uuid.uuid4())


async def notify(service: NotificationService, user: str, title: str = "Rent due", **extra: Any) -> dict[str, Any]:
    return await service.notify(user, type="payment", title=title, message="Your rent is due on the 1st.", **extra)


async def test_notify_stores_the_seed_fields_counts_and_publishes(
    service: NotificationService, mongo_db: Any, redis_client: aredis.Redis, publisher: RecordingPublisher
) -> None:
    user, reference = new_user(), str(uuid.uuid4())
    expires = datetime.now(UTC) + timedelta(days=7)
    actions = [{"label": "Pay now", "url": "/payments/new", "type": "link"}]
    sent = await service.notify(
        user, type="payment", title="Rent due", message="Pay by Friday.", reference_id=reference,
        reference_type="lease", priority="high", actions=actions, expires_at=expires,
    )  # fmt: skip
    stored = await mongo_db[NOTIFICATIONS].find_one({"_id": ObjectId(sent["id"])})
    assert set(stored) == SEED_FIELDS
    assert stored["userId"] == user and stored["isRead"] is False and stored["priority"] == "high"
    assert stored["referenceId"] == reference and stored["referenceType"] == "lease" and stored["actions"] == actions
    assert re.fullmatch(r"[0-9a-f]{24}", sent["id"])
    assert ISO_MS.match(sent["createdAt"]) and ISO_MS.match(sent["expiresAt"])
    assert sent["isRead"] is False and sent["title"] == "Rent due" and sent["actions"] == actions
    assert await redis_client.get(notifications_count(user)) == "1"  # was missing: set from a count
    await notify(service, user)
    assert await redis_client.get(notifications_count(user)) == "2"  # existed: incremented
    assert publisher.events[0] == (f"notifications:{user}", "notification", sent)
    assert [event for _, event, _ in publisher.events] == ["notification", "notification"]


async def test_mark_read_from_another_device_decrements_exactly_and_tells_the_others(
    mongo_db: Any, redis_client: aredis.Redis, publisher: RecordingPublisher
) -> None:
    phone = NotificationService(mongo_db, redis_client, publisher)
    laptop = NotificationService(mongo_db, redis_client, publisher)
    user = new_user()
    first, second, third = [await notify(phone, user, title=f"n{i}") for i in range(3)]
    publisher.events.clear()
    assert await laptop.mark_read(user, ids=[first["id"], second["id"], first["id"]]) == 1
    assert await redis_client.get(notifications_count(user)) == "1"
    assert len(publisher.events) == 1
    topic, event, data = publisher.events[0]
    assert (topic, event) == (f"notifications:{user}", "notification.read")
    assert sorted(data["ids"]) == sorted([first["id"], second["id"]]) and data == {**data, "all": False, "unread": 1}
    # Marking them again changes nothing and tells nobody.
    assert await phone.mark_read(user, ids=[first["id"], second["id"]]) == 1
    assert len(publisher.events) == 1
    page = await phone.list(user)
    assert {n["id"]: n["isRead"] for n in page["notifications"]} == {
        first["id"]: True, second["id"]: True, third["id"]: False,
    }  # fmt: skip


async def test_marking_someone_elses_notification_changes_nothing(
    service: NotificationService, mongo_db: Any, redis_client: aredis.Redis, publisher: RecordingPublisher
) -> None:
    owner, intruder = new_user(), new_user()
    theirs = await notify(service, owner)
    publisher.events.clear()
    assert await service.mark_read(intruder, ids=[theirs["id"]]) == 0
    assert (await mongo_db[NOTIFICATIONS].find_one({"_id": ObjectId(theirs["id"])}))["isRead"] is False
    assert await redis_client.get(notifications_count(owner)) == "1"
    assert publisher.events == []


async def test_mark_all_read_counts_only_unread_unexpired_and_never_goes_below_zero(
    service: NotificationService, mongo_db: Any, redis_client: aredis.Redis, publisher: RecordingPublisher
) -> None:
    user = new_user()
    for index in range(3):
        await notify(service, user, title=f"n{index}")
    past = datetime.now(UTC) - timedelta(minutes=1)  # expired, not yet deleted by the TTL monitor
    await mongo_db[NOTIFICATIONS].insert_one({"userId": user, "isRead": False, "expiresAt": past, "title": "old"})
    await redis_client.set(notifications_count(user), "1")  # drifted low
    publisher.events.clear()
    assert await service.mark_read(user, all=True) == 0
    assert await redis_client.get(notifications_count(user)) == "0"
    [(_, event, data)] = publisher.events
    assert event == "notification.read" and data["all"] is True and data["unread"] == 0 and len(data["ids"]) == 3
    expired = await mongo_db[NOTIFICATIONS].find_one({"userId": user, "title": "old"})
    assert expired is None or expired["isRead"] is False  # the TTL monitor may have deleted it already


async def test_mark_read_by_ids_skips_expired_notifications(
    service: NotificationService, mongo_db: Any, publisher: RecordingPublisher
) -> None:
    user = new_user()
    live = await notify(service, user)
    past = datetime.now(UTC) - timedelta(minutes=1)
    expired = await mongo_db[NOTIFICATIONS].insert_one({"userId": user, "isRead": False, "expiresAt": past})
    publisher.events.clear()
    assert await service.mark_read(user, ids=[str(expired.inserted_id), live["id"]]) == 0
    [(_, _, data)] = publisher.events
    assert data["ids"] == [live["id"]]


async def test_a_failed_publish_still_returns_the_stored_notification(
    mongo_db: Any, redis_client: aredis.Redis, caplog: pytest.LogCaptureFixture
) -> None:
    class BrokenPublisher:
        async def publish(self, topic: str, event: str, data: dict[str, Any]) -> dict[str, Any]:
            raise ConnectionError("broker down")

    service, user = NotificationService(mongo_db, redis_client, BrokenPublisher()), new_user()
    sent = await notify(service, user)
    assert await mongo_db[NOTIFICATIONS].find_one({"_id": ObjectId(sent["id"])}) is not None
    assert await service.unread_count(user) == 1
    assert "stored but not published" in caplog.text


async def test_counter_is_recomputed_from_mongodb_when_missing(
    service: NotificationService, redis_client: aredis.Redis, mongo_db: Any
) -> None:
    user = new_user()
    for _ in range(3):
        await notify(service, user)
    await mongo_db[NOTIFICATIONS].insert_one(
        {"userId": user, "isRead": False, "expiresAt": datetime.now(UTC) - timedelta(seconds=5)}
    )
    await redis_client.delete(notifications_count(user))
    assert await service.unread_count(user) == 3
    assert await redis_client.get(notifications_count(user)) == "3"
    assert await service.unread_count(new_user()) == 0


async def test_mark_read_with_a_missing_counter_answers_the_true_count(
    service: NotificationService, redis_client: aredis.Redis
) -> None:
    user = new_user()
    first, _ = await notify(service, user), await notify(service, user)
    await redis_client.delete(notifications_count(user))
    assert await service.mark_read(user, ids=[first["id"]]) == 1
    assert await redis_client.get(notifications_count(user)) == "1"


async def test_resync_fixes_a_counter_left_high_by_deletes_in_mongodb(
    service: NotificationService, redis_client: aredis.Redis, mongo_db: Any
) -> None:
    user, other = new_user(), new_user()
    kept = await notify(service, user)
    for _ in range(2):
        await notify(service, user)
        await notify(service, other)
    # What the TTL monitor does: delete behind the counter's back.
    await mongo_db[NOTIFICATIONS].delete_many({"userId": user, "_id": {"$ne": ObjectId(kept["id"])}})
    await mongo_db[NOTIFICATIONS].delete_many({"userId": other})
    assert await service.unread_count(user) == 3
    assert await service.resync(user) == 1
    assert await redis_client.get(notifications_count(user)) == "1"
    await redis_client.set(notifications_count(user), "7")
    assert await service.resync_all() == {user: 1, other: 0}
    assert await service.unread_count(user) == 1 and await service.unread_count(other) == 0


async def test_list_pages_newest_first_and_filters_unread(service: NotificationService) -> None:
    user = new_user()
    sent = [await notify(service, user, title=f"n{index}") for index in range(5)]
    await service.mark_read(user, ids=[sent[3]["id"]])
    first = await service.list(user, limit=2)
    assert [n["title"] for n in first["notifications"]] == ["n4", "n3"] and first["hasMore"] is True
    second = await service.list(user, before=first["notifications"][-1]["id"], limit=2)
    assert [n["title"] for n in second["notifications"]] == ["n2", "n1"] and second["hasMore"] is True
    last = await service.list(user, before=second["notifications"][-1]["id"], limit=2)
    assert [n["title"] for n in last["notifications"]] == ["n0"] and last["hasMore"] is False
    unread = await service.list(user, unread_only=True)
    assert [n["title"] for n in unread["notifications"]] == ["n4", "n2", "n1", "n0"]
    assert all(n["isRead"] is False for n in unread["notifications"])
    assert (await service.list(new_user()))["notifications"] == []


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"priority": "urgent"}, BAD_PRIORITY),
        ({"title": "x" * 201}, BAD_TITLE),
        ({"title": ""}, BAD_TITLE),
        ({"message": "x" * 5001}, BAD_MESSAGE),
        ({"type": ""}, BAD_TYPE),
        ({"actions": [{"label": "a", "url": "/a", "type": "link"}] * 6}, BAD_ACTIONS),
        ({"actions": [{"label": "a", "url": "/a", "type": "email"}]}, BAD_ACTIONS),
        ({"actions": [{"label": "a", "type": "link"}]}, BAD_ACTIONS),
        ({"expires_at": datetime(2030, 1, 1)}, BAD_EXPIRES),
        ({"expires_at": datetime.now(UTC) - timedelta(seconds=1)}, BAD_EXPIRES),
    ],
)
async def test_notify_with_bad_input_is_refused_and_writes_nothing(
    service: NotificationService,
    mongo_db: Any,
    redis_client: aredis.Redis,
    publisher: RecordingPublisher,
    changes: dict[str, Any],
    message: str,
) -> None:
    user = new_user()
    arguments: dict[str, Any] = {"type": "payment", "title": "Rent due", "message": "Pay.", **changes}
    with pytest.raises(ProtocolError) as caught:
        await service.notify(user, **arguments)
    assert (caught.value.code, caught.value.message) == (BAD_REQUEST, message)
    assert await mongo_db[NOTIFICATIONS].find_one({"userId": user}) is None
    assert await redis_client.exists(notifications_count(user)) == 0
    assert publisher.events == []


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        ({}, BAD_READ_TARGET),
        ({"ids": ["0" * 24], "all": True}, BAD_READ_TARGET),
        ({"ids": ["not-an-object-id"]}, BAD_IDS),
        ({"ids": ["0" * 24] * 501}, BAD_IDS),
        ({"ids": "0" * 24}, BAD_IDS),
    ],
)
async def test_mark_read_with_bad_input_is_refused(
    service: NotificationService, publisher: RecordingPublisher, arguments: dict[str, Any], message: str
) -> None:
    user = new_user()
    kept = await notify(service, user)
    publisher.events.clear()
    with pytest.raises(ProtocolError) as caught:
        await service.mark_read(user, **arguments)
    assert (caught.value.code, caught.value.message) == (BAD_REQUEST, message)
    assert await service.unread_count(user) == 1 and publisher.events == []
    assert (await service.list(user))["notifications"][0]["id"] == kept["id"]


async def test_mongodb_down_answers_unavailable_and_publishes_nothing(
    redis_client: aredis.Redis, publisher: RecordingPublisher
) -> None:
    dead: AsyncMongoClient[Any] = AsyncMongoClient("mongodb://127.0.0.1:9/", serverSelectionTimeoutMS=200)
    try:
        service = NotificationService(dead["pms"], redis_client, publisher)
        with pytest.raises(ProtocolError) as caught:
            await notify(service, new_user())
        assert (caught.value.code, caught.value.message) == (UNAVAILABLE, MONGO_DOWN)
        with pytest.raises(ProtocolError):
            await service.unread_count(new_user())
        assert publisher.events == []
    finally:
        await dead.close()


async def test_store_once_stores_and_counts_one_however_often_it_is_repeated(
    service: NotificationService, publisher: RecordingPublisher, mongo_db: Any
) -> None:
    user = new_user()
    assert await service.unread_count(user) == 0  # a counter exists: a repeat must not move it again
    document = {"_id": ObjectId(), **notification_document(user, type="payment", title="Rent", message="Due")}
    first, inserted = await service.store_once(document)
    again, inserted_again = await service.store_once(document)
    assert (inserted, inserted_again) == (True, False)
    assert first == again and first is not None and first["id"] == str(document["_id"])
    assert await mongo_db[NOTIFICATIONS].count_documents({"userId": user}) == 1
    assert await service.unread_count(user) == 1
    # Published by each call (at least once; clients deduplicate by id).
    assert [(event, data["id"]) for _, event, data in publisher.events] == [("notification", first["id"])] * 2


async def test_store_once_raises_when_it_cannot_publish_so_the_caller_retries(
    mongo_db: Any, redis_client: aredis.Redis
) -> None:
    class BrokenPublisher:
        async def publish(self, topic: str, event: str, data: dict[str, Any]) -> dict[str, Any]:
            raise ConnectionError("broker down")

    user = new_user()
    document = {"_id": ObjectId(), **notification_document(user, type="payment", title="Rent", message="Due")}
    with pytest.raises(ConnectionError):
        await NotificationService(mongo_db, redis_client, BrokenPublisher()).store_once(document)
    working = RecordingPublisher()
    _, inserted = await NotificationService(mongo_db, redis_client, working).store_once(document)
    assert inserted is False and len(working.events) == 1
    assert await NotificationService(mongo_db, redis_client, working).unread_count(user) == 1
