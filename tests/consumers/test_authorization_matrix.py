"""Over the socket: a tenant, a manager of another property, a landlord and an admin each try every
topic family; only the allowed ones succeed, the others answer `forbidden`."""

import uuid
from typing import Any

import pytest
from asgiref.sync import sync_to_async

from realtime import topics
from tests.consumers.conftest import token_for
from tests.factories import make_conversation, make_lease, make_property, make_unit, make_user

pytestmark = pytest.mark.django_db(transaction=True)


def build() -> dict[str, Any]:
    landlord = make_user(user_type="landlord")
    manager = make_user(user_type="property_manager")
    other_manager = make_user(user_type="property_manager")
    tenant = make_user()
    admin = make_user(user_type="admin")
    prop = make_property(owner=landlord, managers=(manager,))
    make_property(owner=make_user(user_type="landlord"), managers=(other_manager,))
    unit = make_unit(property=prop)
    lease = make_lease(unit=unit, tenants=(tenant,))
    chat = make_conversation(participants=(tenant, manager))
    return {
        "users": {"tenant": tenant, "other_manager": other_manager, "landlord": landlord, "admin": admin},
        "topics": {
            "chat": topics.chat_messages(str(chat.pk)),
            "tenant_notifications": topics.notifications(str(tenant.pk)),
            "maintenance": topics.maintenance_updates(str(prop.pk)),
            "property": topics.property_changes(str(prop.pk)),
            "unit": topics.unit_changes(str(unit.pk)),
            "lease": topics.lease_changes(str(lease.pk)),
            "system": topics.SYSTEM_BROADCASTS,
            "unknown_property": topics.property_changes(str(uuid.uuid4())),
        },
    }


ALLOWED = {
    "tenant": {"chat", "tenant_notifications", "unit", "lease", "system"},
    "other_manager": {"system"},
    "landlord": {"maintenance", "property", "unit", "lease", "system"},
    "admin": {"chat", "maintenance", "property", "unit", "lease", "system"},
}


async def test_every_role_against_every_topic_family(connect) -> None:
    world = await sync_to_async(build)()
    for role, user in world["users"].items():
        socket = await connect(await token_for(user))
        for name, topic in world["topics"].items():
            await socket.send_json_to({"type": "subscribe", "ref": name, "topic": topic})
            reply = await socket.receive_json_from(timeout=3)
            while reply.get("type") != "reply":  # presence events may come first
                reply = await socket.receive_json_from(timeout=3)
            expected = name in ALLOWED[role]
            assert reply["ok"] is expected, f"{role} -> {name}: {reply}"
            if not expected:
                assert reply["error"]["code"] == "forbidden", reply
