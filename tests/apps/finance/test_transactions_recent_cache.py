"""`transactions:recent:{userId}`: read through, exact drops after each committed change, never stale,
and correct answers from PostgreSQL while Redis is down.

These tests commit for real (`transaction=True`): the drops run on commit, as in production.
"""

import datetime
import json
from collections.abc import Iterator
from dataclasses import replace
from decimal import Decimal
from typing import Any

import pytest
import redis
from django.test import Client
from django.utils import timezone

from apps.accounts.models import User
from apps.accounts.services import user_update
from apps.finance import services as finance_services
from apps.finance.caches import RECENT_TTL_SECONDS
from apps.finance.models import Transaction
from apps.finance.selectors import RECENT_COUNT, transaction_data
from apps.leasing.models import Lease
from apps.leasing.services import lease_tenant_attach
from apps.properties.models import PropertyManager
from apps.properties.services import property_admin_delete, property_admin_save
from realtime import connections
from tests.apps.api_world import World

pytestmark = pytest.mark.django_db(transaction=True)

RECENT = "/transactions/recent"


def key(user: User) -> str:
    return f"transactions:recent:{user.pk}"


def lease_of(world: World, other: bool = False) -> Lease:
    return Lease.objects.get(unit=world.other_unit if other else world.unit)


def charge(world: World, *, other: bool = False, **fields: Any) -> Transaction:
    fields.setdefault("transaction_type", "rent")
    fields.setdefault("amount", Decimal("1450.00"))
    return Transaction.objects.create(
        lease=lease_of(world, other), property=world.other_prop if other else world.prop, **fields
    )


def recent(world: World, client: Client, who: str) -> list[dict[str, Any]]:
    response = world.api(client, who).get(RECENT)
    assert response.status_code == 200, response.content
    return response.json()["items"]


def from_db(world: World, client: Client, who: str) -> list[dict[str, Any]]:
    """What GET /transactions/{id} says for each of the newest visible rows: the database's truth."""
    user = getattr(world, who)
    rows = Transaction.objects.order_by("-created_at", "-id")
    if user.user_type == "tenant":
        rows = rows.filter(lease__tenant_links__tenant__user=user)
    elif user.user_type != "admin":
        rows = rows.filter(
            property__in=list(user.owned_properties.all())
            + [link.property for link in PropertyManager.objects.filter(user=user)]
        )
    api = world.api(client, who)
    return [api.get(f"/transactions/{row.pk}").json() for row in rows[:RECENT_COUNT]]


def test_read_fills_the_list_newest_first_capped_at_20_with_a_15_minute_ttl(
    world: World, client: Client, clean_redis: redis.Redis
) -> None:
    start = timezone.now() - datetime.timedelta(days=1)
    for minute in range(25):
        charge(world, created_at=start + datetime.timedelta(minutes=minute), amount=Decimal(f"{100 + minute}.00"))
    charge(world, other=True)
    assert not clean_redis.exists(key(world.tenant))

    items = recent(world, client, "tenant")
    assert len(items) == RECENT_COUNT
    assert [item["amount"] for item in items] == [f"{100 + minute}.00" for minute in range(24, 4, -1)]
    assert items == from_db(world, client, "tenant")

    cached = [json.loads(raw) for raw in clean_redis.lrange(key(world.tenant), 0, -1)]
    assert cached == [transaction_data(Transaction.objects.get(pk=item["id"])) for item in items]
    assert 0 < clean_redis.ttl(key(world.tenant)) <= RECENT_TTL_SECONDS
    # A second read is served from the list and says the same.
    clean_redis.lset(key(world.tenant), 0, json.dumps({**cached[0], "description": "from the cache"}))
    assert recent(world, client, "tenant")[0]["description"] == "from the cache"


def test_each_caller_sees_only_their_transactions(world: World, client: Client) -> None:
    mine, theirs = charge(world), charge(world, other=True)
    for who, expected in [
        ("tenant", {mine.pk}),
        ("landlord", {mine.pk}),
        ("manager", {mine.pk}),
        ("other_manager", {theirs.pk}),
        ("other_tenant", {theirs.pk}),
        ("admin", {mine.pk, theirs.pk}),
    ]:
        assert {item["id"] for item in recent(world, client, who)} == {str(pk) for pk in expected}, who


def test_http_writes_drop_exactly_the_audience_and_the_next_read_equals_the_database(
    world: World, client: Client, clean_redis: redis.Redis
) -> None:
    charge(world)
    charge(world, other=True)
    audience = ("tenant", "landlord", "manager", "admin")
    for who in (*audience, "other_manager", "other_tenant"):
        recent(world, client, who)
    assert all(clean_redis.exists(key(getattr(world, who))) for who in audience)

    manager = world.api(client, "manager")
    created = manager.post(
        "/transactions",
        {"leaseId": str(lease_of(world).pk), "transactionType": "rent", "amount": "1450.00", "dueDate": "2026-04-01"},
    ).json()
    for who in audience:
        assert not clean_redis.exists(key(getattr(world, who))), who
    assert clean_redis.exists(key(world.other_manager)) and clean_redis.exists(key(world.other_tenant))
    for who in audience:
        assert recent(world, client, who) == from_db(world, client, who), who
    assert recent(world, client, "tenant")[0]["id"] == created["id"]

    assert manager.patch(f"/transactions/{created['id']}", {"paymentStatus": "paid"}).status_code == 200
    after_paid = recent(world, client, "tenant")
    assert after_paid[0]["paymentStatus"] == "paid" and after_paid == from_db(world, client, "tenant")
    assert recent(world, client, "admin") == from_db(world, client, "admin")

    second = manager.post(
        "/transactions", {"propertyId": str(world.prop.pk), "transactionType": "fee", "amount": "10.00"}
    ).json()
    assert [item["id"] for item in recent(world, client, "landlord")][:2] == [second["id"], created["id"]]
    assert second["id"] not in {item["id"] for item in recent(world, client, "tenant")}  # no lease: not the tenant's
    assert manager.delete(f"/transactions/{second['id']}").status_code == 204
    assert recent(world, client, "landlord") == from_db(world, client, "landlord")
    assert second["id"] not in {item["id"] for item in recent(world, client, "landlord")}


# Changed in issue 10: the drops are explicit calls of the services, no longer model signals, so
# the writes outside the API go through the admin site's services (the bare ORM drops nothing:
# `test_a_bare_orm_save_drops_nothing`).


def test_admin_saves_outside_the_api_drop_the_lists_too(world: World, client: Client) -> None:
    row = charge(world)
    assert recent(world, client, "tenant")[0]["paymentStatus"] == "pending"
    row.payment_status = "late"
    finance_services.transaction_admin_save(tx=row)
    assert recent(world, client, "tenant")[0]["paymentStatus"] == "late"
    finance_services.transaction_admin_delete(tx=row)
    assert recent(world, client, "tenant") == []


def test_a_bare_orm_save_drops_nothing(world: World, client: Client) -> None:
    """Documented behaviour (issue 10): a row written with the bare ORM (a shell, a script) leaves
    the lists until their TTL (15 minutes); code writing transactions outside the services must
    call `apps.finance.caches.transaction_changed` itself."""
    row = charge(world)
    assert recent(world, client, "tenant")[0]["paymentStatus"] == "pending"
    row.payment_status = "late"
    row.save()
    assert recent(world, client, "tenant")[0]["paymentStatus"] == "pending"


def test_moving_a_transaction_to_another_lease_drops_both_audiences(world: World, client: Client) -> None:
    row = charge(world)
    assert len(recent(world, client, "tenant")) == 1 and recent(world, client, "other_tenant") == []
    row.lease = lease_of(world, other=True)
    row.property = world.other_prop
    finance_services.transaction_admin_save(tx=row)
    assert recent(world, client, "tenant") == [] and recent(world, client, "landlord") == []
    assert [item["id"] for item in recent(world, client, "other_tenant")] == [str(row.pk)]
    assert [item["id"] for item in recent(world, client, "other_manager")] == [str(row.pk)]


def test_changes_of_who_may_see_drop_the_users_involved(world: World, client: Client) -> None:
    row = charge(world)
    assert recent(world, client, "other_tenant") == [] and len(recent(world, client, "manager")) == 1

    # The other tenant joins the lease (PUT lease tenants), then leaves it.
    lease = lease_of(world)
    both = {
        "tenants": [
            {"tenantId": str(world.tenant_record(world.tenant).pk), "isPrimary": True},
            {"tenantId": str(world.tenant_record(world.other_tenant).pk)},
        ]
    }
    lease_tenant_attach(lease=lease, tenant=world.tenant_record(world.other_tenant))  # as an accepted invitation
    assert [item["id"] for item in recent(world, client, "other_tenant")] == [str(row.pk)]
    only = {"tenants": both["tenants"][:1]}
    assert world.api(client, "landlord").put(f"/leases/{lease.pk}/tenants", only).status_code == 200
    assert recent(world, client, "other_tenant") == []

    # The manager loses the property.
    assert (
        world.api(client, "landlord").delete(f"/properties/{world.prop.pk}/managers/{world.manager.pk}").status_code
        == 204
    )
    assert recent(world, client, "manager") == []

    # The other landlord becomes the owner; the old owner stops seeing it.
    assert len(recent(world, client, "landlord")) == 1 and len(recent(world, client, "other_landlord")) == 0
    world.prop.owner = world.other_landlord
    property_admin_save(prop=world.prop)
    assert recent(world, client, "landlord") == []
    assert [item["id"] for item in recent(world, client, "other_landlord")] == [str(row.pk)]

    # A user promoted to admin sees everything at once.
    assert recent(world, client, "other_manager") == []
    user_update(actor_id=str(world.admin.pk), user_id=world.other_manager.pk, data={"userType": "admin"})
    assert [item["id"] for item in recent(world, client, "other_manager")] == [str(row.pk)]


def test_deleting_a_property_drops_by_pattern(world: World, client: Client, clean_redis: redis.Redis) -> None:
    charge(world)
    charge(world)
    assert len(recent(world, client, "tenant")) == 2 and len(recent(world, client, "other_tenant")) == 0
    property_admin_delete(prop=world.prop)
    assert not clean_redis.exists(key(world.tenant))
    assert recent(world, client, "tenant") == [] and recent(world, client, "admin") == from_db(world, client, "admin")


@pytest.fixture
def redis_down() -> Iterator[None]:
    """Point the realtime core at a port where no Redis listens."""
    original = connections.current_settings()
    connections.configure(replace(original, redis_url="redis://127.0.0.1:1/0", redis_socket_timeout=0.5))
    yield
    connections.configure(original)


def test_redis_down_still_answers_correctly_from_postgres(world: World, client: Client, redis_down: None) -> None:
    charge(world, amount=Decimal("1.00"))
    assert [item["amount"] for item in recent(world, client, "tenant")] == ["1.00"]
    manager = world.api(client, "manager")
    created = manager.post(
        "/transactions", {"leaseId": str(lease_of(world).pk), "transactionType": "fee", "amount": "2.50"}
    )
    assert created.status_code == 201, created.content
    assert recent(world, client, "tenant") == from_db(world, client, "tenant")
    assert [item["amount"] for item in recent(world, client, "tenant")] == ["2.50", "1.00"]
