"""Vendors and work orders over HTTP: permissions (incl. the maintenance_staff role), filters, pages."""

import datetime

import pytest
from django.test import Client

from apps.maintenance.models import MaintenanceRequest, Vendor, WorkOrder
from apps.maintenance.selectors import VENDORS_FORBIDDEN, WORK_ORDERS_FORBIDDEN
from apps.maintenance.services import VENDOR_IN_USE, WORKER_FIELDS_ONLY
from apps.properties.models import Unit
from tests.apps.api_world import Api, World
from tests.factories import make_user

pytestmark = pytest.mark.django_db


def make_vendor(**fields: object) -> Vendor:
    fields.setdefault("company_name", "Acme Plumbing")
    fields.setdefault("phone", "555-0100")
    fields.setdefault("service_category", "plumbing")
    return Vendor.objects.create(**fields)


def make_request(world: World, unit: Unit | None = None) -> MaintenanceRequest:
    return MaintenanceRequest.objects.create(unit=unit or world.unit, category="plumbing", description="leak")


@pytest.mark.parametrize(
    ("who", "collection", "item"),
    [
        ("tenant", 403, 404),
        ("landlord", 200, 200),
        ("manager", 200, 200),
        ("other_manager", 200, 200),
        ("admin", 200, 200),
    ],
)
def test_vendors_are_read_by_all_staff_and_never_by_tenants(
    world: World, client: Client, who: str, collection: int, item: int
) -> None:
    vendor = make_vendor()
    api = world.api(client, who)
    listed = api.get("/vendors")
    assert listed.status_code == collection
    if collection == 403:
        assert listed.json()["error"] == {"code": "forbidden", "message": VENDORS_FORBIDDEN}
    assert api.get(f"/vendors/{vendor.pk}").status_code == item


def test_staff_create_and_edit_vendors_tenants_cannot_admin_deletes(world: World, client: Client) -> None:
    body = {
        "companyName": "Bright Electric",
        "phone": "555-0101",
        "serviceCategory": "electrical",
        "email": "ops@bright.test",
        "insuranceExpiry": "2027-03-31",
        "isPreferred": True,
    }
    assert world.api(client, "tenant").post("/vendors", body).status_code == 403
    created = world.api(client, "manager").post("/vendors", body)
    assert created.status_code == 201, created.content
    vendor = created.json()
    assert vendor["insuranceExpiry"] == "2027-03-31" and vendor["isPreferred"] is True
    path = f"/vendors/{vendor['id']}"
    assert world.api(client, "tenant").patch(path, {"notes": "x"}).status_code == 404
    edited = world.api(client, "other_landlord").patch(path, {"notes": "Fast", "isPreferred": False})
    assert edited.status_code == 200 and edited.json()["notes"] == "Fast" and edited.json()["isPreferred"] is False
    assert world.api(client, "manager").patch(path, {"email": "not an email"}).status_code == 422
    assert world.api(client, "manager").delete(path).status_code == 403
    assert world.api(client, "admin").delete(path).status_code == 204
    assert not Vendor.objects.filter(pk=vendor["id"]).exists()


def test_vendor_with_work_orders_cannot_be_deleted(world: World, client: Client) -> None:
    vendor = make_vendor()
    WorkOrder.objects.create(request=make_request(world), vendor=vendor)
    refused = world.api(client, "admin").delete(f"/vendors/{vendor.pk}")
    assert refused.status_code == 409 and refused.json()["error"]["message"] == VENDOR_IN_USE


def test_vendor_filters_and_pages(world: World, client: Client) -> None:
    make_vendor(company_name="A", service_category="plumbing", is_preferred=True)
    make_vendor(company_name="B", service_category="Plumbing")
    make_vendor(company_name="C", service_category="electrical", is_preferred=True)
    api = world.api(client, "manager")
    names = lambda **p: [v["companyName"] for v in api.get("/vendors", **p).json()["items"]]  # noqa: E731
    assert names() == ["A", "B", "C"]
    assert names(serviceCategory="plumbing") == ["A", "B"]
    assert names(isPreferred="true") == ["A", "C"]
    assert names(isPreferred="false", serviceCategory="plumbing") == ["B"]
    page = api.get("/vendors", limit=1, offset=1).json()
    assert [v["companyName"] for v in page["items"]] == ["B"] and page["count"] == 3 and page["nextOffset"] == 2


def test_staff_create_work_orders_for_their_requests_assigned_by_them(world: World, client: Client) -> None:
    request, vendor = make_request(world), make_vendor()
    body = {
        "requestId": str(request.pk),
        "vendorId": str(vendor.pk),
        "scheduledDate": "2026-12-01",
        "scheduledTimeStart": "09:00:00",
        "scheduledTimeEnd": "11:30:00",
        "invoiceAmount": "250",
    }
    for who in ("tenant", "other_manager", "other_landlord"):
        assert world.api(client, who).post("/work-orders", body).status_code == 404, who
    created = world.api(client, "manager").post("/work-orders", body)
    assert created.status_code == 201, created.content
    order = created.json()
    assert order["assignedBy"] == str(world.manager.pk) and order["status"] == "assigned"
    assert order["propertyId"] == str(world.prop.pk) and order["invoiceAmount"] == "250.00"
    assert order["scheduledTimeEnd"] == "11:30:00"
    request.refresh_from_db()
    assert request.status == "assigned"
    unknown_vendor = world.api(client, "manager").post("/work-orders", {**body, "vendorId": str(request.pk)})
    assert unknown_vendor.status_code == 422
    with_offset = world.api(client, "manager").post("/work-orders", {**body, "scheduledTimeStart": "09:00:00+02:00"})
    assert with_offset.status_code == 422
    naive_paid = world.api(client, "manager").patch(
        f"/work-orders/{order['id']}", {"invoicePaidDate": "2026-01-01T10:00:00"}
    )
    assert naive_paid.status_code == 422


@pytest.mark.parametrize(
    ("who", "collection", "item"),
    [
        ("tenant", 403, 404),
        ("landlord", 200, 200),
        ("manager", 200, 200),
        ("other_manager", 200, 404),
        ("admin", 200, 200),
    ],
)
def test_work_orders_visible_to_the_property_staff(
    world: World, client: Client, who: str, collection: int, item: int
) -> None:
    order = WorkOrder.objects.create(request=make_request(world), vendor=make_vendor())
    api = world.api(client, who)
    listed = api.get("/work-orders")
    assert listed.status_code == collection
    if collection == 200:
        assert (str(order.pk) in [o["id"] for o in listed.json()["items"]]) is (item == 200)
    else:
        assert listed.json()["error"]["message"] == WORK_ORDERS_FORBIDDEN
    assert api.get(f"/work-orders/{order.pk}").status_code == item
    patched = api.patch(f"/work-orders/{order.pk}", {"completionNotes": "x"})
    assert patched.status_code == item


def test_maintenance_staff_update_status_and_notes_only(world: World, client: Client) -> None:
    order = WorkOrder.objects.create(request=make_request(world), vendor=make_vendor())
    worker = Api(client, make_user(user_type="tenant", roles=("maintenance_staff",)))
    assert str(order.pk) in [o["id"] for o in worker.get("/work-orders").json()["items"]]
    done = worker.patch(f"/work-orders/{order.pk}", {"status": "completed", "completionNotes": "Replaced trap"})
    assert done.status_code == 200 and done.json()["completedAt"] is not None
    assert done.json()["completionNotes"] == "Replaced trap"
    refused = worker.patch(f"/work-orders/{order.pk}", {"invoiceAmount": "10"})
    assert refused.status_code == 403 and refused.json()["error"]["message"] == WORKER_FIELDS_ONLY
    order.refresh_from_db()
    assert order.status == "completed" and order.invoice_amount is None and order.completed_at is not None


def test_staff_pay_invoice_sets_paid_date(world: World, client: Client) -> None:
    order = WorkOrder.objects.create(request=make_request(world))
    paid = world.api(client, "landlord").patch(
        f"/work-orders/{order.pk}", {"invoicePaid": True, "invoiceAmount": "99.9"}
    )
    assert paid.status_code == 200 and paid.json()["invoicePaidDate"] is not None
    assert paid.json()["invoiceAmount"] == "99.90"


def test_work_order_filters_and_pages(world: World, client: Client) -> None:
    first, second = make_request(world), make_request(world)
    plumber, electrician = make_vendor(), make_vendor(service_category="electrical")
    a = WorkOrder.objects.create(request=first, vendor=plumber, scheduled_date=datetime.date(2026, 3, 1))
    b = WorkOrder.objects.create(
        request=first, vendor=electrician, status="scheduled", scheduled_date=datetime.date(2026, 4, 1)
    )
    c = WorkOrder.objects.create(request=second, vendor=plumber, status="completed")
    WorkOrder.objects.create(request=make_request(world, world.other_unit), vendor=plumber)
    api = world.api(client, "manager")
    ids = lambda **p: {o["id"] for o in api.get("/work-orders", **p).json()["items"]}  # noqa: E731
    assert ids() == {str(a.pk), str(b.pk), str(c.pk)}
    assert ids(requestId=str(first.pk)) == {str(a.pk), str(b.pk)}
    assert ids(vendorId=str(plumber.pk)) == {str(a.pk), str(c.pk)}
    assert ids(status="scheduled") == {str(b.pk)}
    assert ids(scheduledFrom="2026-03-15") == {str(b.pk)}
    assert ids(scheduledTo="2026-03-15") == {str(a.pk)}
    assert ids(scheduledFrom="2026-01-01", scheduledTo="2026-12-31") == {str(a.pk), str(b.pk)}
    page = api.get("/work-orders", limit=2).json()
    assert page["count"] == 3 and len(page["items"]) == 2 and page["nextOffset"] == 2
    assert api.get("/work-orders", status="bogus").status_code == 422
