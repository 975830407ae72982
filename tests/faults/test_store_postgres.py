"""PostgreSQL backends terminated (`pg_terminate_backend`): the next socket command gets a new connection.

A command that met the dead connection answers `unavailable` and has written nothing (a
`chat.read` refused there marked no message read and told no one); the command after it
succeeds, on both processes, without waiting for a housekeeping round (20 s here), and the
read it makes reaches each participant once. `presence.query` reads PostgreSQL outside a
transaction (Django drops a connection that fails inside `atomic` by itself, not outside).
"""

import asyncio
from typing import Any

import pytest

from tests.e2e.conftest import ClientFactory, alogin, fast_password_hashing, open_client  # noqa: F401
from tests.faults.stores import (  # noqa: F401  (fixtures)
    Ledger,
    Room,
    own_mongo,
    own_redis,
    room,
    store_servers,
    terminate_backends,
    test_backend_pid,
)

pytestmark = pytest.mark.django_db(transaction=True)


async def read(client: Any, chat: Room, message_id: str) -> dict[str, Any]:
    return await client.request({"type": "chat.read", "conversationId": chat.cid, "messageId": message_id})


async def is_read(client: Any, chat: Room, message_id: str) -> bool:
    history = await client.ok({"type": "chat.history", "conversationId": chat.cid})
    return any(m["id"] == message_id and m["isRead"] for m in history["messages"])


async def test_the_command_after_backends_are_terminated_runs_on_a_new_connection_and_nothing_is_half_written(
    room: Room,  # noqa: F811  (the fixtures imported above)
    open_client: ClientFactory,  # noqa: F811
    test_backend_pid: int,  # noqa: F811
) -> None:
    tenant = await open_client(room.a, await alogin(room.a, room.tenant_email))
    manager = await open_client(room.b, await alogin(room.b, room.manager_email))
    ledgers = [Ledger(tenant, room.topic), Ledger(manager, room.topic)]
    for ledger in ledgers:
        ledger.offset = (await ledger.client.ok({"type": "subscribe", "topic": room.topic}))["offset"]
    first = await tenant.ok(room.send("first"))
    second = await tenant.ok(room.send("second"))
    assert (await read(manager, room, first["id"]))["ok"]  # the server's ORM thread holds a connection now

    assert await asyncio.to_thread(terminate_backends, test_backend_pid) >= 1
    reply = await read(manager, room, second["id"])
    if not reply["ok"]:  # met the dead connection: refused, and nothing of it was written or told
        assert reply["error"]["code"] == "unavailable", reply
        assert not await is_read(tenant, room, second["id"])
        reply = await read(manager, room, second["id"])
    assert reply["ok"], f"the command after the one that met the dead connection failed too: {reply}"
    assert await is_read(tenant, room, second["id"])
    # Outside a transaction (presence.query's read), on both processes.
    assert await asyncio.to_thread(terminate_backends, test_backend_pid) >= 1
    for client, other in ((manager, room.tenant_id), (tenant, room.manager_id)):
        reply = await client.request({"type": "presence.query", "userIds": [other]})
        if not reply["ok"]:
            assert reply["error"]["code"] == "unavailable", reply
            reply = await client.request({"type": "presence.query", "userIds": [other]})
        assert reply["ok"], f"the command after the one that met the dead connection failed too: {reply}"
        assert other in reply["data"]
    # The tenant's process too (its connection was terminated as well): a send, a read.
    third = await tenant.ok(room.send("third"))
    reply = await read(tenant, room, third["id"])
    if not reply["ok"]:
        reply = await read(tenant, room, third["id"])
    assert reply["ok"], reply

    for ledger in ledgers:
        assert await ledger.recover() is True
        ledger.assert_once_each()
        assert ledger.events("chat.message") == [first["id"], second["id"], third["id"]]
        reads = [f["data"]["messageId"] for f in ledger.seen if f["event"] == "chat.read"]
        assert reads == [first["id"], second["id"], third["id"]]  # each read told once; none refused told
    # One traceback per terminated connection (the socket commands' ORM thread, the outbox relay's)
    # per termination, not one per command until a housekeeping round (issue #15: 262 in 20 s).
    for server in (room.a, room.b):
        assert server.logs().count("Traceback") <= 2 * 2, server.logs()
