"""The maintenance workers over HTTP: who may list them, who is active (a socket open: the seed's
`maintenance:active:workers` with its liveness keys), and assigning a work order to a worker
(`POST /work-orders` with `workerId`: their vendor record, created in-house on the first one)."""

from typing import Any

import pytest
import redis
from django.test import Client

from apps.accounts.models import User
from apps.maintenance.models import MaintenanceRequest, Vendor
from apps.maintenance.selectors import WORKERS_FORBIDDEN
from apps.maintenance.services import IN_HOUSE, UNKNOWN_WORKER, VENDOR_OR_WORKER
from realtime import keys
from tests.apps.api_world import World
from tests.factories import make_user

pytestmark = pytest.mark.django_db

WORKER_ROLE = "maintenance_staff"


def make_worker(**fields: Any) -> User:
    return make_user(roles=(WORKER_ROLE,), first_name="Sam", last_name="Okafor", **fields)


def make_request(world: World) -> MaintenanceRequest:
    return MaintenanceRequest.objects.create(
        unit=world.unit, tenant=world.tenant_record(world.tenant), category="plumbing", description="leak"
    )


@pytest.mark.parametrize(("who", "status"), [("tenant", 403), ("landlord", 200), ("manager", 200), ("admin", 200)])
def test_maintenance_workers_are_listed_to_whoever_assigns_work_only(
    world: World, client: Client, who: str, status: int
) -> None:
    worker = make_worker()
    response = world.api(client, who).get("/maintenance-workers")
    assert response.status_code == status
    if status == 403:
        assert response.json()["error"] == {"code": "forbidden", "message": WORKERS_FORBIDDEN}
    else:
        assert [item["id"] for item in response.json()["items"]] == [str(worker.pk)]


def test_a_worker_does_not_list_the_workers(world: World, client: Client) -> None:
    worker = make_worker()
    response = world.api_for(client, worker).get("/maintenance-workers")
    assert response.status_code == 403


def test_only_active_users_holding_the_role_are_workers(world: World, client: Client) -> None:
    worker = make_worker()
    make_worker(is_active=False)
    make_user(first_name="Sam", last_name="Other")  # no role
    items = world.api(client, "manager").get("/maintenance-workers").json()["items"]
    assert items == [
        {
            "id": str(worker.pk),
            "firstName": "Sam",
            "lastName": "Okafor",
            "email": worker.email,
            "active": False,
            "working": False,
            "vendorId": None,
            "workOrders": [],
        }
    ]


def test_a_worker_is_active_while_their_liveness_key_lives(
    world: World, client: Client, clean_redis: redis.Redis
) -> None:
    worker = make_worker()
    user_id = str(worker.pk)
    api = world.api(client, "manager")
    clean_redis.sadd(keys.MAINTENANCE_ACTIVE_WORKERS, user_id)
    clean_redis.set(keys.maintenance_worker(user_id), "2026-12-02T10:00:00.000Z", px=60_000)
    assert api.get("/maintenance-workers").json()["items"][0]["active"] is True
    clean_redis.delete(keys.maintenance_worker(user_id))  # expired: a dead process's worker, not yet swept
    assert api.get("/maintenance-workers").json()["items"][0]["active"] is False


def test_assigning_a_request_to_a_worker_makes_their_vendor_record_once_and_lists_the_work(
    world: World, client: Client
) -> None:
    worker = make_worker()
    request = make_request(world)
    manager = world.api(client, "manager")
    created = manager.post("/work-orders", {"requestId": str(request.pk), "workerId": str(worker.pk)})
    assert created.status_code == 201, created.content
    vendor = Vendor.objects.get(email=worker.email)
    assert (vendor.company_name, vendor.service_category) == ("Sam Okafor (in-house)", IN_HOUSE)
    assert created.json()["vendorId"] == str(vendor.pk)
    request.refresh_from_db()
    assert request.status == "assigned"

    again = make_request(world)
    second = world.api(client, "landlord").post(
        "/work-orders",
        {"requestId": str(again.pk), "workerId": str(worker.pk)},
    )
    assert second.json()["vendorId"] == str(vendor.pk)
    assert Vendor.objects.filter(email__iexact=worker.email).count() == 1

    [item] = manager.get("/maintenance-workers").json()["items"]
    assert item["vendorId"] == str(vendor.pk)
    assert {order["requestId"] for order in item["workOrders"]} == {str(request.pk), str(again.pk)}
    assert item["working"] is False
    as_worker = world.api_for(client, worker)
    started = as_worker.patch(f"/work-orders/{created.json()['id']}", {"status": "in_progress"})
    assert started.status_code == 200, started.content
    [item] = manager.get("/maintenance-workers").json()["items"]
    assert item["working"] is True
    # Another property's manager sees the worker but not the work they do elsewhere.
    [elsewhere] = world.api(client, "other_manager").get("/maintenance-workers").json()["items"]
    assert (elsewhere["vendorId"], elsewhere["workOrders"], elsewhere["working"]) == (str(vendor.pk), [], False)


def test_a_worker_who_already_has_a_vendor_record_gets_that_one(world: World, client: Client) -> None:
    worker = make_worker()
    vendor = Vendor.objects.create(
        company_name="Okafor Repairs",
        email=worker.email.upper(),
        phone="555-0199",
        service_category="general",
    )
    created = world.api(client, "manager").post(
        "/work-orders",
        {"requestId": str(make_request(world).pk), "workerId": str(worker.pk)},
    )
    assert created.json()["vendorId"] == str(vendor.pk)


def test_assigning_to_someone_who_is_no_worker_or_with_a_vendor_too_is_refused_and_writes_nothing(
    world: World, client: Client
) -> None:
    request = make_request(world)
    manager = world.api(client, "manager")
    not_a_worker = manager.post("/work-orders", {"requestId": str(request.pk), "workerId": str(world.tenant.pk)})
    assert not_a_worker.status_code == 422
    assert not_a_worker.json()["error"]["message"] == UNKNOWN_WORKER
    worker = make_worker()
    vendor = Vendor.objects.create(company_name="Acme", phone="555-0100", service_category="plumbing")
    both = manager.post(
        "/work-orders",
        {"requestId": str(request.pk), "workerId": str(worker.pk), "vendorId": str(vendor.pk)},
    )
    assert both.status_code == 422
    assert both.json()["error"]["message"] == VENDOR_OR_WORKER
    request.refresh_from_db()
    assert request.status == "submitted"
    assert not Vendor.objects.filter(service_category=IN_HOUSE).exists()


def test_a_tenant_cannot_assign_to_a_worker(world: World, client: Client) -> None:
    worker = make_worker()
    request = make_request(world)
    refused = world.api(client, "tenant").post(
        "/work-orders",
        {"requestId": str(request.pk), "workerId": str(worker.pk)},
    )
    assert refused.status_code == 403
    assert not Vendor.objects.exists()
