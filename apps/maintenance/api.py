"""HTTP endpoints of maintenance requests, vendors and work orders (mounted at /api/v1 by pms/api.py).

Thin async views: parse, call a selector or service in a worker thread, serialize.
Money is a decimal string, times ISO 8601; forbidden objects answer 404 (see selectors).
The request and response schemas are in apps/maintenance/schemas.py.
"""

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any
from uuid import UUID

from asgiref.sync import sync_to_async
from django.http import HttpRequest
from ninja import Query, Router, Schema, Status

from apps.accounts.services import Principal
from apps.common.http import token_auth
from apps.common.pagination import Page, PageParams, apaginate, paginate
from apps.common.visibility import not_found
from apps.maintenance import selectors, services
from apps.maintenance.models import MaintenanceImage, MaintenanceRequest, Vendor, WorkOrder
from apps.maintenance.schemas import (
    REQUEST_FIELDS,
    VENDOR_FIELDS,
    WORK_ORDER_FIELDS,
    MaintenanceCountsOut,
    MaintenanceImageIn,
    MaintenanceImageOut,
    MaintenanceRequestFilters,
    MaintenanceRequestIn,
    MaintenanceRequestOut,
    MaintenanceRequestPatch,
    MaintenanceWorkerOut,
    MaintenanceWorkersOut,
    VendorFilters,
    VendorIn,
    VendorOut,
    VendorPatch,
    WorkerOrderOut,
    WorkOrderFilters,
    WorkOrderIn,
    WorkOrderOut,
    WorkOrderPatch,
)

router = Router(tags=["maintenance"], auth=token_auth)


def _caller(request: HttpRequest) -> Principal:
    return request.auth  # type: ignore[attr-defined]


def _money(value: Decimal | None) -> Decimal | None:
    """Two decimal places, as the columns store them, so a reply equals a later read."""
    return None if value is None else value.quantize(Decimal("0.01"))


def _aware(value: datetime | None) -> datetime | None:
    """A filter bound as aware UTC (a time without offset is read as UTC)."""
    return value.replace(tzinfo=UTC) if value is not None and value.tzinfo is None else value


def _changes(payload: Schema, names: dict[str, str]) -> dict[str, Any]:
    """The fields the client sent, renamed to model fields."""
    return {names[key]: value for key, value in payload.model_dump(exclude_unset=True).items()}


# --- maintenance requests ---------------------------------------------------------------


def request_out(request: MaintenanceRequest) -> MaintenanceRequestOut:
    return MaintenanceRequestOut(
        id=request.pk,
        unitId=request.unit_id,
        propertyId=request.unit.property_id if request.unit is not None else None,
        tenantId=request.tenant_id,
        category=request.category,
        priority=request.priority,
        description=request.description,
        status=request.status,
        createdAt=request.created_at,
        updatedAt=request.updated_at,
        completedAt=request.completed_at,
        isTenantCaused=request.is_tenant_caused,
        estimatedCost=_money(request.estimated_cost),
        actualCost=_money(request.actual_cost),
    )


@router.get("/maintenance-requests", response=Page[MaintenanceRequestOut])
async def maintenance_request_list(
    request: HttpRequest, filters: Query[MaintenanceRequestFilters], page: Query[PageParams]
) -> dict[str, Any]:
    """The maintenance requests the caller may see, newest first."""
    requests = selectors.maintenance_request_list(
        caller=_caller(request),
        unit_id=filters.unitId,
        property_id=filters.propertyId,
        status=filters.status,
        priority=filters.priority,
        created_from=_aware(filters.createdFrom),
        created_to=_aware(filters.createdTo),
    )
    return await apaginate(requests, page, request_out)


@router.post("/maintenance-requests", response={201: MaintenanceRequestOut})
async def maintenance_request_create(request: HttpRequest, payload: MaintenanceRequestIn) -> Status:
    """File a request: a tenant for a unit of their active lease, staff for a unit of their property."""
    fields = _changes(payload, REQUEST_FIELDS | {"unitId": "unit_id", "tenantId": "tenant_id"})
    unit_id, tenant_id = fields.pop("unit_id"), fields.pop("tenant_id", None)
    fields.setdefault("priority", payload.priority)
    created = await sync_to_async(services.maintenance_request_create)(
        caller=_caller(request), unit_id=unit_id, tenant_id=tenant_id, fields=fields
    )
    return Status(201, request_out(created))


@router.get("/maintenance-requests/{request_id}", response=MaintenanceRequestOut)
async def maintenance_request_get(request: HttpRequest, request_id: UUID) -> MaintenanceRequestOut:
    found = await sync_to_async(selectors.access_maintenance_request)(caller=_caller(request), request_id=request_id)
    return request_out(found)


@router.patch("/maintenance-requests/{request_id}", response=MaintenanceRequestOut)
async def maintenance_request_update(
    request: HttpRequest, request_id: UUID, payload: MaintenanceRequestPatch
) -> MaintenanceRequestOut:
    """Change a request; moving it to `completed` sets `completedAt`."""
    updated = await sync_to_async(services.maintenance_request_update)(
        caller=_caller(request), request_id=request_id, changes=_changes(payload, REQUEST_FIELDS)
    )
    return request_out(updated)


@router.delete("/maintenance-requests/{request_id}", response=MaintenanceRequestOut)
async def maintenance_request_cancel(request: HttpRequest, request_id: UUID) -> MaintenanceRequestOut:
    """Cancel the request (it is kept, with status `cancelled`)."""
    cancelled = await sync_to_async(services.maintenance_request_cancel)(caller=_caller(request), request_id=request_id)
    return request_out(cancelled)


# --- images --------------------------------------------------------------------------------


def image_out(image: MaintenanceImage) -> MaintenanceImageOut:
    return MaintenanceImageOut(
        id=image.pk,
        requestId=image.request_id,
        imageUrl=image.image_url,
        uploadedAt=image.uploaded_at,
        isBefore=image.is_before,
    )


@router.get("/maintenance-requests/{request_id}/images", response=Page[MaintenanceImageOut])
async def maintenance_image_list(request: HttpRequest, request_id: UUID, page: Query[PageParams]) -> dict[str, Any]:
    def read() -> dict[str, Any]:
        found = selectors.access_maintenance_request(caller=_caller(request), request_id=request_id)
        return paginate(selectors.maintenance_image_list(request=found), page, image_out)

    return await sync_to_async(read)()


@router.post("/maintenance-requests/{request_id}/images", response={201: MaintenanceImageOut})
async def maintenance_image_add(request: HttpRequest, request_id: UUID, payload: MaintenanceImageIn) -> Status:
    image = await sync_to_async(services.maintenance_image_add)(
        caller=_caller(request), request_id=request_id, image_url=payload.imageUrl, is_before=payload.isBefore
    )
    return Status(201, image_out(image))


@router.delete("/maintenance-requests/{request_id}/images/{image_id}", response={204: None})
async def maintenance_image_delete(request: HttpRequest, request_id: UUID, image_id: UUID) -> Status:
    await sync_to_async(services.maintenance_image_delete)(
        caller=_caller(request), request_id=request_id, image_id=image_id
    )
    return Status(204, None)


# --- counts --------------------------------------------------------------------------------


@router.get("/properties/{property_id}/maintenance-counts", response=MaintenanceCountsOut)
async def maintenance_counts_get(request: HttpRequest, property_id: UUID) -> MaintenanceCountsOut:
    """The property's request counts from `maintenance:counts:{propertyId}` (read through, 5 min TTL)."""
    allowed = await sync_to_async(selectors.property_is_staffed_by)(caller=_caller(request), property_id=property_id)
    if not allowed:
        raise not_found()
    counts = await selectors.amaintenance_counts_get(property_id=property_id)
    return MaintenanceCountsOut(propertyId=property_id, **counts)


# --- vendors -------------------------------------------------------------------------------


def vendor_out(vendor: Vendor) -> VendorOut:
    return VendorOut(
        id=vendor.pk,
        companyName=vendor.company_name,
        contactName=vendor.contact_name,
        email=vendor.email,
        phone=vendor.phone,
        serviceCategory=vendor.service_category,
        isPreferred=vendor.is_preferred,
        notes=vendor.notes,
        insuranceExpiry=vendor.insurance_expiry,
        licenseNumber=vendor.license_number,
        createdAt=vendor.created_at,
        updatedAt=vendor.updated_at,
    )


@router.get("/vendors", response=Page[VendorOut])
async def vendor_list(request: HttpRequest, filters: Query[VendorFilters], page: Query[PageParams]) -> dict[str, Any]:
    """Vendors by company name (not for tenants: 403)."""
    vendors = selectors.vendor_list(
        caller=_caller(request), service_category=filters.serviceCategory, is_preferred=filters.isPreferred
    )
    return await apaginate(vendors, page, vendor_out)


@router.post("/vendors", response={201: VendorOut})
async def vendor_create(request: HttpRequest, payload: VendorIn) -> Status:
    vendor = await sync_to_async(services.vendor_create)(
        caller=_caller(request), fields={VENDOR_FIELDS[k]: v for k, v in payload.model_dump().items()}
    )
    return Status(201, vendor_out(vendor))


@router.get("/vendors/{vendor_id}", response=VendorOut)
async def vendor_get(request: HttpRequest, vendor_id: UUID) -> VendorOut:
    return vendor_out(await sync_to_async(selectors.access_vendor)(caller=_caller(request), vendor_id=vendor_id))


@router.patch("/vendors/{vendor_id}", response=VendorOut)
async def vendor_update(request: HttpRequest, vendor_id: UUID, payload: VendorPatch) -> VendorOut:
    vendor = await sync_to_async(services.vendor_update)(
        caller=_caller(request), vendor_id=vendor_id, changes=_changes(payload, VENDOR_FIELDS)
    )
    return vendor_out(vendor)


@router.delete("/vendors/{vendor_id}", response={204: None})
async def vendor_delete(request: HttpRequest, vendor_id: UUID) -> Status:
    """Delete a vendor without work orders (admins only; 409 when it has work orders)."""
    await sync_to_async(services.vendor_delete)(caller=_caller(request), vendor_id=vendor_id)
    return Status(204, None)


# --- work orders ---------------------------------------------------------------------------


def work_order_out(order: WorkOrder) -> WorkOrderOut:
    request = order.request
    return WorkOrderOut(
        id=order.pk,
        requestId=order.request_id,
        propertyId=request.unit.property_id if request is not None and request.unit is not None else None,
        vendorId=order.vendor_id,
        assignedBy=order.assigned_by_id,
        assignedAt=order.assigned_at,
        scheduledDate=order.scheduled_date,
        scheduledTimeStart=order.scheduled_time_start,
        scheduledTimeEnd=order.scheduled_time_end,
        status=order.status,
        completionNotes=order.completion_notes,
        completedAt=order.completed_at,
        invoiceAmount=_money(order.invoice_amount),
        invoicePaid=order.invoice_paid,
        invoicePaidDate=order.invoice_paid_date,
    )


@router.get("/work-orders", response=Page[WorkOrderOut])
async def work_order_list(
    request: HttpRequest, filters: Query[WorkOrderFilters], page: Query[PageParams]
) -> dict[str, Any]:
    """Work orders the caller may see, newest first (not for tenants: 403)."""
    orders = selectors.work_order_list(
        caller=_caller(request),
        request_id=filters.requestId,
        vendor_id=filters.vendorId,
        status=filters.status,
        scheduled_from=filters.scheduledFrom,
        scheduled_to=filters.scheduledTo,
    )
    return await apaginate(orders, page, work_order_out)


@router.post("/work-orders", response={201: WorkOrderOut})
async def work_order_create(request: HttpRequest, payload: WorkOrderIn) -> Status:
    """Assign a request to a vendor, or to a maintenance worker with `workerId` (staff of the request's
    property; `assignedBy` is the caller)."""
    fields = _changes(payload, WORK_ORDER_FIELDS | {"requestId": "request_id", "workerId": "worker_id"})
    fields.pop("request_id")
    vendor_id = fields.pop("vendor_id", None)
    worker_id = fields.pop("worker_id", None)
    fields.setdefault("status", payload.status)
    order = await sync_to_async(services.work_order_create)(
        caller=_caller(request), request_id=payload.requestId, vendor_id=vendor_id, worker_id=worker_id, fields=fields
    )
    return Status(201, work_order_out(order))


@router.get("/work-orders/{work_order_id}", response=WorkOrderOut)
async def work_order_get(request: HttpRequest, work_order_id: UUID) -> WorkOrderOut:
    order = await sync_to_async(selectors.access_work_order)(caller=_caller(request), work_order_id=work_order_id)
    return work_order_out(order)


@router.patch("/work-orders/{work_order_id}", response=WorkOrderOut)
async def work_order_update(request: HttpRequest, work_order_id: UUID, payload: WorkOrderPatch) -> WorkOrderOut:
    order = await sync_to_async(services.work_order_update)(
        caller=_caller(request), work_order_id=work_order_id, changes=_changes(payload, WORK_ORDER_FIELDS)
    )
    return work_order_out(order)


# --- maintenance workers ---------------------------------------------------------------------


@router.get("/maintenance-workers", response=MaintenanceWorkersOut)
async def maintenance_worker_list(request: HttpRequest) -> MaintenanceWorkersOut:
    """The maintenance workers (role `maintenance_staff`) with who is active now (a socket open:
    `maintenance:active:workers`) and their open work orders (landlords, property managers, admins)."""
    statuses = await selectors.amaintenance_worker_statuses(caller=_caller(request))
    items = [
        MaintenanceWorkerOut(
            id=status.worker.pk,
            firstName=status.worker.first_name,
            lastName=status.worker.last_name,
            email=status.worker.email,
            active=status.active,
            working=status.working,
            vendorId=status.vendor_id,
            workOrders=[WorkerOrderOut(id=o.pk, requestId=o.request_id, status=o.status) for o in status.work_orders],
        )
        for status in statuses
    ]
    return MaintenanceWorkersOut(items=items)
