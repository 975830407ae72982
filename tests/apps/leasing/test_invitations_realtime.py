"""Lease invitations and the realtime side: the invited user is notified live (MongoDB
`notifications`, `notifications:{userId}`), the inviter when it is answered; until accepting,
the invited user's socket is refused the lease's, unit's and property's topics."""

from typing import Any

import pytest
from asgiref.sync import sync_to_async
from django.conf import settings
from django.test import Client
from pymongo import MongoClient

from apps.leasing import invitations
from apps.leasing.models import Lease
from realtime import topics
from realtime.runtime import get_realtime
from tests.apps.api_world import Api, World, build_world
from tests.apps.messaging.http_chat import AsyncApi
from tests.consumers.conftest import token_for
from tests.consumers.test_chat import next_event, request
from tests.factories import make_user

pytestmark = pytest.mark.django_db(transaction=True)

PROFILE = {"dateOfBirth": "1988-08-08", "ssnLastFour": "4321"}


@pytest.fixture
async def world() -> World:
    return await sync_to_async(build_world)()


def stored_notifications(user_id: Any) -> list[dict[str, Any]]:
    """The user's notifications as MongoDB holds them, oldest first."""
    client: MongoClient[dict[str, Any]] = MongoClient(settings.MONGO_URL)
    try:
        return list(client[settings.MONGO_DATABASE]["notifications"].find({"userId": str(user_id)}).sort("_id", 1))
    finally:
        client.close()


async def subscribed(socket: Any, topic: str) -> dict[str, Any]:
    return await request(socket, {"type": "subscribe", "topic": topic})


async def test_invited_user_is_notified_live_and_gets_the_lease_topics_only_after_accepting(
    world: World, connect: Any
) -> None:
    await get_realtime()  # this loop's core delivers, as in a server process
    lease = await Lease.objects.select_related("unit").aget(unit=world.unit)
    newcomer = await sync_to_async(make_user)()
    socket = await connect(await token_for(newcomer))
    assert (await subscribed(socket, topics.notifications(str(newcomer.pk))))["ok"]
    inviter_socket = await connect(await token_for(world.manager))
    assert (await subscribed(inviter_socket, topics.notifications(str(world.manager.pk))))["ok"]
    lease_topics = [
        topics.lease_changes(str(lease.pk)),
        topics.unit_changes(str(world.unit.pk)),
        topics.property_changes(str(world.prop.pk)),
    ]

    manager = await AsyncApi.login(world.manager)
    response = await manager.post(f"/leases/{lease.pk}/invitations", {"userId": str(newcomer.pk), "tenant": PROFILE})
    assert response.status_code == 201, response.content
    invitation = response.json()

    live = (await next_event(socket, "notification"))["data"]
    assert live["type"] == invitations.NOTICE_INVITED and live["referenceId"] == invitation["id"]
    assert live["referenceType"] == "lease_invitation" and live["priority"] == "high"
    assert live["expiresAt"] is not None and live["expiresAt"][:19] == invitation["expiresAt"][:19]
    assert [action["url"] for action in live["actions"]] == [
        f"/api/v1/invitations/{invitation['id']}/accept",
        f"/api/v1/invitations/{invitation['id']}/decline",
    ]
    assert world.prop.property_name in live["message"]
    me = await AsyncApi.login(newcomer)
    listed = (await me.get("/notifications")).json()["notifications"]
    assert [n["id"] for n in listed] == [live["id"]]
    assert (await me.get("/notifications/unread-count")).json() == {"unread": 1}

    for topic in lease_topics:  # invited is not on the lease: nothing of it over the socket
        reply = await subscribed(socket, topic)
        assert reply["ok"] is False and reply["error"]["code"] == "forbidden", topic

    accepted = await me.post(f"/invitations/{invitation['id']}/accept")
    assert accepted.status_code == 200, accepted.content
    for topic in lease_topics[:2]:  # property:changes is for staff only (docs/protocol.md), tenant or not
        assert (await subscribed(socket, topic))["ok"], topic

    told = (await next_event(inviter_socket, "notification"))["data"]
    assert told["type"] == invitations.NOTICE_ACCEPTED and told["referenceId"] == invitation["id"]
    assert [n["type"] for n in await sync_to_async(stored_notifications)(world.manager.pk)] == [
        invitations.NOTICE_ACCEPTED
    ]


async def test_decline_tells_the_inviter_and_refused_or_revoked_ones_tell_nobody(
    world: World, realtime_core: None
) -> None:
    await get_realtime()
    lease = await Lease.objects.aget(unit=world.unit)
    first, second = await sync_to_async(make_user)(), await sync_to_async(make_user)()
    landlord = await AsyncApi.login(world.landlord)
    one = (await landlord.post(f"/leases/{lease.pk}/invitations", {"userId": str(first.pk)})).json()
    duplicate = await landlord.post(f"/leases/{lease.pk}/invitations", {"userId": str(first.pk)})
    assert duplicate.status_code == 409  # rolled back: no second notification
    assert (await (await AsyncApi.login(first)).post(f"/invitations/{one['id']}/decline")).status_code == 200

    two = (await landlord.post(f"/leases/{lease.pk}/invitations", {"userId": str(second.pk)})).json()
    revoked = await landlord.post(f"/leases/{lease.pk}/invitations/{two['id']}/revoke")
    assert revoked.status_code == 200
    late = await (await AsyncApi.login(second)).post(f"/invitations/{two['id']}/accept")
    assert late.status_code == 409

    assert [n["type"] for n in await sync_to_async(stored_notifications)(first.pk)] == [invitations.NOTICE_INVITED]
    assert [n["type"] for n in await sync_to_async(stored_notifications)(second.pk)] == [invitations.NOTICE_INVITED]
    inviter = await sync_to_async(stored_notifications)(world.landlord.pk)
    assert [(n["type"], n["referenceId"]) for n in inviter] == [(invitations.NOTICE_DECLINED, one["id"])]


def test_a_process_without_a_running_core_still_stores_and_counts_the_notification(
    client: Client, clean_redis: Any
) -> None:
    # The sync test client runs each request on a loop of its own, with no realtime core:
    # notices.py then delivers through short-lived clients of its own.
    world = build_world()
    lease = Lease.objects.get(unit=world.unit)
    newcomer = make_user()
    response = Api(client, world.manager).post(f"/leases/{lease.pk}/invitations", {"userId": str(newcomer.pk)})
    assert response.status_code == 201, response.content
    stored = stored_notifications(newcomer.pk)
    assert [(n["type"], n["referenceId"], bool(n["isRead"])) for n in stored] == [
        (invitations.NOTICE_INVITED, response.json()["id"], False)
    ]
    assert clean_redis.get(f"notifications:count:{newcomer.pk}") == "1"
