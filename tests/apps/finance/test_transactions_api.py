"""Transactions over HTTP: who sees and changes what, marking paid, delete only pending, filters and pages."""

import datetime
from decimal import Decimal
from typing import Any

import pytest
from django.test import Client

from apps.finance.models import Transaction
from apps.finance.services import LEASE_PROPERTY_MISMATCH, ONLY_PENDING_DELETABLE
from apps.leasing.models import Lease
from tests.apps.api_world import World

pytestmark = pytest.mark.django_db

READERS = [
    ("tenant", 200),
    ("landlord", 200),
    ("manager", 200),
    ("admin", 200),
    ("other_manager", 404),
    ("other_landlord", 404),
    ("other_tenant", 404),
]
WRITERS = [
    ("tenant", 403),
    ("other_tenant", 403),
    ("landlord", 200),
    ("manager", 200),
    ("admin", 200),
    ("other_manager", 404),
    ("other_landlord", 404),
]


def charge(world: World, *, other: bool = False, **fields: Any) -> Transaction:
    lease = Lease.objects.get(unit=world.other_unit if other else world.unit, lease_status="active")
    fields.setdefault("transaction_type", "rent")
    fields.setdefault("amount", Decimal("1450.00"))
    fields.setdefault("due_date", datetime.date(2026, 2, 1))
    return Transaction.objects.create(lease=lease, property=world.other_prop if other else world.prop, **fields)


@pytest.mark.parametrize(("who", "status"), READERS)
def test_transaction_get_permission_matrix(world: World, client: Client, who: str, status: int) -> None:
    row = charge(world, description="February rent")
    response = world.api(client, who).get(f"/transactions/{row.pk}")
    assert response.status_code == status, response.content
    if status == 200:
        body = response.json()
        assert body["amount"] == "1450.00" and body["dueDate"] == "2026-02-01"
        assert body["transactionType"] == "rent" and body["paymentStatus"] == "pending"
        assert body["leaseId"] == str(row.lease_id) and body["propertyId"] == str(world.prop.pk)


@pytest.mark.parametrize(
    ("who", "expected"),
    [
        ("tenant", {"mine"}),
        ("landlord", {"mine", "property_only"}),
        ("manager", {"mine", "property_only"}),
        ("other_manager", {"other"}),
        ("other_tenant", {"other"}),
        ("admin", {"mine", "other", "property_only"}),
    ],
)
def test_transaction_list_shows_each_caller_only_theirs(
    world: World, client: Client, who: str, expected: set[str]
) -> None:
    rows = {
        "mine": charge(world),
        "other": charge(world, other=True),
        "property_only": Transaction.objects.create(
            property=world.prop, transaction_type="maintenance", amount=Decimal("80.00")
        ),
    }
    names = {str(row.pk): name for name, row in rows.items()}
    items = world.api(client, who).get("/transactions", limit=100).json()["items"]
    assert {names[item["id"]] for item in items if item["id"] in names} == expected


@pytest.mark.parametrize(
    ("who", "status"),
    [
        ("manager", 201),
        ("landlord", 201),
        ("admin", 201),
        ("tenant", 403),
        ("other_manager", 404),
        ("other_landlord", 404),
    ],
)
def test_transaction_create_on_a_lease_permission_matrix(world: World, client: Client, who: str, status: int) -> None:
    lease = Lease.objects.get(unit=world.unit)
    body = {"leaseId": str(lease.pk), "transactionType": "rent", "amount": "1450.00", "dueDate": "2026-03-01"}
    response = world.api(client, who).post("/transactions", body)
    assert response.status_code == status, response.content
    if status == 201:
        created = response.json()
        assert created["propertyId"] == str(world.prop.pk) and created["paymentStatus"] == "pending"
        assert Transaction.objects.get(pk=created["id"]).amount == Decimal("1450.00")


def test_transaction_create_on_a_property_and_its_rules(world: World, client: Client) -> None:
    api = world.api(client, "manager")
    lease = Lease.objects.get(unit=world.unit)
    on_property = api.post(
        "/transactions",
        {"propertyId": str(world.prop.pk), "transactionType": "utility", "amount": "99.99", "paymentStatus": "paid"},
    )
    assert on_property.status_code == 201, on_property.content
    assert on_property.json()["leaseId"] is None and on_property.json()["paymentDate"] is not None

    neither = api.post("/transactions", {"transactionType": "fee", "amount": "5.00"})
    assert neither.status_code == 422
    mismatch = api.post(
        "/transactions",
        {"leaseId": str(lease.pk), "propertyId": str(world.other_prop.pk), "transactionType": "fee", "amount": "5.00"},
    )
    assert mismatch.status_code == 404  # the other property is not the manager's to name
    admin_mismatch = world.api(client, "admin").post(
        "/transactions",
        {"leaseId": str(lease.pk), "propertyId": str(world.other_prop.pk), "transactionType": "fee", "amount": "5.00"},
    )
    assert admin_mismatch.status_code == 422
    assert admin_mismatch.json()["error"]["fields"] == [
        {"field": "body.payload.propertyId", "reason": LEASE_PROPERTY_MISMATCH}
    ]
    assert (
        api.post(
            "/transactions", {"propertyId": str(world.other_prop.pk), "transactionType": "fee", "amount": "5.00"}
        ).status_code
        == 404
    )


@pytest.mark.parametrize("amount", ["0", "0.00", "-1.00", "1.005", "12345678901", "12345678.9", "abc", None])
def test_transaction_amount_must_be_positive_with_two_decimals_at_most(
    world: World, client: Client, amount: Any
) -> None:
    body = {"propertyId": str(world.prop.pk), "transactionType": "fee", "amount": amount}
    response = world.api(client, "manager").post("/transactions", body)
    if amount == "12345678.9":
        assert response.status_code == 201
        assert response.json()["amount"] == "12345678.90"
        return
    assert response.status_code == 422, response.content
    assert response.json()["error"]["fields"][0]["field"] == "body.payload.amount"


@pytest.mark.parametrize(("who", "status"), WRITERS)
def test_transaction_mark_paid_permission_matrix(world: World, client: Client, who: str, status: int) -> None:
    row = charge(world)
    response = world.api(client, who).patch(
        f"/transactions/{row.pk}", {"paymentStatus": "paid", "paymentMethod": "ach"}
    )
    assert response.status_code == status, response.content
    row.refresh_from_db()
    if status == 200:
        assert response.json()["paymentStatus"] == "paid" and response.json()["paymentMethod"] == "ach"
        assert row.payment_date is not None
    else:
        assert row.payment_status == "pending"


def test_mark_paid_keeps_the_given_payment_date_and_refuses_nulls(world: World, client: Client) -> None:
    row = charge(world)
    api = world.api(client, "manager")
    paid = api.patch(f"/transactions/{row.pk}", {"paymentStatus": "paid", "paymentDate": "2026-02-03T10:00:00Z"})
    assert paid.status_code == 200
    assert datetime.datetime.fromisoformat(paid.json()["paymentDate"]) == datetime.datetime(
        2026, 2, 3, 10, tzinfo=datetime.UTC
    )
    assert api.patch(f"/transactions/{row.pk}", {"amount": None}).status_code == 422
    assert api.patch(f"/transactions/{row.pk}", {"paymentStatus": "lost"}).status_code == 422


def test_only_pending_transactions_can_be_deleted(world: World, client: Client) -> None:
    pending, paid = charge(world), charge(world, payment_status="paid")
    api = world.api(client, "landlord")
    assert world.api(client, "tenant").delete(f"/transactions/{pending.pk}").status_code == 403
    assert world.api(client, "other_manager").delete(f"/transactions/{pending.pk}").status_code == 404
    refused = api.delete(f"/transactions/{paid.pk}")
    assert refused.status_code == 409
    assert refused.json()["error"]["message"] == ONLY_PENDING_DELETABLE.format(status="paid")
    assert api.delete(f"/transactions/{pending.pk}").status_code == 204
    assert not Transaction.objects.filter(pk=pending.pk).exists() and Transaction.objects.filter(pk=paid.pk).exists()
    assert api.get(f"/transactions/{pending.pk}").status_code == 404


def test_transaction_filters_each_narrow_the_list(world: World, client: Client) -> None:
    second_lease = Lease.objects.create(
        unit=world.unit,
        start_date=datetime.date(2027, 1, 1),
        end_date=datetime.date(2027, 12, 31),
        monthly_rent=Decimal("1.00"),
        security_deposit=Decimal("0.00"),
    )
    rows = {
        "a": charge(world, due_date=datetime.date(2026, 1, 1), payment_status="paid"),
        "b": charge(world, due_date=datetime.date(2026, 2, 1), transaction_type="fee"),
        "c": Transaction.objects.create(
            lease=second_lease,
            property=world.prop,
            transaction_type="rent",
            amount=Decimal("10.00"),
            due_date=datetime.date(2026, 3, 1),
        ),
        "d": charge(world, due_date=None, transaction_type="deposit", payment_status="late"),
    }
    charge(world, other=True)
    api = world.api(client, "admin")
    names = {str(row.pk): name for name, row in rows.items()}

    def found(**params: Any) -> set[str]:
        response = api.get("/transactions", **params, limit=100)
        assert response.status_code == 200, response.content
        return {names.get(item["id"], "stranger") for item in response.json()["items"]}

    first_lease = Lease.objects.get(unit=world.unit, lease_status="active")
    assert found(propertyId=world.prop.pk) == {"a", "b", "c", "d"}
    assert found(leaseId=first_lease.pk) == {"a", "b", "d"}
    assert found(leaseId=second_lease.pk) == {"c"}
    assert found(propertyId=world.prop.pk, status="paid") == {"a"}
    assert found(propertyId=world.prop.pk, status="late") == {"d"}
    assert found(propertyId=world.prop.pk, type="fee") == {"b"}
    assert found(propertyId=world.prop.pk, dueFrom="2026-02-01") == {"b", "c"}
    assert found(propertyId=world.prop.pk, dueTo="2026-02-01") == {"a", "b"}
    assert found(propertyId=world.prop.pk, dueFrom="2026-01-15", dueTo="2026-02-15") == {"b"}
    assert api.get("/transactions", type="gift").status_code == 422
    assert api.get("/transactions", dueFrom="yesterday").status_code == 422

    ordered = [names[item["id"]] for item in api.get("/transactions", propertyId=world.prop.pk).json()["items"]]
    assert ordered == ["c", "b", "a", "d"]  # latest due first, no due date last


def test_transaction_pages(world: World, client: Client) -> None:
    for day in range(1, 8):
        charge(world, due_date=datetime.date(2026, 5, day))
    api = world.api(client, "tenant")
    seen: list[str] = []
    offset: int | None = 0
    while offset is not None:
        page = api.get("/transactions", limit=3, offset=offset).json()
        assert page["count"] == 7 and len(page["items"]) <= 3
        seen += [item["id"] for item in page["items"]]
        offset = page["nextOffset"]
    assert len(seen) == len(set(seen)) == 7


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("paymentDate", "2026-02-03T10:00:00"),  # naive: which zone?
        ("paymentDate", "0001-01-01T00:30:00+01:00"),  # before year 1 in UTC
        ("paymentDate", "9999-12-31T23:30:00-01:00"),  # after year 9999 in UTC
        ("description", "null\x00byte"),
        ("referenceNumber", "r" * 101),
    ],
)
def test_inputs_the_database_cannot_store_answer_422_not_500(
    world: World, client: Client, field: str, value: str
) -> None:
    body = {"propertyId": str(world.prop.pk), "transactionType": "fee", "amount": "1.00", field: value}
    response = world.api(client, "manager").post("/transactions", body)
    assert response.status_code == 422, response.content
    assert response.json()["error"]["fields"][0]["field"] == f"body.payload.{field}"
    assert not Transaction.objects.filter(transaction_type="fee").exists()
