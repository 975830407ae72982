"""A lease's tenants (set with exactly one primary) and documents, over HTTP."""

from typing import Any

import pytest
from django.test import Client

from apps.leasing.models import Lease, LeaseDocument, LeaseTenant
from tests.apps.api_world import World
from tests.factories import make_user

pytestmark = pytest.mark.django_db


def lease_of(world: World) -> Lease:
    return Lease.objects.get(unit=world.unit)


def add_tenant(world: World, client: Client, lease: Lease) -> str:
    # An admin attaches directly (landlords and managers invite: test_invitations_api.py).
    body = {"userId": str(make_user().pk), "leaseId": str(lease.pk), "dateOfBirth": "1985-01-01", "ssnLastFour": "1111"}
    response = world.api(client, "admin").post("/tenants", body)
    assert response.status_code == 201, response.content
    return str(response.json()["id"])


def test_lease_tenants_list_primary_first_with_records(world: World, client: Client) -> None:
    lease = lease_of(world)
    second = add_tenant(world, client, lease)
    items = world.api(client, "tenant").get(f"/leases/{lease.pk}/tenants").json()["items"]
    assert [item["isPrimary"] for item in items] == [True, False]
    assert items[0]["tenant"]["userId"] == str(world.tenant.pk) and items[1]["tenantId"] == second


def test_put_replaces_the_tenants_and_moves_the_primary(world: World, client: Client) -> None:
    lease = lease_of(world)
    original = str(world.tenant_record(world.tenant).pk)
    second = add_tenant(world, client, lease)
    third = add_tenant(world, client, lease)
    body = {"tenants": [{"tenantId": second, "isPrimary": True}, {"tenantId": original}]}
    response = world.api(client, "landlord").put(f"/leases/{lease.pk}/tenants", body)
    assert response.status_code == 200, response.content
    assert [(item["tenantId"], item["isPrimary"]) for item in response.json()["items"]] == [
        (second, True),
        (original, False),
    ]
    links = {str(link.tenant_id): link.is_primary for link in LeaseTenant.objects.filter(lease=lease)}
    assert links == {second: True, original: False}
    assert third not in links


@pytest.mark.parametrize(
    "entries",
    [
        [],
        [{"primary": False}],
        [{"primary": True}, {"primary": True}],
        "duplicate",
    ],
)
def test_put_needs_exactly_one_primary_and_no_duplicates(world: World, client: Client, entries: Any) -> None:
    lease = lease_of(world)
    original = str(world.tenant_record(world.tenant).pk)
    second = add_tenant(world, client, lease)
    if entries == "duplicate":
        tenants = [{"tenantId": original, "isPrimary": True}, {"tenantId": original, "isPrimary": False}]
    else:
        tenants = [
            {"tenantId": tid, "isPrimary": entry["primary"]}
            for tid, entry in zip([original, second], entries, strict=False)
        ]
    response = world.api(client, "manager").put(f"/leases/{lease.pk}/tenants", {"tenants": tenants})
    assert response.status_code == 422, response.content
    assert response.json()["error"]["fields"]
    assert LeaseTenant.objects.filter(lease=lease).count() == 2


def test_put_refuses_tenants_the_caller_cannot_see(world: World, client: Client) -> None:
    lease = lease_of(world)
    stranger = str(world.tenant_record(world.other_tenant).pk)
    body = {"tenants": [{"tenantId": stranger, "isPrimary": True}]}
    response = world.api(client, "manager").put(f"/leases/{lease.pk}/tenants", body)
    assert response.status_code == 404
    assert LeaseTenant.objects.filter(lease=lease).count() == 1


@pytest.mark.parametrize(
    ("who", "status"),
    [("tenant", 403), ("other_manager", 404), ("other_landlord", 404), ("manager", 200), ("admin", 200)],
)
def test_put_permission_matrix(world: World, client: Client, who: str, status: int) -> None:
    lease = lease_of(world)
    body = {"tenants": [{"tenantId": str(world.tenant_record(world.tenant).pk), "isPrimary": True}]}
    assert world.api(client, who).put(f"/leases/{lease.pk}/tenants", body).status_code == status


@pytest.mark.parametrize(
    ("who", "status"),
    [
        ("tenant", 403),
        ("other_tenant", 403),
        ("other_manager", 404),
        ("landlord", 201),
        ("manager", 201),
        ("admin", 201),
    ],
)
def test_document_create_permission_matrix(world: World, client: Client, who: str, status: int) -> None:
    lease = lease_of(world)
    body = {"documentType": "lease", "documentUrl": "https://files.example/lease.pdf", "isSigned": True}
    response = world.api(client, who).post(f"/leases/{lease.pk}/documents", body)
    assert response.status_code == status, response.content
    if status == 201:
        created = response.json()
        assert created["uploadedBy"] == str(getattr(world, who).pk)
        assert created["isSigned"] is True and created["signedAt"] is not None


def test_documents_list_page_and_delete(world: World, client: Client) -> None:
    lease = lease_of(world)
    api = world.api(client, "manager")
    ids = [
        api.post(f"/leases/{lease.pk}/documents", {"documentType": f"addendum {n}", "documentUrl": f"/f/{n}"}).json()[
            "id"
        ]
        for n in range(3)
    ]
    page = world.api(client, "tenant").get(f"/leases/{lease.pk}/documents", limit=2).json()
    assert page["count"] == 3 and len(page["items"]) == 2 and page["nextOffset"] == 2
    assert world.api(client, "other_manager").get(f"/leases/{lease.pk}/documents").status_code == 404

    other_lease = Lease.objects.get(unit=world.other_unit)
    assert api.delete(f"/leases/{other_lease.pk}/documents/{ids[0]}").status_code == 404
    assert world.api(client, "tenant").delete(f"/leases/{lease.pk}/documents/{ids[0]}").status_code == 403
    assert world.api(client, "other_manager").delete(f"/leases/{lease.pk}/documents/{ids[0]}").status_code == 404
    assert api.delete(f"/leases/{lease.pk}/documents/{ids[0]}").status_code == 204
    assert api.delete(f"/leases/{lease.pk}/documents/{ids[0]}").status_code == 404
    assert set(LeaseDocument.objects.filter(lease=lease).values_list("id", flat=True).iterator()) == {
        doc.pk for doc in LeaseDocument.objects.filter(pk__in=ids[1:])
    }


def test_document_validation(world: World, client: Client) -> None:
    lease = lease_of(world)
    api = world.api(client, "manager")
    for body in (
        {"documentType": "", "documentUrl": "/x"},
        {"documentType": "x" * 101, "documentUrl": "/x"},
        {"documentType": "lease"},
        {"documentType": "lease", "documentUrl": "u" * 256},
    ):
        assert api.post(f"/leases/{lease.pk}/documents", body).status_code == 422
