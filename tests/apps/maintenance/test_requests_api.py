"""Maintenance requests and their images over HTTP: who may see and change what, pages and filters."""

from datetime import timedelta

import pytest
from django.test import Client
from django.utils import timezone

from apps.maintenance.models import MaintenanceImage, MaintenanceRequest
from apps.maintenance.services import NO_ACTIVE_LEASE, TENANT_EDITS_ONLY, TENANT_EDITS_WHILE_SUBMITTED
from tests.apps.api_world import World
from tests.factories import make_lease, make_unit, make_user

pytestmark = pytest.mark.django_db


def file_request(world: World, client: Client, who: str = "tenant", **fields: object) -> dict:
    body = {"unitId": str(world.unit.pk), "category": "plumbing", "description": "The sink leaks", **fields}
    response = world.api(client, who).post("/maintenance-requests", body)
    assert response.status_code == 201, response.content
    return response.json()


def test_tenant_files_for_unit_of_active_lease_as_their_tenant_record(world: World, client: Client) -> None:
    body = file_request(world, client, priority="high", estimatedCost="99.00")
    assert body["tenantId"] == str(world.tenant_record(world.tenant).pk)
    assert body["unitId"] == str(world.unit.pk) and body["propertyId"] == str(world.prop.pk)
    assert body["status"] == "submitted" and body["priority"] == "high"
    assert body["estimatedCost"] is None  # staff-only field, ignored for tenants
    stored = MaintenanceRequest.objects.get(pk=body["id"])
    assert stored.tenant_id == world.tenant_record(world.tenant).pk and stored.description == "The sink leaks"


def test_tenant_cannot_file_for_other_units_or_an_ended_lease(world: World, client: Client) -> None:
    api = world.api(client, "tenant")
    other = api.post("/maintenance-requests", {"unitId": str(world.other_unit.pk), "category": "x", "description": "y"})
    assert other.status_code == 404
    old_unit = make_unit(property=world.prop)
    make_lease(unit=old_unit, tenants=(world.tenant,), status="expired")
    ended = api.post("/maintenance-requests", {"unitId": str(old_unit.pk), "category": "x", "description": "y"})
    assert ended.status_code == 403 and ended.json()["error"]["message"] == NO_ACTIVE_LEASE


def test_staff_file_for_their_units_only_with_costs(world: World, client: Client) -> None:
    body = file_request(
        world, client, "manager", estimatedCost="120.5", tenantId=str(world.tenant_record(world.tenant).pk)
    )
    assert body["estimatedCost"] == "120.50" and body["tenantId"] == str(world.tenant_record(world.tenant).pk)
    refused = world.api(client, "other_manager").post(
        "/maintenance-requests", {"unitId": str(world.unit.pk), "category": "x", "description": "y"}
    )
    assert refused.status_code == 404
    bad_tenant = world.api(client, "manager").post(
        "/maintenance-requests",
        {
            "unitId": str(world.unit.pk),
            "category": "x",
            "description": "y",
            "tenantId": str(world.tenant_record(world.other_tenant).pk),
        },
    )
    assert bad_tenant.status_code == 422 and bad_tenant.json()["error"]["fields"][0]["field"] == "body.payload.tenantId"


@pytest.mark.parametrize(
    ("who", "visible"),
    [
        ("tenant", True),
        ("landlord", True),
        ("manager", True),
        ("admin", True),
        ("other_manager", False),
        ("other_tenant", False),
        ("other_landlord", False),
    ],
)
def test_request_and_its_images_are_visible_only_to_the_right_people(
    world: World, client: Client, who: str, visible: bool
) -> None:
    created = file_request(world, client)
    image = world.api(client, "tenant").post(
        f"/maintenance-requests/{created['id']}/images", {"imageUrl": "https://img.test/a.jpg"}
    )
    assert image.status_code == 201
    api = world.api(client, who)
    listed = api.get("/maintenance-requests").json()
    assert (created["id"] in [item["id"] for item in listed["items"]]) is visible
    detail = api.get(f"/maintenance-requests/{created['id']}")
    images = api.get(f"/maintenance-requests/{created['id']}/images")
    if visible:
        assert detail.status_code == 200 and detail.json() == created
        assert images.status_code == 200 and [i["imageUrl"] for i in images.json()["items"]] == [
            "https://img.test/a.jpg"
        ]
    else:
        assert detail.status_code == images.status_code == 404
        assert detail.json()["error"]["code"] == "not_found"
        for response in (
            api.patch(f"/maintenance-requests/{created['id']}", {"description": "mine now"}),
            api.delete(f"/maintenance-requests/{created['id']}"),
            api.post(f"/maintenance-requests/{created['id']}/images", {"imageUrl": "https://x.test/b.jpg"}),
            api.delete(f"/maintenance-requests/{created['id']}/images/{image.json()['id']}"),
        ):
            assert response.status_code == 404
        assert MaintenanceRequest.objects.get(pk=created["id"]).description == "The sink leaks"


def test_tenant_edits_description_and_category_only_while_submitted(world: World, client: Client) -> None:
    created = file_request(world, client)
    tenant, manager = world.api(client, "tenant"), world.api(client, "manager")
    path = f"/maintenance-requests/{created['id']}"
    edited = tenant.patch(path, {"description": "Sink and tap leak", "category": "plumbing/tap"})
    assert edited.status_code == 200 and edited.json()["description"] == "Sink and tap leak"
    status = tenant.patch(path, {"status": "completed"})
    assert status.status_code == 403 and status.json()["error"]["message"] == TENANT_EDITS_ONLY
    assert manager.patch(path, {"status": "assigned", "priority": "emergency"}).status_code == 200
    late = tenant.patch(path, {"description": "again"})
    assert late.status_code == 409 and late.json()["error"]["message"] == TENANT_EDITS_WHILE_SUBMITTED
    assert tenant.delete(path).status_code == 409


def test_staff_complete_sets_completed_at_and_cancel_keeps_the_row(world: World, client: Client) -> None:
    created = file_request(world, client)
    manager = world.api(client, "landlord")
    path = f"/maintenance-requests/{created['id']}"
    done = manager.patch(path, {"status": "completed", "actualCost": "80", "isTenantCaused": True}).json()
    assert done["status"] == "completed" and done["completedAt"] is not None and done["actualCost"] == "80.00"
    assert MaintenanceRequest.objects.get(pk=created["id"]).completed_at is not None
    reopened = manager.patch(path, {"status": "in_progress"}).json()
    assert reopened["completedAt"] is None
    other = file_request(world, client)
    cancelled = world.api(client, "tenant").delete(f"/maintenance-requests/{other['id']}")
    assert cancelled.status_code == 200 and cancelled.json()["status"] == "cancelled"
    assert MaintenanceRequest.objects.get(pk=other["id"]).status == "cancelled"


def test_bad_bodies_answer_422_with_the_field(world: World, client: Client) -> None:
    api = world.api(client, "manager")
    created = file_request(world, client)
    for body in ({"status": "done"}, {"estimatedCost": "1.234"}, {"category": None}, {"description": ""}):
        response = api.patch(f"/maintenance-requests/{created['id']}", body)
        assert response.status_code == 422, (body, response.content)
        assert response.json()["error"]["fields"]
    assert api.get("/maintenance-requests/not-a-uuid").status_code == 422
    assert api.get("/maintenance-requests", limit=101).status_code == 422


def test_images_are_added_by_tenant_or_staff_and_deleted(world: World, client: Client) -> None:
    created = file_request(world, client)
    path = f"/maintenance-requests/{created['id']}/images"
    mine = world.api(client, "manager").post(path, {"imageUrl": "https://img.test/after.jpg", "isBefore": False})
    assert mine.status_code == 201 and mine.json()["isBefore"] is False and mine.json()["requestId"] == created["id"]
    assert world.api(client, "tenant").delete(f"{path}/{mine.json()['id']}").status_code == 204
    assert not MaintenanceImage.objects.filter(pk=mine.json()["id"]).exists()
    assert world.api(client, "tenant").delete(f"{path}/{mine.json()['id']}").status_code == 404


def test_list_pages_and_each_filter(world: World, client: Client) -> None:
    manager = world.api(client, "admin")
    second_unit = make_unit(property=world.prop)
    ids = [file_request(world, client, "manager", priority=p)["id"] for p in ("low", "high", "high")]
    on_second = file_request(world, client, "manager", unitId=str(second_unit.pk))["id"]
    elsewhere = file_request(world, client, "other_manager", unitId=str(world.other_unit.pk))["id"]
    MaintenanceRequest.objects.filter(pk=ids[0]).update(
        status="in_progress", created_at=timezone.now() - timedelta(days=10)
    )

    def listed(**params: object) -> list[str]:
        body = manager.get("/maintenance-requests", **params).json()
        return [item["id"] for item in body["items"]]

    assert set(listed(propertyId=str(world.prop.pk))) == {*ids, on_second}
    assert set(listed(unitId=str(second_unit.pk))) == {on_second}
    assert set(listed(priority="high")) == {ids[1], ids[2]}
    assert set(listed(status="in_progress")) == {ids[0]}
    cutoff = (timezone.now() - timedelta(days=1)).isoformat()
    assert ids[0] not in listed(createdFrom=cutoff) and elsewhere in listed(createdFrom=cutoff)
    assert set(listed(createdTo=cutoff)) == {ids[0]}
    first = manager.get("/maintenance-requests", limit=2).json()
    assert first["count"] == 5 and len(first["items"]) == 2 and first["nextOffset"] == 2
    rest = manager.get("/maintenance-requests", limit=2, offset=4).json()
    assert len(rest["items"]) == 1 and rest["nextOffset"] is None
    newest_first = listed()
    assert newest_first[-1] == ids[0] and len(set(newest_first)) == 5


def test_unauthenticated_calls_answer_401(client: Client) -> None:
    assert client.get("/api/v1/maintenance-requests").status_code == 401


def test_tenant_without_any_lease_sees_nothing(world: World, client: Client) -> None:
    file_request(world, client)
    from tests.apps.api_world import Api

    loner = Api(client, make_user())
    assert loner.get("/maintenance-requests").json()["count"] == 0
