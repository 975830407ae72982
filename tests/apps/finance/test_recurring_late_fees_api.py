"""Recurring transactions (deactivate, never delete) and late fees (waive once, with a reason) over HTTP."""

import datetime
from decimal import Decimal
from typing import Any

import pytest
from django.test import Client

from apps.finance.models import LateFee, RecurringTransaction, Transaction
from apps.finance.services import ALREADY_WAIVED, END_BEFORE_START
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


def lease_of(world: World, other: bool = False) -> Lease:
    return Lease.objects.get(unit=world.other_unit if other else world.unit, lease_status="active")


def schedule(world: World, *, other: bool = False, **fields: Any) -> RecurringTransaction:
    fields.setdefault("transaction_type", "rent")
    fields.setdefault("amount", Decimal("1450.00"))
    fields.setdefault("day_of_month", 1)
    fields.setdefault("start_date", datetime.date(2026, 1, 1))
    return RecurringTransaction.objects.create(lease=lease_of(world, other), **fields)


def fee(world: World, *, other: bool = False, **fields: Any) -> LateFee:
    row = Transaction.objects.create(
        lease=lease_of(world, other),
        property=world.other_prop if other else world.prop,
        transaction_type="rent",
        amount=Decimal("1450.00"),
        payment_status="late",
    )
    fields.setdefault("amount", Decimal("50.00"))
    fields.setdefault("days_late", 6)
    return LateFee.objects.create(transaction=row, **fields)


# Recurring transactions


def recurring_body(lease: Lease, **overrides: Any) -> dict[str, Any]:
    body = {
        "leaseId": str(lease.pk),
        "transactionType": "rent",
        "amount": "1450.00",
        "dayOfMonth": 1,
        "startDate": "2026-01-01",
        "endDate": "2026-12-31",
    }
    body.update(overrides)
    return body


@pytest.mark.parametrize(("who", "status"), READERS)
def test_recurring_get_permission_matrix(world: World, client: Client, who: str, status: int) -> None:
    row = schedule(world)
    response = world.api(client, who).get(f"/recurring-transactions/{row.pk}")
    assert response.status_code == status, response.content
    if status == 200:
        assert response.json()["amount"] == "1450.00" and response.json()["frequency"] == "monthly"


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
def test_recurring_create_permission_matrix(world: World, client: Client, who: str, status: int) -> None:
    response = world.api(client, who).post("/recurring-transactions", recurring_body(lease_of(world)))
    assert response.status_code == status, response.content
    if status == 201:
        body = response.json()
        assert body["isActive"] is True and body["dayOfMonth"] == 1 and body["endDate"] == "2026-12-31"


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"dayOfMonth": 0}, "dayOfMonth"),
        ({"dayOfMonth": 32}, "dayOfMonth"),
        ({"amount": "0"}, "amount"),
        ({"amount": "1.001"}, "amount"),
        ({"transactionType": "deposit"}, "transactionType"),
        ({"frequency": "weekly"}, "frequency"),
        ({"endDate": "2025-12-31"}, "endDate"),
    ],
)
def test_recurring_validation(world: World, client: Client, overrides: dict[str, Any], field: str) -> None:
    response = world.api(client, "manager").post(
        "/recurring-transactions", recurring_body(lease_of(world), **overrides)
    )
    assert response.status_code == 422, response.content
    fields = response.json()["error"]["fields"]
    assert fields[0]["field"] == f"body.payload.{field}"
    if field == "endDate":
        assert fields[0]["reason"] == END_BEFORE_START


@pytest.mark.parametrize(("who", "status"), WRITERS)
def test_recurring_patch_permission_matrix(world: World, client: Client, who: str, status: int) -> None:
    row = schedule(world)
    response = world.api(client, who).patch(f"/recurring-transactions/{row.pk}", {"amount": "1500.00", "dayOfMonth": 5})
    assert response.status_code == status, response.content
    row.refresh_from_db()
    assert (row.amount, row.day_of_month) == ((Decimal("1500.00"), 5) if status == 200 else (Decimal("1450.00"), 1))


def test_recurring_delete_deactivates_and_keeps_the_row(world: World, client: Client) -> None:
    row = schedule(world)
    assert world.api(client, "tenant").delete(f"/recurring-transactions/{row.pk}").status_code == 403
    assert world.api(client, "other_manager").delete(f"/recurring-transactions/{row.pk}").status_code == 404
    response = world.api(client, "landlord").delete(f"/recurring-transactions/{row.pk}")
    assert response.status_code == 200 and response.json()["isActive"] is False
    row.refresh_from_db()
    assert row.is_active is False
    again = world.api(client, "landlord").patch(f"/recurring-transactions/{row.pk}", {"isActive": True})
    assert again.json()["isActive"] is True
    assert (
        world.api(client, "landlord")
        .patch(f"/recurring-transactions/{row.pk}", {"startDate": "2027-01-01", "endDate": "2026-06-30"})
        .status_code
        == 422
    )


def test_recurring_list_filters_and_visibility(world: World, client: Client) -> None:
    second_lease = Lease.objects.create(
        unit=world.unit,
        start_date=datetime.date(2027, 1, 1),
        end_date=datetime.date(2027, 12, 31),
        monthly_rent=Decimal("1.00"),
        security_deposit=Decimal("0.00"),
    )
    rows = {
        "a": schedule(world),
        "b": schedule(world, is_active=False),
        "c": RecurringTransaction.objects.create(
            lease=second_lease,
            transaction_type="fee",
            amount=Decimal("5.00"),
            day_of_month=3,
            start_date=datetime.date(2027, 1, 1),
        ),
        "z": schedule(world, other=True),
    }
    names = {str(row.pk): name for name, row in rows.items()}

    def found(who: str = "manager", **params: Any) -> set[str]:
        response = world.api(client, who).get("/recurring-transactions", **params, limit=100)
        assert response.status_code == 200, response.content
        return {names[item["id"]] for item in response.json()["items"]}

    assert found() == {"a", "b", "c"}
    assert found("other_manager") == {"z"}
    assert found("tenant") == {"a", "b"}  # the tenant is on the first lease only
    assert found("admin") == {"a", "b", "c", "z"}
    assert found(leaseId=lease_of(world).pk) == {"a", "b"}
    assert found(isActive="true") == {"a", "c"}
    assert found(isActive="false") == {"b"}
    page = world.api(client, "manager").get("/recurring-transactions", limit=2).json()
    assert page["count"] == 3 and page["nextOffset"] == 2


# Late fees


@pytest.mark.parametrize(("who", "status"), READERS)
def test_late_fee_get_permission_matrix(world: World, client: Client, who: str, status: int) -> None:
    row = fee(world)
    response = world.api(client, who).get(f"/late-fees/{row.pk}")
    assert response.status_code == status, response.content
    if status == 200:
        body = response.json()
        assert body["amount"] == "50.00" and body["daysLate"] == 6 and body["isWaived"] is False


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
def test_late_fee_create_permission_matrix(world: World, client: Client, who: str, status: int) -> None:
    row = Transaction.objects.create(
        lease=lease_of(world), property=world.prop, transaction_type="rent", amount=Decimal("1450.00")
    )
    response = world.api(client, who).post(
        "/late-fees", {"transactionId": str(row.pk), "amount": "25.00", "daysLate": 3}
    )
    assert response.status_code == status, response.content
    if status == 201:
        assert response.json()["transactionId"] == str(row.pk) and response.json()["appliedAt"]


@pytest.mark.parametrize(
    "body",
    [
        {"amount": "0", "daysLate": 1},
        {"amount": "1.234", "daysLate": 1},
        {"amount": "5.00", "daysLate": -1},
        {"amount": "5.00"},
    ],
)
def test_late_fee_validation(world: World, client: Client, body: dict[str, Any]) -> None:
    row = Transaction.objects.create(property=world.prop, transaction_type="rent", amount=Decimal("1.00"))
    response = world.api(client, "manager").post("/late-fees", {"transactionId": str(row.pk), **body})
    assert response.status_code == 422


@pytest.mark.parametrize(("who", "status"), WRITERS)
def test_waive_permission_matrix(world: World, client: Client, who: str, status: int) -> None:
    row = fee(world)
    response = world.api(client, who).post(f"/late-fees/{row.pk}/waive", {"reason": "First time late."})
    assert response.status_code == status, response.content
    row.refresh_from_db()
    assert row.is_waived is (status == 200)


def test_waive_records_who_when_why_and_twice_is_a_conflict(world: World, client: Client) -> None:
    row = fee(world)
    api = world.api(client, "manager")
    response = api.post(f"/late-fees/{row.pk}/waive", {"reason": "  Bank delay, proof given.  "})
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["isWaived"] is True and body["waivedBy"] == str(world.manager.pk)
    assert body["waiveReason"] == "Bank delay, proof given." and body["waivedAt"]
    second = world.api(client, "landlord").post(f"/late-fees/{row.pk}/waive", {"reason": "again"})
    assert second.status_code == 409
    assert second.json()["error"] == {"code": "conflict", "message": ALREADY_WAIVED}
    row.refresh_from_db()
    assert row.waived_by_id == world.manager.pk and row.waive_reason == "Bank delay, proof given."


@pytest.mark.parametrize("body", [{}, {"reason": ""}, {"reason": "   "}, {"reason": "x" * 1001}, {"reason": None}])
def test_waive_needs_a_reason_of_at_most_1000_characters(world: World, client: Client, body: dict[str, Any]) -> None:
    row = fee(world)
    response = world.api(client, "manager").post(f"/late-fees/{row.pk}/waive", body)
    assert response.status_code == 422
    assert response.json()["error"]["fields"][0]["field"].startswith("body.payload")
    assert world.api(client, "manager").post(f"/late-fees/{row.pk}/waive", {"reason": "y" * 1000}).status_code == 200


def test_late_fee_list_filters_and_visibility(world: World, client: Client) -> None:
    rows = {"a": fee(world), "b": fee(world, is_waived=True), "z": fee(world, other=True)}
    names = {str(row.pk): name for name, row in rows.items()}

    def found(who: str = "landlord", **params: Any) -> set[str]:
        response = world.api(client, who).get("/late-fees", **params, limit=100)
        assert response.status_code == 200, response.content
        return {names[item["id"]] for item in response.json()["items"]}

    assert found() == {"a", "b"}
    assert found("tenant") == {"a", "b"}
    assert found("other_tenant") == {"z"}
    assert found("admin") == {"a", "b", "z"}
    assert found(transactionId=rows["a"].transaction_id) == {"a"}
    assert found(isWaived="true") == {"b"}
    assert found(isWaived="false") == {"a"}
    page = world.api(client, "landlord").get("/late-fees", limit=1).json()
    assert page["count"] == 2 and page["nextOffset"] == 1
