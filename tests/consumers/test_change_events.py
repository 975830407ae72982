"""A change made by a service reaches the sockets subscribed to its topic, after the transaction commits."""

import pytest
from asgiref.sync import sync_to_async
from django.db import transaction

from apps.accounts.services import asession_login
from apps.maintenance import services
from apps.maintenance.models import MaintenanceRequest
from realtime import topics
from tests.consumers.conftest import token_for
from tests.factories import DEFAULT_PASSWORD, make_property, make_unit

pytestmark = pytest.mark.django_db(transaction=True)


async def test_manager_receives_maintenance_updated_after_a_service_change(connect, new_user) -> None:
    landlord = await new_user(user_type="landlord")
    manager = await new_user(user_type="property_manager")
    prop = await sync_to_async(make_property)(owner=landlord, managers=(manager,))
    unit = await sync_to_async(make_unit)(property=prop)
    request = await sync_to_async(MaintenanceRequest.objects.create)(
        unit=unit, category="plumbing", description="Leaking tap"
    )
    board = topics.maintenance_updates(str(prop.pk))

    socket = await connect(await token_for(manager))
    await socket.send_json_to({"type": "subscribe", "ref": "s", "topic": board})
    reply = await socket.receive_json_from(timeout=2)
    assert reply["type"] == "reply" and reply["ok"] is True, reply
    position = reply["data"]["offset"]

    principal, _ = await asession_login(email=manager.email, password=DEFAULT_PASSWORD, ip="127.0.0.1", user_agent="t")

    def assign() -> None:
        with transaction.atomic():  # the caller's transaction: the event leaves when it commits
            services.maintenance_request_update(
                caller=principal, request_id=request.pk, changes={"status": "assigned", "priority": "high"}
            )

    await sync_to_async(assign)()
    frame = await socket.receive_json_from(timeout=3)
    assert frame["type"] == "event" and frame["topic"] == board
    assert frame["event"] == "maintenance.updated"
    assert frame["data"]["id"] == str(request.pk)
    assert frame["data"]["status"] == "assigned" and frame["data"]["priority"] == "high"
    assert frame["data"]["propertyId"] == str(prop.pk) and frame["data"]["unitId"] == str(unit.pk)
    assert frame["offset"] and frame["offset"] != position
    assert await socket.receive_nothing(timeout=0.3)

    # The event is in the topic's history: a client that missed it recovers it.
    again = await connect(await token_for(manager))
    await again.send_json_to({"type": "subscribe", "ref": "r", "topic": board, "since": position})
    recovered = await again.receive_json_from(timeout=2)
    assert recovered["data"]["recovered"] is True
    assert recovered["data"]["missed"] == [frame]
