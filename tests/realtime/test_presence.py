"""Presence over several sockets and processes, with real expiry: the same behaviour from both stores."""

import asyncio
import re
import time
import uuid
from collections.abc import AsyncIterator, Callable

import pytest
import redis.asyncio as aredis
from django.conf import settings

from realtime.keys import chat_presence, chat_presence_connections
from realtime.presence import AWAY, OFFLINE, ONLINE, MemoryPresence, PresenceSettings, PresenceStore, RedisPresence

ISO_MS = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")
MakeStore = Callable[..., PresenceStore]


@pytest.fixture
async def redis_client() -> AsyncIterator[aredis.Redis]:
    client = aredis.Redis.from_url(settings.REDIS_URL, decode_responses=True)
    yield client
    await client.aclose()


@pytest.fixture(params=["redis", "memory"])
def make_store(request: pytest.FixtureRequest, redis_client: aredis.Redis) -> MakeStore:
    """A factory of stores of one kind: `make_store(ttl_seconds=..., away_after_seconds=...)`."""

    def make(clock: Callable[[], float] | None = None, **timings: float) -> PresenceStore:
        presence_settings = PresenceSettings(**timings)
        clocked = {"clock": clock} if clock is not None else {}
        if request.param == "redis":
            return RedisPresence(redis_client, presence_settings, **clocked)
        return MemoryPresence(presence_settings, **clocked)

    return make


def new_id() -> str:
    return str(uuid.uuid4())


async def test_user_stays_online_until_the_last_of_two_devices_disconnects(make_store: MakeStore) -> None:
    store, user = make_store(), new_id()
    assert await store.connect(user, "phone") is True
    assert await store.connect(user, "laptop") is False
    assert (await store.query([user]))[user]["status"] == ONLINE
    assert await store.disconnect(user, "phone") is False
    assert (await store.query([user]))[user]["status"] == ONLINE
    assert await store.disconnect(user, "laptop") is True
    answer = (await store.query([user]))[user]
    assert answer["status"] == OFFLINE
    assert answer["lastActive"] is not None and ISO_MS.match(answer["lastActive"])


async def test_a_second_disconnect_reports_no_new_change(make_store: MakeStore) -> None:
    store, user = make_store(), new_id()
    await store.connect(user, "phone")
    assert await store.disconnect(user, "phone") is True
    assert await store.disconnect(user, "phone") is False
    assert await store.disconnect(new_id(), "never-connected") is False


async def test_user_whose_only_process_died_goes_offline_by_expiry(make_store: MakeStore) -> None:
    store, user = make_store(ttl_seconds=0.5), new_id()
    await store.connect(user, "socket-on-dead-process")
    assert (await store.query([user]))[user]["status"] == ONLINE
    await asyncio.sleep(0.7)  # no touch, no disconnect: the process is gone
    assert (await store.query([user]))[user] == {"status": OFFLINE, "lastActive": None}


async def test_socket_on_a_live_process_keeps_user_online_after_another_process_died(make_store: MakeStore) -> None:
    store, user = make_store(ttl_seconds=1.0), new_id()
    await store.connect(user, "dead")
    await store.connect(user, "alive")
    for _ in range(5):
        await asyncio.sleep(0.25)
        await store.touch(user, "alive", active=True)
    assert (await store.query([user]))[user]["status"] == ONLINE
    # The dead socket's registration expired, so this close is the user's last.
    assert await store.disconnect(user, "alive") is True
    assert (await store.query([user]))[user]["status"] == OFFLINE


class DrivenClock:
    """Epoch seconds that move only when the test says so (real keys keep their real TTLs)."""

    def __init__(self) -> None:
        self.now = time.time()

    def __call__(self) -> float:
        return self.now


async def test_user_is_away_after_idle_and_online_again_after_a_command(make_store: MakeStore) -> None:
    clock = DrivenClock()
    store, user = make_store(clock, ttl_seconds=1000, away_after_seconds=300), new_id()
    assert await store.connect(user, "phone") is True
    clock.now += 299
    assert await store.touch(user, "phone", active=False) is False  # still online: nothing to announce
    clock.now += 2
    assert (await store.query([user]))[user]["status"] == AWAY
    # The heartbeat that first sees the idle user reports the change, so `away` is announced
    # (it compared with the status computed from lastActive, already away: issue #15).
    assert await store.touch(user, "phone", active=False) is True
    assert await store.touch(user, "phone", active=False) is False  # announced once
    assert (await store.query([user]))[user]["status"] == AWAY
    before = (await store.query([user]))[user]["lastActive"]
    clock.now += 1
    assert await store.touch(user, "phone", active=True) is True
    answer = (await store.query([user]))[user]
    assert answer["status"] == ONLINE and answer["lastActive"] is not None and before is not None
    assert answer["lastActive"] > before


async def test_disconnect_many_reports_the_last_socket_of_each_user_in_order(make_store: MakeStore) -> None:
    store, one, two = make_store(), new_id(), new_id()
    await store.connect_many([(one, "a"), (one, "b"), (two, "c")])
    assert await store.disconnect_many([(one, "a"), (two, "c"), (one, "b"), (one, "b")]) == [False, True, True, False]
    answers = await store.query([one, two])
    assert answers[one]["status"] == answers[two]["status"] == OFFLINE


async def test_heartbeats_keep_an_idle_user_away_rather_than_offline(make_store: MakeStore) -> None:
    clock = DrivenClock()
    store, user = make_store(clock, ttl_seconds=200, away_after_seconds=300), new_id()
    await store.connect(user, "phone")
    for _ in range(5):  # 500 s idle, a heartbeat every 100 s: within the ttl each time
        clock.now += 100
        await store.touch(user, "phone", active=False)
    assert (await store.query([user]))[user]["status"] == AWAY


async def test_connecting_another_device_brings_an_away_user_online(make_store: MakeStore) -> None:
    clock = DrivenClock()
    store, user = make_store(clock, ttl_seconds=1000, away_after_seconds=300), new_id()
    await store.connect(user, "phone")
    clock.now += 301
    assert await store.connect(user, "laptop") is True
    assert (await store.query([user]))[user]["status"] == ONLINE


async def test_touch_after_expiry_registers_the_socket_again(make_store: MakeStore) -> None:
    clock = DrivenClock()
    store, user = make_store(clock, ttl_seconds=60), new_id()
    await store.connect(user, "phone")
    clock.now += 61  # the process stalled longer than the ttl
    assert (await store.query([user]))[user]["status"] == OFFLINE
    assert await store.touch(user, "phone", active=False) is True
    assert (await store.query([user]))[user]["status"] == ONLINE


async def test_query_answers_unknown_users_offline_and_each_user_once(make_store: MakeStore) -> None:
    store, known, unknown = make_store(), new_id(), new_id()
    await store.connect(known, "phone")
    answer = await store.query([unknown, known, unknown])
    assert answer == {unknown: {"status": OFFLINE, "lastActive": None}, known: answer[known]}
    assert answer[known]["status"] == ONLINE
    assert await store.query([]) == {}


async def test_batched_connects_and_touches_answer_as_one_call_each_in_order(make_store: MakeStore) -> None:
    clock = DrivenClock()
    store = make_store(clock, ttl_seconds=1000, away_after_seconds=300)
    first, second = new_id(), new_id()
    assert await store.connect_many([]) == [] and await store.touch_many([]) == []
    # The same user twice in one batch: only the first socket brings the user online.
    assert await store.connect_many([(first, "phone"), (second, "phone"), (first, "laptop")]) == [True, True, False]
    answer = await store.query([first, second])
    assert answer[first]["status"] == answer[second]["status"] == ONLINE
    clock.now += 301
    # A heartbeat reports an idle user's turn to away, once; a command brings one back, once.
    assert await store.touch_many([(first, "phone", False), (second, "phone", True), (second, "phone", True)]) == [
        True,
        True,
        False,
    ]
    answer = await store.query([first, second])
    assert (answer[first]["status"], answer[second]["status"]) == (AWAY, ONLINE)


async def test_redis_presence_writes_the_seed_hash_with_its_ttl(redis_client: aredis.Redis) -> None:
    store, user = RedisPresence(redis_client, PresenceSettings(ttl_seconds=300)), new_id()
    await store.connect(user, "phone")
    stored = await redis_client.hgetall(chat_presence(user))
    assert set(stored) == {"status", "lastActive"}
    assert stored["status"] == ONLINE and ISO_MS.match(str(stored["lastActive"]))
    assert 299_000 < await redis_client.pttl(chat_presence(user)) <= 300_000
    await store.disconnect(user, "phone")
    assert (await redis_client.hgetall(chat_presence(user)))["status"] == OFFLINE
    assert await redis_client.exists(chat_presence_connections(user)) == 0


async def test_redis_keys_of_a_dead_process_really_expire(redis_client: aredis.Redis) -> None:
    store, user = RedisPresence(redis_client, PresenceSettings(ttl_seconds=0.4)), new_id()
    await store.connect(user, "phone")
    await asyncio.sleep(0.6)
    assert await redis_client.exists(chat_presence(user), chat_presence_connections(user)) == 0


async def test_two_processes_share_one_users_presence(redis_client: aredis.Redis) -> None:
    other_client = aredis.Redis.from_url(settings.REDIS_URL, decode_responses=True)
    try:
        first, second = RedisPresence(redis_client), RedisPresence(other_client)
        user = new_id()
        assert await first.connect(user, "process-1-socket") is True
        assert await second.connect(user, "process-2-socket") is False
        assert await first.disconnect(user, "process-1-socket") is False
        assert (await first.query([user]))[user]["status"] == ONLINE
        assert await second.disconnect(user, "process-2-socket") is True
        assert (await first.query([user]))[user]["status"] == OFFLINE
    finally:
        await other_client.aclose()


def test_presence_settings_refuse_a_zero_ttl() -> None:
    with pytest.raises(ValueError):
        PresenceSettings(ttl_seconds=0)
