"""Redis down: every stored chat change (send, edit, delete, read) is delayed, never dropped, and goes out once.

Two uvicorn processes on a Redis of the test's own (with persistence) and a MongoDB stand-in.
While Redis is down the tenant (on A) sends, edits and deletes, the manager (on B) reads; all
are acknowledged (stored). Redis comes back: each participant, re-subscribing with `since` =
its position before the outage, holds every acknowledged change exactly once, in order, under
one offset each, and the backlog went out within seconds (not per housekeeping round).
"""

import time

import pytest

from tests.e2e.conftest import ClientFactory, alogin, fast_password_hashing, open_client  # noqa: F401
from tests.faults.stores import (  # noqa: F401  (fixtures)
    Ledger,
    Room,
    StoreProcess,
    eventually,
    own_mongo,
    own_redis,
    room,
    store_servers,
)

pytestmark = pytest.mark.django_db(transaction=True)

DOWN_SENDS = 40


async def test_changes_made_while_redis_is_down_reach_every_participant_once_after_it_returns(
    room: Room,  # noqa: F811  (the fixtures imported above)
    own_redis: StoreProcess,  # noqa: F811
    open_client: ClientFactory,  # noqa: F811
) -> None:
    a, b, cid, topic = room.a, room.b, room.cid, room.topic
    tenant = await open_client(a, await alogin(a, room.tenant_email))
    manager = await open_client(b, await alogin(b, room.manager_email))
    ledgers = [Ledger(tenant, topic), Ledger(manager, topic)]
    for ledger in ledgers:
        ledger.offset = (await ledger.client.ok({"type": "subscribe", "topic": topic}))["offset"]
    send = room.send
    before = [await tenant.ok(send(f"before {i}")) for i in range(3)]
    for ledger in ledgers:
        await ledger.drain()

    held = [ledger.offset for ledger in ledgers]  # each participant's position before the outage
    own_redis.stop()  # SIGTERM: the append-only file keeps history, epochs and keys
    acked = [await tenant.ok(send(f"while down {i}")) for i in range(DOWN_SENDS)]
    assert all(message["offset"] is None for message in acked)  # stored, not published yet
    edited = await tenant.ok({"type": "chat.edit", "messageId": before[0]["id"], "message": "edited while down"})
    assert edited["message"] == "edited while down"
    await tenant.ok({"type": "chat.delete", "messageId": before[1]["id"]})
    read_at = (await manager.ok({"type": "chat.read", "conversationId": cid, "messageId": acked[-1]["id"]}))["readAt"]

    own_redis.start()
    restarted = time.monotonic()
    watcher = await open_client(b, await alogin(b, room.manager_email))
    position = await watcher.ok({"type": "subscribe", "topic": topic, "since": ledgers[1].offset})

    async def everything_out() -> bool:
        data = await watcher.ok({"type": "subscribe", "topic": topic, "since": ledgers[1].offset})
        return len(data.get("missed", [])) >= DOWN_SENDS + 3

    assert position["recovered"] is True
    await watcher.ok({"type": "unsubscribe", "topic": topic})
    await eventually(everything_out, "the backlog published")
    drained_in = time.monotonic() - restarted

    sent_ids = [m["id"] for m in before + acked]
    for ledger, since in zip(ledgers, held, strict=True):
        assert await ledger.recover(since) is True  # the history survived: recovery is honest and complete
        ledger.assert_once_each()
        assert ledger.events("chat.message") == sent_ids  # every acknowledged message, once, in order
        assert ledger.events("chat.edited") == [before[0]["id"]]
        assert ledger.events("chat.deleted") == [before[1]["id"]]
        assert ledger.events("chat.read") == [room.manager_id]
        [read] = [f for f in ledger.seen if f["event"] == "chat.read"]
        assert read["data"]["readAt"] == read_at and read["data"]["messageId"] == acked[-1]["id"]
    assert drained_in < 15, f"the backlog took {drained_in:.1f} s to go out"
    for message in (await tenant.ok({"type": "chat.history", "conversationId": cid, "limit": 100}))["messages"]:
        assert message["offset"] is not None  # history joins each message's one offset
