"""Leases over HTTP: who sees and changes what, one active lease per unit, status moves, filters and pages."""

import datetime
from decimal import Decimal
from typing import Any

import pytest
from django.test import Client

from apps.leasing.models import Lease, LeaseStatus
from apps.leasing.selectors import READ_ONLY
from apps.leasing.services import BAD_TRANSITION, END_BEFORE_START, SECOND_ACTIVE_LEASE
from tests.apps.api_world import World
from tests.factories import make_lease, make_unit

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


def lease_of(world: World) -> Lease:
    return Lease.objects.get(unit=world.unit)


def lease_body(unit_id: Any, **overrides: Any) -> dict[str, Any]:
    body = {
        "unitId": str(unit_id),
        "startDate": "2027-01-01",
        "endDate": "2027-12-31",
        "monthlyRent": "1500.00",
        "securityDeposit": "1500.00",
    }
    body.update(overrides)
    return body


@pytest.mark.parametrize(("who", "status"), READERS)
@pytest.mark.parametrize("suffix", ["", "/tenants", "/documents"])
def test_lease_and_its_nested_lists_are_readable_only_by_those_who_may_see_it(
    world: World, client: Client, who: str, status: int, suffix: str
) -> None:
    response = world.api(client, who).get(f"/leases/{lease_of(world).pk}{suffix}")
    assert response.status_code == status, response.content
    if status == 404:
        assert response.json() == {"error": {"code": "not_found", "message": "Not found."}}


def test_lease_body_has_camel_case_fields_money_as_strings_and_iso_dates(world: World, client: Client) -> None:
    lease = lease_of(world)
    body = world.api(client, "tenant").get(f"/leases/{lease.pk}").json()
    assert body["id"] == str(lease.pk)
    assert body["unitId"] == str(world.unit.pk) and body["propertyId"] == str(world.prop.pk)
    assert body["monthlyRent"] == "1450.00" and body["securityDeposit"] == "1450.00"
    assert body["startDate"] == "2026-01-01" and body["endDate"] == "2026-12-31"
    assert body["leaseStatus"] == "active" and body["isSigned"] is False
    datetime.datetime.fromisoformat(body["createdAt"])


@pytest.mark.parametrize(
    ("who", "expected"),
    [
        ("tenant", {"mine"}),
        ("landlord", {"mine"}),
        ("manager", {"mine"}),
        ("other_manager", {"other"}),
        ("other_tenant", {"other"}),
        ("admin", {"mine", "other"}),
    ],
)
def test_lease_list_shows_each_caller_only_their_leases(
    world: World, client: Client, who: str, expected: set[str]
) -> None:
    ids = {"mine": str(lease_of(world).pk), "other": str(Lease.objects.get(unit=world.other_unit).pk)}
    items = world.api(client, who).get("/leases", limit=100).json()["items"]
    assert {item["id"] for item in items} >= {ids[name] for name in expected}
    assert not {item["id"] for item in items} & ({ids["mine"], ids["other"]} - {ids[name] for name in expected})


@pytest.mark.parametrize(("who", "status"), WRITERS)
def test_lease_patch_permission_matrix(world: World, client: Client, who: str, status: int) -> None:
    response = world.api(client, who).patch(f"/leases/{lease_of(world).pk}", {"specialTerms": "No pets."})
    assert response.status_code == status, response.content
    if status == 403:
        assert response.json()["error"] == {"code": "forbidden", "message": READ_ONLY}
    if status == 200:
        assert response.json()["specialTerms"] == "No pets."


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
def test_lease_create_permission_matrix(world: World, client: Client, who: str, status: int) -> None:
    response = world.api(client, who).post("/leases", lease_body(world.unit.pk))
    assert response.status_code == status, response.content
    if status == 201:
        body = response.json()
        assert body["leaseStatus"] == "draft" and body["propertyId"] == str(world.prop.pk)
        assert Lease.objects.filter(pk=body["id"], monthly_rent=Decimal("1500.00")).exists()


@pytest.mark.parametrize(
    ("overrides", "field", "reason"),
    [
        ({"endDate": "2027-01-01"}, "body.payload.endDate", END_BEFORE_START),
        ({"endDate": "2026-06-01"}, "body.payload.endDate", END_BEFORE_START),
        ({"monthlyRent": "12.345"}, "body.payload.monthlyRent", None),
        ({"monthlyRent": "0"}, "body.payload.monthlyRent", None),
        ({"monthlyRent": "-5.00"}, "body.payload.monthlyRent", None),
        ({"monthlyRent": "123456789.00"}, "body.payload.monthlyRent", None),
        ({"monthlyRent": "NaN"}, "body.payload.monthlyRent", None),
        ({"startDate": "not a date"}, "body.payload.startDate", None),
        ({"leaseStatus": "expired"}, "body.payload.leaseStatus", None),
    ],
)
def test_lease_create_validation_answers_422_with_field_and_reason(
    world: World, client: Client, overrides: dict[str, Any], field: str, reason: str | None
) -> None:
    response = world.api(client, "manager").post("/leases", lease_body(world.unit.pk, **overrides))
    assert response.status_code == 422, response.content
    fields = response.json()["error"]["fields"]
    assert [entry["field"] for entry in fields] == [field]
    assert fields[0]["reason"] == reason if reason else fields[0]["reason"]


def test_second_active_lease_on_a_unit_is_a_conflict_on_create_and_on_activation(world: World, client: Client) -> None:
    api = world.api(client, "manager")
    refused = api.post("/leases", lease_body(world.unit.pk, leaseStatus="active"))
    assert refused.status_code == 409
    assert refused.json()["error"] == {"code": "conflict", "message": SECOND_ACTIVE_LEASE}

    draft = api.post("/leases", lease_body(world.unit.pk)).json()
    assert api.patch(f"/leases/{draft['id']}", {"leaseStatus": "active"}).status_code == 409
    assert Lease.objects.get(pk=draft["id"]).lease_status == LeaseStatus.DRAFT

    assert api.delete(f"/leases/{lease_of_active(world)}").status_code == 204
    activated = api.patch(f"/leases/{draft['id']}", {"leaseStatus": "active"})
    assert activated.status_code == 200 and activated.json()["leaseStatus"] == "active"
    assert Lease.objects.filter(unit=world.unit, lease_status="active").count() == 1


def lease_of_active(world: World) -> str:
    return str(Lease.objects.get(unit=world.unit, lease_status="active").pk)


def test_an_active_lease_on_another_unit_does_not_conflict(world: World, client: Client) -> None:
    unit = make_unit(property=world.prop)
    response = world.api(client, "landlord").post("/leases", lease_body(unit.pk, leaseStatus="active"))
    assert response.status_code == 201, response.content


@pytest.mark.parametrize(
    ("start", "target", "allowed"),
    [
        ("draft", "active", True),
        ("draft", "expired", False),
        ("active", "renewed", True),
        ("active", "draft", False),
        ("expired", "renewed", True),
        ("expired", "active", False),
        ("terminated", "active", False),
        ("renewed", "draft", False),
    ],
)
def test_lease_status_moves_only_along_the_allowed_transitions(
    world: World, client: Client, start: str, target: str, allowed: bool
) -> None:
    lease = make_lease(unit=make_unit(property=world.prop), tenants=(), status=start)
    response = world.api(client, "manager").patch(f"/leases/{lease.pk}", {"leaseStatus": target})
    if allowed:
        assert response.status_code == 200 and response.json()["leaseStatus"] == target
    else:
        assert response.status_code == 409
        assert response.json()["error"]["message"] == BAD_TRANSITION.format(current=start, target=target)
        lease.refresh_from_db()
        assert lease.lease_status == start


def test_patch_refuses_null_for_required_fields_and_end_before_start(world: World, client: Client) -> None:
    api = world.api(client, "manager")
    lease = lease_of(world)
    response = api.patch(f"/leases/{lease.pk}", {"startDate": None})
    assert response.status_code == 422
    assert response.json()["error"]["fields"][0]["field"] == "body.payload.startDate"
    response = api.patch(f"/leases/{lease.pk}", {"endDate": "2025-12-31"})
    assert response.status_code == 422
    assert response.json()["error"]["fields"] == [{"field": "body.payload.endDate", "reason": END_BEFORE_START}]
    assert (
        api.patch(f"/leases/{lease.pk}", {"specialTerms": None, "monthlyRent": "1600.10"}).json()["monthlyRent"]
        == "1600.10"
    )


def test_delete_terminates_and_keeps_the_lease_with_its_tenants(world: World, client: Client) -> None:
    lease = lease_of(world)
    api = world.api(client, "landlord")
    assert api.delete(f"/leases/{lease.pk}").status_code == 204
    assert api.delete(f"/leases/{lease.pk}").status_code == 204
    body = world.api(client, "tenant").get(f"/leases/{lease.pk}").json()
    assert body["leaseStatus"] == "terminated"
    assert len(world.api(client, "tenant").get(f"/leases/{lease.pk}/tenants").json()["items"]) == 1
    expired = make_lease(unit=world.unit, tenants=(), status="expired")
    assert api.delete(f"/leases/{expired.pk}").status_code == 409


def test_tenant_cannot_terminate_and_stranger_gets_404(world: World, client: Client) -> None:
    lease = lease_of(world)
    assert world.api(client, "tenant").delete(f"/leases/{lease.pk}").status_code == 403
    assert world.api(client, "other_manager").delete(f"/leases/{lease.pk}").status_code == 404
    assert lease_of(world).lease_status == "active"


def test_unknown_and_malformed_lease_ids(world: World, client: Client) -> None:
    api = world.api(client, "admin")
    assert api.get("/leases/00000000-0000-0000-0000-000000000000").status_code == 404
    assert api.get("/leases/not-a-uuid").status_code == 422


def test_lease_filters_each_narrow_the_list(world: World, client: Client) -> None:
    second_unit = make_unit(property=world.prop)
    leases = {
        "a": make_lease(
            unit=second_unit,
            tenants=(),
            status="expired",
            start_date=datetime.date(2024, 1, 1),
            end_date=datetime.date(2024, 12, 31),
        ),
        "b": make_lease(
            unit=second_unit,
            tenants=(),
            status="draft",
            start_date=datetime.date(2025, 3, 1),
            end_date=datetime.date(2026, 2, 28),
        ),
        "c": lease_of(world),  # active, 2026-01-01 .. 2026-12-31 on world.unit
    }
    api = world.api(client, "manager")

    def ids(**params: Any) -> set[str]:
        response = api.get("/leases", **params, limit=100)
        assert response.status_code == 200, response.content
        names = {str(lease.pk): name for name, lease in leases.items()}
        return {names[item["id"]] for item in response.json()["items"]}

    assert ids() == {"a", "b", "c"}
    assert ids(unitId=second_unit.pk) == {"a", "b"}
    assert ids(unitId=world.other_unit.pk) == set()
    assert ids(propertyId=world.prop.pk) == {"a", "b", "c"}
    assert ids(propertyId=world.other_prop.pk) == set()
    assert ids(status="draft") == {"b"}
    assert ids(startFrom="2025-03-01") == {"b", "c"}
    assert ids(startTo="2025-03-01") == {"a", "b"}
    assert ids(endFrom="2026-02-28", endTo="2026-02-28") == {"b"}
    assert ids(endTo="2025-01-01") == {"a"}
    assert ids(startFrom="2025-01-01", status="active") == {"c"}
    assert api.get("/leases", status="bogus").status_code == 422


def test_lease_pages_cover_the_list_once_in_order(world: World, client: Client) -> None:
    unit = make_unit(property=world.prop)
    for year in range(2010, 2015):
        make_lease(
            unit=unit,
            tenants=(),
            status="expired",
            start_date=datetime.date(year, 1, 1),
            end_date=datetime.date(year, 12, 31),
        )
    api = world.api(client, "landlord")
    first = api.get("/leases", limit=2).json()
    assert first["count"] == 6 and first["limit"] == 2 and first["offset"] == 0 and first["nextOffset"] == 2
    seen = [item["id"] for item in first["items"]]
    offset = first["nextOffset"]
    while offset is not None:
        page = api.get("/leases", limit=2, offset=offset).json()
        seen += [item["id"] for item in page["items"]]
        offset = page["nextOffset"]
    assert len(seen) == len(set(seen)) == 6
    starts = [Lease.objects.get(pk=pk).start_date for pk in seen]
    assert starts == sorted(starts, reverse=True)
    assert api.get("/leases", limit=101).status_code == 422
    assert api.get("/leases", limit=0).status_code == 422
    assert api.get("/leases", offset=-1).status_code == 422


def test_endpoints_need_a_token(client: Client, world: World) -> None:
    for path in ("/api/v1/leases", f"/api/v1/leases/{lease_of(world).pk}", "/api/v1/tenants"):
        assert client.get(path).status_code == 401
