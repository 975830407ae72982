"""The presence tracker on real Redis: bursts of opens batched, closes ordered after opens, heartbeats in batches."""

import asyncio
import time
import uuid
from collections.abc import AsyncIterator
from types import SimpleNamespace
from typing import Any

import msgpack
import pytest
import redis.asyncio as aredis
import redis.exceptions as redis_exceptions
from django.conf import settings

from realtime import topics
from realtime.history import RedisHistory
from realtime.presence import AWAY, OFFLINE, ONLINE, PresenceSettings, RedisPresence
from realtime.presence import tracker as tracker_module
from realtime.presence.tracker import PresenceTracker


class CountingDirectory:
    """Each user is in one conversation of their own; counts the lookups the tracker makes."""

    def __init__(self) -> None:
        self.conversation: dict[str, str] = {}
        self.lookups: list[list[str]] = []

    def conversation_of(self, user_id: str) -> str:
        return self.conversation.setdefault(user_id, str(uuid.uuid4()))

    async def conversations_of_many(self, user_ids: list[str]) -> dict[str, list[str]]:
        self.lookups.append(list(user_ids))
        return {user_id: [self.conversation_of(user_id)] for user_id in user_ids}


class DrivenClock:
    """Epoch seconds that move only when the test says so (Redis keys keep their real TTLs)."""

    def __init__(self) -> None:
        self.now = time.time()

    def __call__(self) -> float:
        return self.now


class CountingPresence(RedisPresence):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.connect_batches: list[int] = []
        self.touch_batches: list[int] = []
        self.disconnect_batches: list[int] = []

    async def disconnect_many(self, sockets: list[tuple[str, str]]) -> list[bool]:
        self.disconnect_batches.append(len(sockets))
        return await super().disconnect_many(sockets)

    async def connect_many(self, sockets: list[tuple[str, str]]) -> list[bool]:
        self.connect_batches.append(len(sockets))
        return await super().connect_many(sockets)

    async def touch_many(self, sockets: list[tuple[str, str, bool]]) -> list[bool]:
        self.touch_batches.append(len(sockets))
        return await super().touch_many(sockets)


def session(user_id: str) -> Any:
    return SimpleNamespace(identity=SimpleNamespace(user_id=user_id, roles=()), conn_id=uuid.uuid4().hex)


@pytest.fixture
async def redis_client() -> AsyncIterator[aredis.Redis]:
    client = aredis.Redis.from_url(settings.REDIS_URL, decode_responses=True)
    yield client
    await client.aclose()


@pytest.fixture
def clock() -> DrivenClock:
    return DrivenClock()


@pytest.fixture
def parts(
    redis_client: aredis.Redis, clock: DrivenClock
) -> tuple[PresenceTracker, CountingPresence, CountingDirectory]:
    store = CountingPresence(redis_client, PresenceSettings(ttl_seconds=600, away_after_seconds=300), clock=clock)
    directory = CountingDirectory()
    tracker = PresenceTracker(store, history=RedisHistory(redis_client), directory=directory)  # type: ignore[arg-type]  # the part it calls
    return tracker, store, directory


async def listen(channels: list[str]) -> tuple[Any, Any]:
    raw = aredis.Redis.from_url(settings.REDIS_URL)
    pubsub = raw.pubsub()
    await pubsub.subscribe(*channels)
    for _ in channels:
        await pubsub.get_message(timeout=1)  # the subscribe confirmations
    return raw, pubsub


async def frames(pubsub: Any, count: int) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for _ in range(count + 5):
        message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=0.2)
        if message is not None:
            out.append(msgpack.unpackb(message["data"], raw=False))
        if len(out) >= count:
            break
    return out


async def test_a_burst_of_opens_is_one_store_call_one_lookup_and_each_user_announced_once(parts) -> None:
    tracker, store, directory = parts
    users = [str(uuid.uuid4()) for _ in range(30)]
    sessions = [session(user_id) for user_id in users] + [session(users[0])]  # a second device of one user
    raw, pubsub = await listen([topics.chat_messages(directory.conversation_of(u)) for u in users])
    try:
        opening = [tracker.open_later(s) for s in sessions]  # as sockets accepted in one loop turn
        await asyncio.wait_for(asyncio.gather(*opening), 5)
        assert store.connect_batches == [31]
        assert directory.lookups == [users]
        answer = await store.query(users)
        heard = await frames(pubsub, 30)
        heard += await frames(pubsub, 1)  # nothing more: the second device brought no one online
    finally:
        await pubsub.aclose()
        await raw.aclose()
    assert sorted(f["data"]["userId"] for f in heard) == sorted(users)  # no second "online" for the second device
    assert {f["event"] for f in heard} == {"presence"} and {f["data"]["status"] for f in heard} == {ONLINE}
    assert all(f["topic"] == topics.chat_messages(directory.conversation_of(f["data"]["userId"])) for f in heard)
    assert {info["status"] for info in answer.values()} == {ONLINE}


async def test_closing_one_device_while_another_is_still_registering_keeps_the_user_online(parts) -> None:
    tracker, store, _ = parts
    user = str(uuid.uuid4())
    phone, laptop = session(user), session(user)
    await tracker.open_later(phone)
    laptop_open = tracker.open_later(laptop)  # queued, not yet written to Redis
    await tracker.closed(phone)  # must not conclude "last socket gone"
    assert laptop_open.done()
    assert (await store.query([user]))[user]["status"] == ONLINE
    await tracker.closed(laptop)
    assert (await store.query([user]))[user]["status"] != ONLINE


async def test_heartbeats_go_in_batches_and_users_back_from_expiry_are_announced_once(
    redis_client, monkeypatch
) -> None:
    clock = DrivenClock()
    store = CountingPresence(redis_client, PresenceSettings(ttl_seconds=60, away_after_seconds=600), clock=clock)
    directory = CountingDirectory()
    tracker = PresenceTracker(store, history=RedisHistory(redis_client), directory=directory)  # type: ignore[arg-type]  # the part it calls
    monkeypatch.setattr(tracker_module, "HEARTBEAT_BATCH", 4)
    users = [str(uuid.uuid4()) for _ in range(5)]
    sessions = [session(user_id) for user_id in users] + [session(users[0]), session(users[1])]
    await asyncio.gather(*(tracker.open_later(s) for s in sessions))
    directory.lookups.clear()
    clock.now += 61  # the process stalled past the ttl: its registrations expired
    assert {info["status"] for info in (await store.query(users)).values()} == {OFFLINE}
    raw, pubsub = await listen([topics.chat_messages(directory.conversation_of(u)) for u in users])
    try:
        await tracker.heartbeat(sessions)
        heard = await frames(pubsub, len(users))
        heard += await frames(pubsub, 1)  # and no second announcement for a user's other socket
    finally:
        await pubsub.aclose()
        await raw.aclose()
    assert store.touch_batches == [4, 3]
    assert sorted(f["data"]["userId"] for f in heard) == sorted(users)
    assert {f["data"]["status"] for f in heard} == {ONLINE}
    assert sorted(u for lookup in directory.lookups for u in lookup) == sorted(users)


async def test_a_burst_of_closes_is_one_store_call_and_each_user_announced_offline_once(parts) -> None:
    tracker, store, directory = parts
    users = [str(uuid.uuid4()) for _ in range(30)]
    sessions = [session(user_id) for user_id in users] + [session(users[0])]  # a second device of one user
    await asyncio.wait_for(asyncio.gather(*(tracker.open_later(s) for s in sessions)), 5)
    raw, pubsub = await listen([topics.chat_messages(directory.conversation_of(u)) for u in users])
    try:
        # As sockets closed in one loop turn (a load balancer restart): issue #15 measured a
        # Redis call per socket, which ran the pool dry.
        await asyncio.wait_for(asyncio.gather(*(tracker.closed(s) for s in sessions)), 5)
        assert store.disconnect_batches == [31]
        heard = await frames(pubsub, 30)
        heard += await frames(pubsub, 1)  # nothing more: one "offline" per user
    finally:
        await pubsub.aclose()
        await raw.aclose()
    assert sorted(f["data"]["userId"] for f in heard) == sorted(users)
    assert {f["data"]["status"] for f in heard} == {OFFLINE}
    assert {info["status"] for info in (await store.query(users)).values()} == {OFFLINE}


async def test_the_heartbeat_announces_an_idle_user_away_once(parts, clock: DrivenClock) -> None:
    tracker, _, directory = parts
    user = str(uuid.uuid4())
    phone = session(user)
    await tracker.open_later(phone)
    raw, pubsub = await listen([topics.chat_messages(directory.conversation_of(user))])
    try:
        clock.now += 301  # idle past away_after
        await tracker.heartbeat([phone])
        await tracker.heartbeat([phone])  # still away: nothing new to say
        heard = await frames(pubsub, 2)
    finally:
        await pubsub.aclose()
        await raw.aclose()
    assert [(f["event"], f["data"]["userId"], f["data"]["status"]) for f in heard] == [("presence", user, AWAY)]


async def test_commands_of_one_loop_turn_refresh_activity_in_one_call_off_the_command_path(
    parts, clock: DrivenClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    tracker, store, directory = parts
    users = [str(uuid.uuid4()) for _ in range(20)]
    sockets = [session(user_id) for user_id in users]
    await asyncio.gather(*(tracker.open_later(s) for s in sockets))
    clock.now += 301  # idle past away_after: the heartbeat turns them away
    await tracker.heartbeat(sockets)
    raw, pubsub = await listen([topics.chat_messages(directory.conversation_of(u)) for u in users])
    try:
        # Commands of one loop turn, each past the per-socket refresh interval.
        monkeypatch.setattr(tracker_module, "ACTIVITY_REFRESH_SECONDS", 0.0)
        for s in sockets:
            await tracker.active(s)
        assert store.touch_batches == [20]  # the heartbeat's call only: the commands did not wait
        await asyncio.wait_for(tracker.activity_flushed(), 5)
        assert store.touch_batches == [20, 20]
        heard = await frames(pubsub, 20)
    finally:
        await pubsub.aclose()
        await raw.aclose()
    assert sorted(f["data"]["userId"] for f in heard) == sorted(users)
    assert {f["data"]["status"] for f in heard} == {ONLINE}  # back from away, told once each
    assert {info["status"] for info in (await store.query(users)).values()} == {ONLINE}


async def test_a_socket_closed_before_its_activity_refresh_is_not_registered_again(parts) -> None:
    tracker, store, _ = parts
    phone = session(str(uuid.uuid4()))
    await tracker.open_later(phone)
    tracker._last_activity[phone.conn_id] = 0.0  # its refresh is due
    await tracker.active(phone)
    await tracker.closed(phone)  # in the same loop turn, before the refresh went out
    await asyncio.wait_for(tracker.activity_flushed(), 5)
    assert store.touch_batches == []
    assert (await store.query([phone.identity.user_id]))[phone.identity.user_id]["status"] == OFFLINE


class FailingPresence(CountingPresence):
    """Its store calls fail with `error` (a Redis timeout, or a bug)."""

    def __init__(self, *args: Any, error: Exception, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.error = error

    async def connect_many(self, sockets: list[tuple[str, str]]) -> list[bool]:
        raise self.error

    async def touch_many(self, sockets: list[tuple[str, str, bool]]) -> list[bool]:
        raise self.error


@pytest.mark.parametrize(
    ("error", "traceback"),
    [(redis_exceptions.TimeoutError("no reply within 5.0 s"), False), (RuntimeError("a bug"), True)],
    ids=["redis-fault", "bug"],
)
async def test_a_failed_open_or_refresh_is_one_line_per_batch_with_a_traceback_only_for_a_bug(
    redis_client: aredis.Redis,
    clock: DrivenClock,
    caplog: pytest.LogCaptureFixture,
    error: Exception,
    traceback: bool,
) -> None:
    store = FailingPresence(
        redis_client, PresenceSettings(ttl_seconds=600, away_after_seconds=300), clock=clock, error=error
    )
    tracker = PresenceTracker(store, history=RedisHistory(redis_client), directory=CountingDirectory())  # type: ignore[arg-type]
    sessions = [session(str(uuid.uuid4())) for _ in range(3)]
    with caplog.at_level("WARNING", logger=tracker_module.logger.name):
        await asyncio.gather(*(tracker.open_later(s) for s in sessions))  # done even though it failed
        tracker._last_activity.clear()  # refresh them now, not after the rate limit
        for s in sessions:
            await tracker.active(s)
        await tracker.activity_flushed()
    lines = [r for r in caplog.records if r.name == tracker_module.logger.name]
    assert [r.getMessage().split(" (")[0] for r in lines] == [
        "presence update failed for 3 opening sockets",
        "presence refresh failed for 3 active sockets",
    ]
    assert all((r.exc_info is not None) is traceback for r in lines)


class QueryFailingPresence(CountingPresence):
    """Registers and unregisters; reading statuses for an announcement fails with `error`."""

    def __init__(self, *args: Any, error: Exception, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.error = error

    async def query(self, user_ids: list[str]) -> dict[str, Any]:
        raise self.error


@pytest.mark.parametrize(
    ("error", "traceback"),
    [(redis_exceptions.ConnectionError("Connection reset by peer"), False), (RuntimeError("a bug"), True)],
    ids=["redis-fault", "bug"],
)
async def test_a_failed_announcement_after_opens_or_closes_is_one_line_with_a_traceback_only_for_a_bug(
    redis_client: aredis.Redis,
    clock: DrivenClock,
    caplog: pytest.LogCaptureFixture,
    error: Exception,
    traceback: bool,
) -> None:
    store = QueryFailingPresence(
        redis_client, PresenceSettings(ttl_seconds=600, away_after_seconds=300), clock=clock, error=error
    )
    tracker = PresenceTracker(store, history=RedisHistory(redis_client), directory=CountingDirectory())  # type: ignore[arg-type]
    sessions = [session(str(uuid.uuid4())) for _ in range(2)]
    with caplog.at_level("WARNING", logger=tracker_module.logger.name):
        await asyncio.gather(*(tracker.open_later(s) for s in sessions))
        await asyncio.gather(*(tracker.closed(s) for s in sessions))
    lines = [r for r in caplog.records if r.name == tracker_module.logger.name]
    assert [r.getMessage().split(" (")[0] for r in lines] == [
        "presence update failed for 2 opening sockets",
        "telling 2 users' conversations they went offline failed",
    ]
    assert all((r.exc_info is not None) is traceback for r in lines)
    assert store.disconnect_batches == [2]  # the registrations themselves were written
