"""A maintenance request follows its work orders, over HTTP and in the admin: completing the last open work order
completes the request (with `completed_at`, announced as `maintenance.updated`); cancelling a request cancels its
open work orders (each announced as `workorder.updated`)."""

import threading
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from django.db import connection
from django.test import Client
from django.urls import reverse

from apps.maintenance.models import MaintenanceRequest, Vendor, WorkOrder
from realtime import topics
from tests.apps.api_world import Api, World, build_world
from tests.apps.events.test_service_events import form_data
from tests.apps.test_change_events import Listener
from tests.factories import make_user

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def world() -> World:
    return build_world()


@pytest.fixture
def board(world: World) -> Iterator[Listener]:
    """The property's maintenance board, as a raw Redis subscriber."""
    listener = Listener(topics.maintenance_updates(str(world.prop.pk)))
    yield listener
    listener.close()


def file_request(world: World, client: Client) -> dict[str, Any]:
    body = {"unitId": str(world.unit.pk), "category": "plumbing", "description": "The sink leaks"}
    response = world.api(client, "tenant").post("/maintenance-requests", body)
    assert response.status_code == 201, response.content
    return response.json()


def assign(world: World, client: Client, request_id: str) -> str:
    vendor = Vendor.objects.create(company_name="Acme", phone="555-0100", service_category="plumbing")
    response = world.api(client, "manager").post("/work-orders", {"requestId": request_id, "vendorId": str(vendor.pk)})
    assert response.status_code == 201, response.content
    return response.json()["id"]


def events_by_name(frames: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    found: dict[str, list[dict[str, Any]]] = {}
    for frame in frames:
        found.setdefault(frame["event"], []).append(frame["data"])
    return found


def test_completing_the_last_work_order_completes_the_request_and_announces_it(
    world: World, client: Client, board: Listener
) -> None:
    request = file_request(world, client)
    first, second = assign(world, client, request["id"]), assign(world, client, request["id"])
    board.take(4)  # created, two work orders, assigned
    worker = Api(client, make_user(user_type="tenant", roles=("maintenance_staff",)))

    counts_path = f"/properties/{world.prop.pk}/maintenance-counts"
    assert world.api(client, "manager").get(counts_path).json()["open"] == 1  # maintenance:counts is filled
    done = worker.patch(f"/work-orders/{first}", {"status": "completed", "completionNotes": "Trap replaced"})
    assert done.status_code == 200, done.content
    assert [f["event"] for f in board.take(1)] == ["workorder.updated"] and board.nothing()
    manager = world.api(client, "manager")
    assert manager.get(f"/maintenance-requests/{request['id']}").json()["status"] == "assigned"

    assert worker.patch(f"/work-orders/{second}", {"status": "completed"}).status_code == 200
    announced = events_by_name(board.take(2))
    assert [order["id"] for order in announced["workorder.updated"]] == [second]
    (updated,) = announced["maintenance.updated"]
    assert updated["id"] == request["id"] and updated["status"] == "completed" and updated["completedAt"]
    assert board.nothing()
    shown = world.api(client, "tenant").get(f"/maintenance-requests/{request['id']}").json()
    assert shown["status"] == "completed" and shown["completedAt"] is not None
    assert manager.get(counts_path).json()["open"] == 0  # the counts followed the completed request
    # Reopening a work order afterwards changes the order only.
    assert manager.patch(f"/work-orders/{second}", {"status": "in_progress"}).status_code == 200
    assert MaintenanceRequest.objects.get(pk=request["id"]).status == "completed"


def test_cancelled_work_orders_do_not_hold_a_request_open_but_do_not_complete_it_alone(
    world: World, client: Client
) -> None:
    manager = world.api(client, "manager")
    only_cancelled = file_request(world, client)
    order = assign(world, client, only_cancelled["id"])
    assert manager.patch(f"/work-orders/{order}", {"status": "cancelled"}).status_code == 200
    assert MaintenanceRequest.objects.get(pk=only_cancelled["id"]).status == "assigned"

    mixed = file_request(world, client)
    dropped, finished = assign(world, client, mixed["id"]), assign(world, client, mixed["id"])
    assert manager.patch(f"/work-orders/{finished}", {"status": "completed"}).status_code == 200
    assert MaintenanceRequest.objects.get(pk=mixed["id"]).status == "assigned"
    assert manager.patch(f"/work-orders/{dropped}", {"status": "cancelled"}).status_code == 200
    stored = MaintenanceRequest.objects.get(pk=mixed["id"])
    assert stored.status == "completed" and stored.completed_at is not None


@pytest.mark.parametrize("how", ["delete", "patch"])
def test_cancelling_a_request_cancels_its_open_work_orders(
    world: World, client: Client, board: Listener, how: str
) -> None:
    request = file_request(world, client)
    finished, started, waiting = (assign(world, client, request["id"]) for _ in range(3))
    manager = world.api(client, "manager")
    assert manager.patch(f"/work-orders/{finished}", {"status": "completed"}).status_code == 200
    assert manager.patch(f"/work-orders/{started}", {"status": "in_progress"}).status_code == 200
    board.take(7)
    path = f"/maintenance-requests/{request['id']}"
    response = manager.delete(path) if how == "delete" else manager.patch(path, {"status": "cancelled"})
    assert response.status_code == 200 and response.json()["status"] == "cancelled", response.content
    announced = events_by_name(board.take(3))
    assert [r["status"] for r in announced["maintenance.updated"]] == ["cancelled"]
    assert sorted((o["id"], o["status"]) for o in announced["workorder.updated"]) == sorted(
        [(started, "cancelled"), (waiting, "cancelled")]
    )
    assert board.nothing()
    statuses = {str(o.pk): o.status for o in WorkOrder.objects.filter(request_id=request["id"])}
    assert statuses == {finished: "completed", started: "cancelled", waiting: "cancelled"}


def test_a_tenant_cancelling_a_submitted_request_has_no_work_orders_to_cancel(world: World, client: Client) -> None:
    request = file_request(world, client)
    assert world.api(client, "tenant").delete(f"/maintenance-requests/{request['id']}").status_code == 200
    assert MaintenanceRequest.objects.get(pk=request["id"]).status == "cancelled"


def test_two_last_work_orders_completed_at_once_complete_the_request(world: World, client: Client) -> None:
    request = file_request(world, client)
    orders = [assign(world, client, request["id"]) for _ in range(2)]
    barrier = threading.Barrier(2)
    errors: list[BaseException] = []
    statuses: list[int] = []

    def complete(order_id: str) -> Callable[[], None]:
        api = Api(Client(), world.manager)  # one client and session per thread

        def run() -> None:
            try:
                barrier.wait(timeout=5)
                statuses.append(api.patch(f"/work-orders/{order_id}", {"status": "completed"}).status_code)
            except BaseException as exc:  # reported by the test thread
                errors.append(exc)
            finally:
                connection.close()

        return run

    threads = [threading.Thread(target=complete(order)) for order in orders]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert not errors and statuses == [200, 200], (errors, statuses)
    assert MaintenanceRequest.objects.get(pk=request["id"]).status == "completed"


# --- the admin site -----------------------------------------------------------------------------


def split_datetimes(data: dict[str, Any]) -> dict[str, Any]:
    """`assigned_at` as the admin's split date and time widget posts it (the form's value is one datetime)."""
    for key in [key for key in data if key.endswith("assigned_at")]:
        value = data.pop(key)
        data[f"{key}_0"], data[f"{key}_1"] = value[:10], value[11:19]
    return data


@pytest.fixture
def admin_client() -> Client:
    client = Client()
    client.force_login(make_user(user_type="admin"))
    return client


def test_admin_completing_the_last_work_order_completes_the_request(
    world: World, client: Client, admin_client: Client
) -> None:
    request = file_request(world, client)
    order = assign(world, client, request["id"])
    url = reverse("admin:maintenance_workorder_change", args=[order])
    data = form_data(admin_client.get(url))
    data["status"] = "completed"
    response = admin_client.post(url, split_datetimes(data))
    assert response.status_code == 302, response.context["adminform"].form.errors
    stored = MaintenanceRequest.objects.get(pk=request["id"])
    assert stored.status == "completed" and stored.completed_at is not None


def test_admin_cancelling_a_request_cancels_its_open_work_orders(
    world: World, client: Client, admin_client: Client, board: Listener
) -> None:
    request = file_request(world, client)
    order = assign(world, client, request["id"])
    board.take(3)
    url = reverse("admin:maintenance_maintenancerequest_change", args=[request["id"]])
    data = form_data(admin_client.get(url))
    data["status"] = "cancelled"
    response = admin_client.post(url, split_datetimes(data))
    assert response.status_code == 302, response.content[:2000]
    assert WorkOrder.objects.get(pk=order).status == "cancelled"
    announced = events_by_name(board.take(2))
    assert [o["status"] for o in announced["workorder.updated"]] == ["cancelled"]
