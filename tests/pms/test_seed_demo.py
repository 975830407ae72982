"""`manage.py seed_demo`: the demo world through the services, created once however often it runs."""

import asyncio
import json
from io import StringIO
from typing import Any

import pytest
from django.conf import settings as django_settings
from django.core.management import call_command
from django.core.management.base import CommandError
from django.test import Client

from apps.accounts.models import User
from apps.finance.models import PaymentStatus, RecurringTransaction, Transaction
from apps.leasing.models import Lease, LeaseStatus
from apps.maintenance.models import MaintenanceRequest, Vendor, WorkOrder
from apps.messaging.models import Conversation, ConversationParticipant
from apps.properties.models import Property, PropertyManager, Unit
from pms import demo
from realtime import connections

pytestmark = pytest.mark.django_db(transaction=True)

PASSWORD = "demo-test-password"


def run(*args: str) -> str:
    out = StringIO()
    call_command("seed_demo", *args, stdout=out)
    return out.getvalue()


def mongo_counts(conversation_ids: list[str], user_ids: list[str]) -> tuple[dict[str, int], int]:
    async def count() -> tuple[dict[str, int], int]:
        try:
            database = connections.get_mongo()[django_settings.MONGO_DATABASE]
            messages = {
                cid: await database["chat_messages"].count_documents({"conversationId": cid})
                for cid in conversation_ids
            }
            notices = await database["notifications"].count_documents({"userId": {"$in": user_ids}})
            return messages, notices
        finally:
            await connections.aclose_loop_clients()

    return asyncio.run(count())


def demo_world() -> dict[str, Any]:
    demo_users = User.objects.filter(email__endswith=f"@{demo.DOMAIN}")
    props = Property.objects.filter(owner__in=demo_users)
    conversations = [
        str(pk) for pk in Conversation.objects.filter(created_by__in=demo_users).values_list("pk", flat=True)
    ]
    messages, notices = mongo_counts(conversations, [str(pk) for pk in demo_users.values_list("pk", flat=True)])
    return {
        "users": demo_users.count(),
        "properties": props.count(),
        "managers": PropertyManager.objects.filter(property__in=props).count(),
        "units": Unit.objects.filter(property__in=props).count(),
        "occupied": Unit.objects.filter(property__in=props, is_occupied=True).count(),
        "active_leases": Lease.objects.filter(unit__property__in=props, lease_status=LeaseStatus.ACTIVE).count(),
        "rent_schedules": RecurringTransaction.objects.filter(lease__unit__property__in=props, is_active=True).count(),
        "charges": sorted(Transaction.objects.filter(property__in=props).values_list("payment_status", flat=True)),
        "requests": sorted(
            MaintenanceRequest.objects.filter(unit__property__in=props).values_list("status", flat=True)
        ),
        "work_orders": WorkOrder.objects.filter(request__unit__property__in=props).count(),
        "messages": messages,
        "notifications": notices,
    }


def login(client: Client, email: str, password: str) -> int:
    response = client.post(
        "/api/v1/auth/login", data=json.dumps({"email": email, "password": password}), content_type="application/json"
    )
    return response.status_code


def test_seed_demo_twice_creates_the_world_once_and_its_logins_work() -> None:
    first = run("--password", PASSWORD)
    world = demo_world()
    assert world["users"] == len(demo.logins()) == 12
    assert world["properties"] == 2
    assert world["managers"] == 2
    assert world["units"] == 12
    assert world["active_leases"] == world["occupied"] == world["rent_schedules"] == 8
    assert world["charges"] == sorted([PaymentStatus.PAID, PaymentStatus.PENDING, PaymentStatus.LATE])
    assert world["requests"] == sorted(
        ["submitted", "submitted", "assigned", "in_progress", "in_progress", "completed"]
    )
    assert world["work_orders"] == 2
    assert len(world["messages"]) == 4
    assert sorted(world["messages"].values()) == sorted(len(lines) for _, _, lines in demo.CONVERSATIONS)
    assert world["notifications"] > 0
    read = ConversationParticipant.objects.filter(
        user__email__in=[demo.email(local) for local in demo.READ_BY_TENANT],
        last_read_message_id__isnull=False,
    )
    assert read.count() == len(demo.READ_BY_TENANT)
    assert "demo world created" in first

    second = run("--password", PASSWORD)
    assert "already present" in second
    assert "0 messages sent now" in second
    assert demo_world() == world

    client = Client()
    for entry in demo.logins():
        assert entry.email in second
        assert login(client, entry.email, PASSWORD) == 200, entry.email
    assert login(client, demo.logins()[0].email, "wrong-password") == 401
    third = run("--password", "another-password")
    assert "another-password" not in third
    assert "the one given when the demo world was created" in third


def test_seed_demo_reset_removes_the_world_and_builds_it_again() -> None:
    run("--password", PASSWORD)
    before = demo_world()
    first_landlord = User.objects.get(email=demo.logins()[0].email).pk
    out = run("--password", PASSWORD, "--reset")
    assert "demo world removed (12 accounts)" in out
    assert "demo world created" in out
    assert User.objects.get(email=demo.logins()[0].email).pk != first_landlord
    after = demo_world()
    assert {k: v for k, v in after.items() if k != "messages"} | {"notifications": 0} == {
        k: v for k, v in before.items() if k != "messages"
    } | {"notifications": 0}
    assert sorted(after["messages"].values()) == sorted(before["messages"].values())
    assert Vendor.objects.filter(company_name__in=[v["company_name"] for v in demo.VENDORS]).count() == 2


def test_seed_demo_without_debug_needs_an_explicit_password(settings: Any) -> None:
    settings.DEBUG = False
    with pytest.raises(CommandError, match="--password"):
        run()
    assert not User.objects.filter(email__endswith=f"@{demo.DOMAIN}").exists()


def test_seed_demo_in_debug_uses_the_printed_demo_password(settings: Any) -> None:
    settings.DEBUG = True
    out = run()
    assert f"password for all: {demo.DEMO_PASSWORD}" in out
    assert login(Client(), demo.logins()[-1].email, demo.DEMO_PASSWORD) == 200


def test_seed_demo_rerun_sends_the_messages_a_run_did_not_store() -> None:
    """A run that stopped after PostgreSQL (MongoDB down, say) is completed by the next one."""
    run("--password", PASSWORD)
    before = demo_world()
    missing = next(iter(before["messages"]))

    async def forget() -> None:
        try:
            database = connections.get_mongo()[django_settings.MONGO_DATABASE]
            await database["chat_messages"].delete_many({"conversationId": missing})
        finally:
            await connections.aclose_loop_clients()

    asyncio.run(forget())
    assert demo_world()["messages"][missing] == 0
    out = run("--password", PASSWORD)
    assert f"{before['messages'][missing]} messages sent now" in out
    assert demo_world()["messages"] == before["messages"]
