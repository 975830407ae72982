"""A role or type change re-checks the user's open subscriptions with the NEW role, at once.

The demotion case of issue 10: an admin subscribed to lease and maintenance topics is made a
tenant over HTTP (PATCH /api/v1/users/{id}, through the real ASGI application); their open
socket is told `unsubscribed` (reason forbidden) within a second, may subscribe to nothing
more, and a new socket with the same token is refused too: nothing cached as "allowed" for
the admin outlives the change.
"""

import json
import time
from typing import Any

import pytest
from asgiref.sync import sync_to_async
from django.test import AsyncClient

from apps.accounts.models import User
from realtime import keys, topics
from realtime.connections import get_redis
from tests.consumers.conftest import token_for
from tests.factories import make_lease, make_property, make_unit, make_user

pytestmark = pytest.mark.django_db(transaction=True)


def build() -> dict[str, Any]:
    landlord = make_user(user_type="landlord")
    prop = make_property(owner=landlord)
    other = make_property(owner=make_user(user_type="landlord"))
    unit = make_unit(property=prop)
    lease = make_lease(unit=unit, tenants=(make_user(),))
    return {
        "admin": make_user(user_type="admin"),
        "boss": make_user(user_type="admin"),
        "landlord": landlord,
        "lease": topics.lease_changes(str(lease.pk)),
        "maintenance": topics.maintenance_updates(str(prop.pk)),
        "other_maintenance": topics.maintenance_updates(str(other.pk)),
        "property": topics.property_changes(str(prop.pk)),
    }


async def http(method: str, path: str, token: str, body: Any = None) -> tuple[int, Any]:
    """One HTTP request through Django's ASGI request handler (AsyncClient), on this test's loop."""
    call = getattr(AsyncClient(), method.lower())
    kwargs: dict[str, Any] = {"headers": {"Authorization": f"Bearer {token}"}}
    if body is not None:
        kwargs |= {"data": json.dumps(body), "content_type": "application/json"}
    response = await call(f"/api/v1{path}", **kwargs)
    return response.status_code, json.loads(response.content or b"null")


async def subscribe(socket: Any, topic: str) -> dict[str, Any]:
    await socket.send_json_to({"type": "subscribe", "ref": topic, "topic": topic})
    while True:
        reply: dict[str, Any] = await socket.receive_json_from(timeout=3)
        if reply.get("type") == "reply" and reply.get("ref") == topic:
            return reply


async def test_admin_demoted_to_tenant_loses_topics_at_once_and_new_sockets_are_refused(connect) -> None:
    world = await sync_to_async(build)()
    admin, boss = world["admin"], world["boss"]
    token = await token_for(admin)
    socket = await connect(token)
    held = [world["lease"], world["maintenance"]]
    for topic in held:
        assert (await subscribe(socket, topic))["ok"] is True
    # The admin's own access cache now says "1" for both (on one Redis and on a cluster alike):
    # the defect kept it after the demotion.
    assert await get_redis().hget(keys.user_topic_access(str(admin.pk)), world["lease"]) == "1"

    status, body = await http("PATCH", f"/users/{admin.pk}", await token_for(boss), {"userType": "tenant"})
    assert status == 200 and body["userType"] == "tenant"
    started = time.monotonic()
    told: set[str] = set()
    while len(told) < len(held):
        frame = await socket.receive_json_from(timeout=1)
        if frame.get("type") == "unsubscribed":
            assert frame["reason"] == "forbidden"
            told.add(frame["topic"])
    assert told == set(held)
    assert time.monotonic() - started < 1.0

    # The open socket may subscribe to nothing an admin could, including topics it held.
    for topic in [*held, world["property"], world["other_maintenance"]]:
        reply = await subscribe(socket, topic)
        assert reply["ok"] is False and reply["error"]["code"] == "forbidden", (topic, reply)

    # A new socket with the same token: the session now reads as a tenant, the cache says no.
    fresh = await connect(token)
    for topic in [*held, world["property"]]:
        reply = await subscribe(fresh, topic)
        assert reply["ok"] is False and reply["error"]["code"] == "forbidden", (topic, reply)
    assert await get_redis().hget(keys.user_topic_access(str(admin.pk)), world["lease"]) == "0"
    # The HTTP side agrees: the same token no longer lists users.
    status, _ = await http("GET", "/users", token)
    assert status == 403


async def test_role_added_and_removed_rechecks_open_subscriptions(connect) -> None:
    """maintenance_staff grants `maintenance.view` platform-wide: a tenant given the role may
    follow any property's maintenance board, and loses it, on the open socket, when the role goes."""
    world = await sync_to_async(build)()
    worker = await sync_to_async(make_user)(user_type="tenant")
    token = await token_for(worker)
    socket = await connect(token)
    assert (await subscribe(socket, world["maintenance"]))["ok"] is False

    boss_token = await token_for(world["boss"])
    status, _ = await http("POST", f"/users/{worker.pk}/roles", boss_token, {"roleName": "maintenance_staff"})
    assert status == 201
    assert (await subscribe(socket, world["maintenance"]))["ok"] is True

    status, _ = await http("DELETE", f"/users/{worker.pk}/roles/maintenance_staff", boss_token)
    assert status == 204
    started = time.monotonic()
    frame = await socket.receive_json_from(timeout=1)
    while frame.get("type") != "unsubscribed":
        frame = await socket.receive_json_from(timeout=1)
    assert frame == {"type": "unsubscribed", "topic": world["maintenance"], "reason": "forbidden"}
    assert time.monotonic() - started < 1.0
    assert (
        await sync_to_async(User.objects.filter(pk=worker.pk, roles__role_name="maintenance_staff").exists)() is False
    )
