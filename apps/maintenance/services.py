"""Writes of the maintenance domain: requests and their images, vendors, work orders.

Each write runs in one transaction and records its change events (`events.py`) in the
outbox in that transaction, after the row is written; they are published after the
commit; each write of a request also drops `maintenance:counts:{propertyId}` after the
commit (`caches.request_counts_changed`). The people concerned are notified after the
commit (`notices.py`: a request filed, assigned, its status changed, a work order assigned).
The `*_admin_*` services are the admin site's write path (the site has checked that the caller is an admin). Preconditions are checked here, not in the views: the views only
translate HTTP.

A request follows its work orders, on every path (HTTP and admin), in the same transaction:
when its last open work order is completed (or cancelled, with at least one completed) the
request becomes `completed`; a cancelled request cancels its open work orders. Every path
that changes work orders of a request locks the request first, then its orders, so these
cascades cannot deadlock each other.
"""

from typing import Any
from uuid import UUID

from django.db import transaction
from django.db.models import ProtectedError
from django.utils import timezone

from apps.accounts.models import User
from apps.accounts.services import Principal
from apps.common import policy
from apps.common.validation import invalid
from apps.common.visibility import not_found
from apps.events.outbox import delete_recording_events
from apps.leasing.models import LeaseStatus, Tenant
from apps.maintenance import caches, events, notices, selectors
from apps.maintenance.models import (
    MaintenanceImage,
    MaintenanceRequest,
    MaintenanceStatus,
    Vendor,
    WorkOrder,
    WorkOrderStatus,
)
from apps.properties.models import Unit
from realtime import errors
from realtime.errors import ProtocolError

NO_ACTIVE_LEASE = "You can file maintenance requests only for a unit of your active lease."
TENANT_EDITS_ONLY = "Tenants may change only the description and category of their own request."
TENANT_EDITS_WHILE_SUBMITTED = "The request can no longer be edited: it is past 'submitted'."
NOT_YOUR_REQUEST = "Only the tenant who filed the request or the property's staff may do this."
ALREADY_CLOSED = "The request is completed or cancelled already."
TENANT_NOT_ON_UNIT = "The tenant has no lease on this unit."
STAFF_ONLY = "Only the property's staff or an admin may do this."
VENDOR_WRITERS_ONLY = "Only landlords, property managers and admins may change vendors."
VENDOR_DELETE_ADMIN_ONLY = "Only admins may delete vendors; they are shared by every landlord."
VENDOR_IN_USE = "The vendor has work orders; it cannot be deleted."
WORKER_FIELDS_ONLY = "Maintenance staff may change only the status and completion notes of a work order."
UNKNOWN_VENDOR = "No such vendor."
UNKNOWN_WORKER = "No such maintenance worker (an active user with the role maintenance_staff)."
VENDOR_OR_WORKER = "Give vendorId or workerId, not both."
IN_HOUSE = "in_house"

TENANT_EDITABLE = frozenset({"description", "category"})
WORKER_EDITABLE = frozenset({"status", "completion_notes"})


def _owns(caller: Principal, request: MaintenanceRequest) -> bool:
    return (
        request.tenant_id is not None and Tenant.objects.filter(pk=request.tenant_id, user_id=caller.user_id).exists()
    )


def _set_status_times(request: MaintenanceRequest, previous: str | None) -> None:
    if request.status == MaintenanceStatus.COMPLETED and previous != MaintenanceStatus.COMPLETED:
        request.completed_at = timezone.now()
    elif request.status != MaintenanceStatus.COMPLETED:
        request.completed_at = None


# --- maintenance requests ---------------------------------------------------------------


@transaction.atomic
def maintenance_request_create(
    *, caller: Principal, unit_id: UUID, fields: dict[str, Any], tenant_id: UUID | None = None
) -> MaintenanceRequest:
    """File a request. A tenant files for a unit of their ACTIVE lease (as that lease's tenant);
    staff of the unit's property or an admin file for any of theirs, optionally naming a tenant of the unit."""
    policy.require(caller, "maintenance.create")
    unit = Unit.objects.filter(pk=unit_id).first()
    if unit is None:
        raise not_found()
    managed = selectors.property_is_staffed_by(caller=caller, property_id=unit.property_id)
    if managed:
        tenant = None
        if tenant_id is not None:
            tenant = Tenant.objects.filter(pk=tenant_id, lease_links__lease__unit=unit).first()
            if tenant is None:
                raise invalid("tenantId", TENANT_NOT_ON_UNIT)
    else:
        leases = Tenant.objects.filter(user_id=caller.user_id, lease_links__lease__unit=unit)
        if not leases.exists():
            raise not_found()
        # One filter() call, so the active lease is the lease on this unit (not any lease).
        tenant = Tenant.objects.filter(
            user_id=caller.user_id, lease_links__lease__unit=unit, lease_links__lease__lease_status=LeaseStatus.ACTIVE
        ).first()
        if tenant is None:
            raise ProtocolError(errors.FORBIDDEN, NO_ACTIVE_LEASE)
        fields = {key: value for key, value in fields.items() if key in TENANT_EDITABLE | {"priority"}}
    request = MaintenanceRequest(unit=unit, tenant=tenant, **fields)
    _set_status_times(request, None)
    request.save()
    events.record_request_saved(request, created=True)
    caches.request_counts_changed(request)
    notices.request_created(request, actor_id=caller.user_id)
    return request


@transaction.atomic
def maintenance_request_update(*, caller: Principal, request_id: UUID, changes: dict[str, Any]) -> MaintenanceRequest:
    """Change a request. Staff of its property (or an admin) change anything; its tenant only
    the description and category, and only while it is `submitted`. Completing sets `completed_at`."""
    request = selectors.access_maintenance_request(caller=caller, request_id=request_id, for_update=True)
    if not selectors.maintenance_request_is_managed_by(caller=caller, request=request):
        if set(changes) - TENANT_EDITABLE:
            raise ProtocolError(errors.FORBIDDEN, TENANT_EDITS_ONLY)
        if request.status != MaintenanceStatus.SUBMITTED:
            raise ProtocolError(errors.CONFLICT, TENANT_EDITS_WHILE_SUBMITTED)
    previous = request.status
    for field, value in changes.items():
        setattr(request, field, value)
    _set_status_times(request, previous)
    request.save()
    events.record_request_saved(request, created=False)
    caches.request_counts_changed(request)
    _cancel_work_orders_of_cancelled_request(request, previous_status=previous)
    notices.request_status_changed(request, previous=previous, actor_id=caller.user_id)
    return request


@transaction.atomic
def maintenance_request_cancel(*, caller: Principal, request_id: UUID) -> MaintenanceRequest:
    """Cancel (the seed keeps requests: status `cancelled`). Its tenant may cancel while it is `submitted`."""
    request = selectors.access_maintenance_request(caller=caller, request_id=request_id, for_update=True)
    if request.status in (MaintenanceStatus.COMPLETED, MaintenanceStatus.CANCELLED):
        raise ProtocolError(errors.CONFLICT, ALREADY_CLOSED)
    if not selectors.maintenance_request_is_managed_by(caller=caller, request=request):
        if request.status != MaintenanceStatus.SUBMITTED:
            raise ProtocolError(errors.CONFLICT, TENANT_EDITS_WHILE_SUBMITTED)
    previous = request.status
    request.status = MaintenanceStatus.CANCELLED
    request.completed_at = None
    request.save()
    events.record_request_saved(request, created=False)
    caches.request_counts_changed(request)
    _cancel_work_orders_of_cancelled_request(request, previous_status=previous)
    notices.request_status_changed(request, previous=previous, actor_id=caller.user_id)
    return request


def _may_touch_images(caller: Principal, request: MaintenanceRequest) -> bool:
    return selectors.maintenance_request_is_managed_by(caller=caller, request=request) or _owns(caller, request)


@transaction.atomic
def maintenance_image_add(*, caller: Principal, request_id: UUID, image_url: str, is_before: bool) -> MaintenanceImage:
    """Attach an image (its tenant or the property's staff)."""
    request = selectors.access_maintenance_request(caller=caller, request_id=request_id)
    if not _may_touch_images(caller, request):
        raise ProtocolError(errors.FORBIDDEN, NOT_YOUR_REQUEST)
    return MaintenanceImage.objects.create(request=request, image_url=image_url, is_before=is_before)


@transaction.atomic
def maintenance_image_delete(*, caller: Principal, request_id: UUID, image_id: UUID) -> None:
    request = selectors.access_maintenance_request(caller=caller, request_id=request_id)
    image = MaintenanceImage.objects.filter(pk=image_id, request=request).first()
    if image is None:
        raise not_found()
    if not _may_touch_images(caller, request):
        raise ProtocolError(errors.FORBIDDEN, NOT_YOUR_REQUEST)
    image.delete()


# --- vendors -----------------------------------------------------------------------------


def _require_vendor_writer(caller: Principal) -> None:
    policy.require(caller, "vendors.manage", VENDOR_WRITERS_ONLY)


@transaction.atomic
def vendor_create(*, caller: Principal, fields: dict[str, Any]) -> Vendor:
    _require_vendor_writer(caller)
    vendor = Vendor(**fields)
    vendor.save()
    return vendor


@transaction.atomic
def vendor_update(*, caller: Principal, vendor_id: UUID, changes: dict[str, Any]) -> Vendor:
    vendor = selectors.access_vendor(caller=caller, vendor_id=vendor_id)
    _require_vendor_writer(caller)
    for field, value in changes.items():
        setattr(vendor, field, value)
    vendor.save()
    return vendor


@transaction.atomic
def vendor_delete(*, caller: Principal, vendor_id: UUID) -> None:
    vendor = selectors.access_vendor(caller=caller, vendor_id=vendor_id)
    if not policy.is_admin(caller):
        raise ProtocolError(errors.FORBIDDEN, VENDOR_DELETE_ADMIN_ONLY)
    try:
        vendor.delete()
    except ProtectedError as exc:
        raise ProtocolError(errors.CONFLICT, VENDOR_IN_USE) from exc


# --- work orders -------------------------------------------------------------------------


def _vendor(vendor_id: UUID | None) -> Vendor | None:
    if vendor_id is None:
        return None
    vendor = Vendor.objects.filter(pk=vendor_id).first()
    if vendor is None:
        raise invalid("vendorId", UNKNOWN_VENDOR)
    return vendor


def _worker_vendor(worker_id: UUID) -> Vendor:
    """The vendor record standing for a maintenance worker: the one with their email (the reading
    notices.py uses to reach a vendor's user), created as an in-house record on their first work
    order. The worker's row is locked first, so two first assignments create one record."""
    worker = (
        User.objects.select_for_update()
        .filter(pk=worker_id, is_active=True, roles__role_name=selectors.MAINTENANCE_STAFF_ROLE)
        .first()
    )
    if worker is None:
        raise invalid("workerId", UNKNOWN_WORKER)
    vendor = Vendor.objects.filter(email__iexact=worker.email).order_by("created_at", "pk").first()
    if vendor is None:
        name = f"{worker.first_name} {worker.last_name}".strip() or worker.email
        vendor = Vendor.objects.create(
            company_name=f"{name} (in-house)",
            contact_name=name,
            email=worker.email,
            phone=worker.phone or "-",
            service_category=IN_HOUSE,
        )
    return vendor


def _set_work_order_times(order: WorkOrder, previous: str | None) -> None:
    if order.status == WorkOrderStatus.COMPLETED and previous != WorkOrderStatus.COMPLETED:
        order.completed_at = timezone.now()
    elif order.status != WorkOrderStatus.COMPLETED:
        order.completed_at = None
    if order.invoice_paid and order.invoice_paid_date is None:
        order.invoice_paid_date = timezone.now()


@transaction.atomic
def work_order_create(
    *,
    caller: Principal,
    request_id: UUID,
    vendor_id: UUID | None,
    fields: dict[str, Any],
    worker_id: UUID | None = None,
) -> WorkOrder:
    """Assign a request to a vendor, or to a maintenance worker (`worker_id`: their vendor record,
    see `_worker_vendor`); staff of the request's property or an admin; `assigned_by` is the caller.

    A request still `submitted` moves to `assigned`.
    """
    if vendor_id is not None and worker_id is not None:
        raise invalid("workerId", VENDOR_OR_WORKER)
    request = selectors.access_maintenance_request(caller=caller, request_id=request_id, for_update=True)
    if not selectors.maintenance_request_is_managed_by(caller=caller, request=request):
        raise ProtocolError(errors.FORBIDDEN, STAFF_ONLY)
    vendor = _worker_vendor(worker_id) if worker_id is not None else _vendor(vendor_id)
    order = WorkOrder(request=request, vendor=vendor, assigned_by_id=caller.user_id, **fields)
    _set_work_order_times(order, None)
    order.save()
    events.record_work_order_saved(order)
    notices.work_order_assigned(order, previous_vendor_id=None, actor_id=caller.user_id)
    if request.status == MaintenanceStatus.SUBMITTED:
        request.status = MaintenanceStatus.ASSIGNED
        request.save(update_fields=["status", "updated_at"])
        events.record_request_saved(request, created=False)
        caches.request_counts_changed(request)
        notices.request_status_changed(request, previous=MaintenanceStatus.SUBMITTED, actor_id=caller.user_id)
    return order


@transaction.atomic
def work_order_update(*, caller: Principal, work_order_id: UUID, changes: dict[str, Any]) -> WorkOrder:
    """Change a work order: staff of its property or an admin change anything; `maintenance_staff`
    change the status and completion notes. Completing sets `completed_at`; paying sets `invoice_paid_date`.
    Completing the request's last open work order completes the request."""
    _lock_request_of_work_order(work_order_id)
    order = selectors.access_work_order(caller=caller, work_order_id=work_order_id, for_update=True)
    managed = policy.sees_all(caller, "maintenance.manage") or (
        order.request is not None and selectors.maintenance_request_is_managed_by(caller=caller, request=order.request)
    )
    if not managed:
        if not selectors.is_maintenance_worker(caller) or set(changes) - WORKER_EDITABLE:
            raise ProtocolError(errors.FORBIDDEN, WORKER_FIELDS_ONLY)
    previous = order.status
    previous_vendor_id = order.vendor_id
    if "vendor_id" in changes:
        order.vendor = _vendor(changes.pop("vendor_id"))
    for field, value in changes.items():
        setattr(order, field, value)
    _set_work_order_times(order, previous)
    order.save()
    events.record_work_order_saved(order)
    _complete_request_when_work_is_done(order.request_id)
    notices.work_order_assigned(order, previous_vendor_id=previous_vendor_id, actor_id=caller.user_id)
    return order


# --- the admin site's writes ---------------------------------------------------------------


@transaction.atomic
def maintenance_request_admin_save(*, request: MaintenanceRequest) -> MaintenanceRequest:
    """Save the request as the admin's form built it; a move to another property is announced on both boards."""
    created = request._state.adding
    previous_property_id = None
    if not created:
        previous_property_id = (
            MaintenanceRequest.objects.filter(pk=request.pk).values_list("unit__property_id", flat=True).first()
        )
    previous_status = _stored_status(request)
    request.save()
    events.record_request_saved(request, created=created, previous_property_id=previous_property_id)
    caches.request_counts_changed(request, previous_property_id=previous_property_id)
    _cancel_work_orders_of_cancelled_request(request, previous_status=previous_status)
    return request


@transaction.atomic
def maintenance_request_admin_delete(*, request: MaintenanceRequest) -> None:
    """Delete the request and its work orders and images, announcing the request and each order."""
    delete_recording_events(request)


@transaction.atomic
def work_order_admin_save(*, order: WorkOrder) -> WorkOrder:
    """Save the work order as the admin's form built it; a move to another property is announced on both boards."""
    previous_property_id = None
    _lock_request(order.request_id)
    if not order._state.adding:
        previous_property_id = (
            WorkOrder.objects.filter(pk=order.pk).values_list("request__unit__property_id", flat=True).first()
        )
    order.save()
    events.record_work_order_saved(order, previous_property_id=previous_property_id)
    _complete_request_when_work_is_done(order.request_id)
    return order


@transaction.atomic
def work_order_admin_delete(*, order: WorkOrder) -> None:
    """Delete the work order, announcing it; if the orders left are all done, the request is completed."""
    request_id = order.request_id
    _lock_request(request_id)
    delete_recording_events(order)
    _complete_request_when_work_is_done(request_id)


# --- a request follows its work orders ---------------------------------------------------------

DONE_WORK_ORDER_STATUSES = (WorkOrderStatus.COMPLETED, WorkOrderStatus.CANCELLED)
CLOSED_REQUEST_STATUSES = (MaintenanceStatus.COMPLETED, MaintenanceStatus.CANCELLED)


def _lock_request(request_id: Any) -> None:
    """Lock the request's row until commit (nothing for no request)."""
    if request_id is not None:
        list(MaintenanceRequest.objects.select_for_update().filter(pk=request_id).values_list("pk", flat=True))


def _lock_request_of_work_order(work_order_id: Any) -> None:
    """Lock the work order's request before the order itself (every path locks a request before its orders).

    Taken before the visibility check: a lock reveals nothing, and a missing or hidden order is a 404 next."""
    request_ids = WorkOrder.objects.filter(pk=work_order_id).values("request_id")
    list(MaintenanceRequest.objects.select_for_update().filter(pk__in=request_ids).values_list("pk", flat=True))


def _stored_status(request: MaintenanceRequest) -> str | None:
    if request._state.adding:
        return None
    return MaintenanceRequest.objects.filter(pk=request.pk).values_list("status", flat=True).first()


def _complete_request_when_work_is_done(request_id: Any) -> MaintenanceRequest | None:
    """Complete an open request (not completed or cancelled) whose work orders are all done: every one
    completed or cancelled, at least one completed. Sets `completed_at`, records `maintenance.updated`.
    Returns the request when this call completed it. Precondition: inside the transaction that changed the
    work order, with the request locked (so two orders completed at once cannot both miss the last one)."""
    if request_id is None:
        return None
    request = (
        MaintenanceRequest.objects.select_for_update(of=("self",)).select_related("unit").filter(pk=request_id).first()
    )
    if request is None or request.status in CLOSED_REQUEST_STATUSES:
        return None
    statuses = set(WorkOrder.objects.filter(request=request).values_list("status", flat=True))
    if WorkOrderStatus.COMPLETED not in statuses or statuses - set(DONE_WORK_ORDER_STATUSES):
        return None
    previous = request.status
    request.status = MaintenanceStatus.COMPLETED
    _set_status_times(request, previous)
    request.save()
    events.record_request_saved(request, created=False)
    caches.request_counts_changed(request)
    # The work was done by whoever completed the last order, never the tenant: tell the tenant.
    notices.request_status_changed(request, previous=previous, actor_id=None)
    return request


@transaction.atomic
def maintenance_request_admin_settle(*, request: MaintenanceRequest) -> int:
    """After the admin saved a request's inline work orders: a cancelled request keeps no open work order
    (an inline row saved with its old status is cancelled again). Returns how many were cancelled."""
    _lock_request(request.pk)
    if request.status != MaintenanceStatus.CANCELLED:
        return 0
    return _cancel_open_work_orders(request)


def _cancel_work_orders_of_cancelled_request(request: MaintenanceRequest, *, previous_status: str | None) -> int:
    """A request that has just become `cancelled` cancels its open work orders; returns how many."""
    if request.status != MaintenanceStatus.CANCELLED or previous_status == MaintenanceStatus.CANCELLED:
        return 0
    return _cancel_open_work_orders(request)


def _cancel_open_work_orders(request: MaintenanceRequest) -> int:
    """Cancel the request's open work orders, each recorded as `workorder.updated`; returns how many.
    Precondition: the request is locked (or being saved) in this transaction."""
    orders = list(
        WorkOrder.objects.select_for_update().filter(request=request).exclude(status__in=DONE_WORK_ORDER_STATUSES)
    )
    for order in orders:
        previous = order.status
        order.status = WorkOrderStatus.CANCELLED
        _set_work_order_times(order, previous)
        order.save()
        events.record_work_order_saved(order)
    return len(orders)
