"""Tenant records over HTTP: who sees them, creating one on a lease, and delete kept for history."""

from typing import Any

import pytest
from django.test import Client

from apps.leasing.models import Lease, LeaseTenant, Tenant
from apps.leasing.services import NOT_A_TENANT_USER, TENANT_HAS_HISTORY, TENANT_ON_ACTIVE_LEASE
from tests.apps.api_world import World
from tests.factories import make_lease, make_unit, make_user

pytestmark = pytest.mark.django_db


def tenant_body(user_id: Any, **overrides: Any) -> dict[str, Any]:
    body = {"userId": str(user_id), "dateOfBirth": "1991-02-03", "ssnLastFour": "9876"}
    body.update(overrides)
    return body


@pytest.mark.parametrize(
    ("who", "expected"),
    [
        ("tenant", {"tenant"}),
        ("other_tenant", {"other_tenant"}),
        ("landlord", {"tenant"}),
        ("manager", {"tenant"}),
        ("other_manager", {"other_tenant"}),
        ("other_landlord", {"other_tenant"}),
        ("admin", {"tenant", "other_tenant"}),
    ],
)
def test_tenant_list_shows_each_caller_only_their_tenants(
    world: World, client: Client, who: str, expected: set[str]
) -> None:
    records = {name: str(world.tenant_record(getattr(world, name)).pk) for name in ("tenant", "other_tenant")}
    seen = {item["id"] for item in world.api(client, who).get("/tenants", limit=100).json()["items"]}
    assert {records[name] for name in expected} <= seen
    assert not seen & ({records["tenant"], records["other_tenant"]} - {records[name] for name in expected})


@pytest.mark.parametrize(
    ("who", "status"),
    [
        ("tenant", 200),
        ("landlord", 200),
        ("manager", 200),
        ("admin", 200),
        ("other_manager", 404),
        ("other_landlord", 404),
        ("other_tenant", 404),
    ],
)
def test_tenant_get_permission_matrix(world: World, client: Client, who: str, status: int) -> None:
    record = world.tenant_record(world.tenant)
    response = world.api(client, who).get(f"/tenants/{record.pk}")
    assert response.status_code == status, response.content
    if status == 200:
        body = response.json()
        assert body["userId"] == str(world.tenant.pk) and body["dateOfBirth"] == "1990-05-17"
        assert body["ssnLastFour"] == "1234" and body["backgroundCheckStatus"] == "not_submitted"


@pytest.mark.parametrize(
    ("who", "status"),
    [
        ("tenant", 403),
        ("other_tenant", 403),
        ("landlord", 200),
        ("manager", 200),
        ("admin", 200),
        ("other_manager", 404),
        ("other_landlord", 404),
    ],
)
def test_tenant_patch_permission_matrix(world: World, client: Client, who: str, status: int) -> None:
    record = world.tenant_record(world.tenant)
    response = world.api(client, who).patch(
        f"/tenants/{record.pk}", {"income": "52000.50", "creditCheckStatus": "approved"}
    )
    assert response.status_code == status, response.content
    if status == 200:
        assert response.json()["income"] == "52000.50" and response.json()["creditCheckStatus"] == "approved"


@pytest.mark.parametrize(
    "body",
    [
        {"ssnLastFour": "12a4"},
        {"ssnLastFour": "12345"},
        {"dateOfBirth": None},
        {"income": "-1"},
        {"creditCheckStatus": "maybe"},
        {"emergencyContactPhone": "1" * 21},
    ],
)
def test_tenant_patch_validation(world: World, client: Client, body: dict[str, Any]) -> None:
    record = world.tenant_record(world.tenant)
    response = world.api(client, "manager").patch(f"/tenants/{record.pk}", body)
    assert response.status_code == 422, response.content
    assert response.json()["error"]["fields"][0]["field"] == f"body.payload.{next(iter(body))}"


def test_staff_post_tenants_invites_and_the_record_appears_when_the_user_accepts(world: World, client: Client) -> None:
    # Behaviour change (issue 10): landlords and managers no longer attach directly; 202 + invitation.
    lease = Lease.objects.get(unit=world.unit)
    newcomer = make_user()
    api = world.api(client, "manager")
    response = api.post("/tenants", tenant_body(newcomer.pk, leaseId=str(lease.pk), income="40000.00"))
    assert response.status_code == 202, response.content
    invitation = response.json()
    assert invitation["status"] == "pending" and invitation["invitedUserId"] == str(newcomer.pk)
    assert not Tenant.objects.filter(user=newcomer).exists()
    accepted = world.api_for(client, newcomer).post(f"/invitations/{invitation['id']}/accept")
    assert accepted.status_code == 200, accepted.content
    created = Tenant.objects.get(user=newcomer)
    assert api.get(f"/tenants/{created.pk}").json()["income"] == "40000.00"
    link = LeaseTenant.objects.get(lease=lease, tenant=created)
    assert link.is_primary is False  # the lease already had its primary tenant
    assert world.api(client, "other_manager").get(f"/tenants/{created.pk}").status_code == 404


def test_first_tenant_on_a_lease_becomes_primary_and_is_primary_moves_the_primary(world: World, client: Client) -> None:
    lease = make_lease(unit=make_unit(property=world.prop), tenants=(), status="draft")
    api = world.api(client, "admin")
    first = api.post("/tenants", tenant_body(make_user().pk, leaseId=str(lease.pk))).json()
    second = api.post("/tenants", tenant_body(make_user().pk, leaseId=str(lease.pk), isPrimary=True)).json()
    primaries = list(LeaseTenant.objects.filter(lease=lease, is_primary=True).values_list("tenant_id", flat=True))
    assert [str(pk) for pk in primaries] == [second["id"]]
    assert LeaseTenant.objects.filter(lease=lease, tenant_id=first["id"], is_primary=False).exists()


def test_tenant_create_rules(world: World, client: Client) -> None:
    lease = Lease.objects.get(unit=world.unit)
    newcomer = make_user()
    manager = world.api(client, "manager")
    missing_lease = manager.post("/tenants", tenant_body(newcomer.pk))
    assert missing_lease.status_code == 422
    assert missing_lease.json()["error"]["fields"][0]["field"] == "body.payload.leaseId"
    not_tenant = manager.post("/tenants", tenant_body(world.landlord.pk, leaseId=str(lease.pk)))
    assert not_tenant.status_code == 422
    assert not_tenant.json()["error"]["fields"] == [{"field": "body.payload.userId", "reason": NOT_A_TENANT_USER}]
    unknown_user = manager.post("/tenants", tenant_body("00000000-0000-0000-0000-000000000001", leaseId=str(lease.pk)))
    assert unknown_user.status_code == 422
    other_lease = Lease.objects.get(unit=world.other_unit)
    assert manager.post("/tenants", tenant_body(newcomer.pk, leaseId=str(other_lease.pk))).status_code == 404
    assert (
        world.api(client, "tenant").post("/tenants", tenant_body(newcomer.pk, leaseId=str(lease.pk))).status_code == 403
    )
    assert world.api(client, "admin").post("/tenants", tenant_body(newcomer.pk)).status_code == 201
    assert not Tenant.objects.filter(user=world.landlord).exists()


def test_delete_refuses_tenants_on_active_or_past_leases_and_removes_unplaced_ones(
    world: World, client: Client
) -> None:
    api = world.api(client, "landlord")
    record = world.tenant_record(world.tenant)
    on_active = api.delete(f"/tenants/{record.pk}")
    assert on_active.status_code == 409 and on_active.json()["error"]["message"] == TENANT_ON_ACTIVE_LEASE

    Lease.objects.filter(unit=world.unit).update(lease_status="terminated")
    history = api.delete(f"/tenants/{record.pk}")
    assert history.status_code == 409 and history.json()["error"]["message"] == TENANT_HAS_HISTORY
    assert Tenant.objects.filter(pk=record.pk).exists()

    draft = make_lease(unit=make_unit(property=world.prop), tenants=(), status="draft")
    created = world.api(client, "admin").post("/tenants", tenant_body(make_user().pk, leaseId=str(draft.pk))).json()
    assert world.api(client, "tenant").delete(f"/tenants/{created['id']}").status_code == 403
    assert world.api(client, "other_manager").delete(f"/tenants/{created['id']}").status_code == 404
    assert api.delete(f"/tenants/{created['id']}").status_code == 204
    assert not Tenant.objects.filter(pk=created["id"]).exists()
    assert Lease.objects.filter(pk=draft.pk).exists()


def test_tenant_list_filter_by_user_and_pages(world: World, client: Client) -> None:
    lease = Lease.objects.get(unit=world.unit)
    api = world.api(client, "manager")
    for _ in range(3):
        body = tenant_body(make_user().pk, leaseId=str(lease.pk))
        assert world.api(client, "admin").post("/tenants", body).status_code == 201
    page = api.get("/tenants", limit=3).json()
    assert page["count"] == 4 and len(page["items"]) == 3 and page["nextOffset"] == 3
    rest = api.get("/tenants", limit=3, offset=3).json()
    assert len(rest["items"]) == 1 and rest["nextOffset"] is None
    assert {item["id"] for item in page["items"] + rest["items"]} == {
        str(pk) for pk in LeaseTenant.objects.filter(lease=lease).values_list("tenant_id", flat=True)
    }
    only = api.get("/tenants", userId=str(world.tenant.pk)).json()["items"]
    assert [item["userId"] for item in only] == [str(world.tenant.pk)]
