"""End-to-end: an admin demoted over real HTTP loses the admin's topics on every process at once.

Two uvicorn processes share Redis and PostgreSQL. The admin holds a socket on each,
subscribed to a lease's and a property's maintenance stream; another admin makes them a
tenant with PATCH /api/v1/users/{id} through process B. Both sockets are told
`unsubscribed` (reason forbidden) within a second, and a new socket with the same token,
on either process, is refused those topics.
"""

import asyncio
import json
import time
import urllib.request
from typing import Any

import pytest

from realtime import topics
from tests.e2e.conftest import WAIT, Client, ClientFactory, ServerFactory, ServerProcess, alogin
from tests.factories import make_lease, make_property, make_unit, make_user

pytestmark = pytest.mark.django_db(transaction=True)


def patch_user(server: ServerProcess, token: str, user_id: str, body: dict[str, Any]) -> dict[str, Any]:
    """PATCH /api/v1/users/{id} over real HTTP."""
    request = urllib.request.Request(  # noqa: S310
        f"{server.http_url}/api/v1/users/{user_id}",
        data=json.dumps(body).encode(),
        headers={"Content-Type": "application/json", "Authorization": f"Bearer {token}"},
        method="PATCH",
    )
    with urllib.request.urlopen(request, timeout=WAIT) as response:  # noqa: S310
        answer: dict[str, Any] = json.loads(response.read())
    return answer


async def unsubscribed_topics(client: Client, count: int) -> set[str]:
    """The topics of the next `count` `unsubscribed` frames (other frames are skipped), within a second."""
    told: set[str] = set()
    async with asyncio.timeout(1.0):
        while len(told) < count:
            frame = await client.recv()
            if frame.get("type") == "unsubscribed":
                assert frame["reason"] == "forbidden", frame
                told.add(frame["topic"])
    return told


@pytest.fixture
def scene(start_servers: ServerFactory) -> dict[str, Any]:
    """Users and topics committed (sync, in the test thread), then servers A and B up."""
    admin, boss = make_user(user_type="admin"), make_user(user_type="admin")
    prop = make_property(owner=make_user(user_type="landlord"))
    lease = make_lease(unit=make_unit(property=prop), tenants=(make_user(),))
    a, b = start_servers(2)
    return {
        "admin": admin,
        "boss": boss,
        "a": a,
        "b": b,
        "held": {topics.lease_changes(str(lease.pk)), topics.maintenance_updates(str(prop.pk))},
    }


async def test_admin_demoted_on_one_process_loses_topics_on_both(
    scene: dict[str, Any], open_client: ClientFactory
) -> None:
    admin, boss, a, b, held = scene["admin"], scene["boss"], scene["a"], scene["b"], scene["held"]

    token = await alogin(a, admin.email)
    on_a, on_b = await open_client(a, token), await open_client(b, token)
    for client in (on_a, on_b):
        for topic in sorted(held):
            await client.ok({"type": "subscribe", "topic": topic})

    boss_token = await alogin(b, boss.email)
    changed = await asyncio.to_thread(patch_user, b, boss_token, str(admin.pk), {"userType": "tenant"})
    assert changed["userType"] == "tenant"
    started = time.monotonic()
    told_a, told_b = await asyncio.gather(unsubscribed_topics(on_a, 2), unsubscribed_topics(on_b, 2))
    assert told_a == held and told_b == held
    assert time.monotonic() - started < 1.0

    for server in (a, b):
        fresh = await open_client(server, token)
        for topic in sorted(held):
            reply = await fresh.request({"type": "subscribe", "topic": topic})
            assert reply["ok"] is False and reply["error"]["code"] == "forbidden", (server.http_url, topic, reply)
