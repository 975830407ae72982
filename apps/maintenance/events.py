"""Typed change events of maintenance, recorded in the outbox by the maintenance services.

`maintenance:updates:{propertyId}` carries `maintenance.created` / `maintenance.updated`
(a maintenance request) and `workorder.updated` (a work order of one of its requests).
The `record_*` functions are called by the service that makes the change, inside its
transaction and after the row is written. A request or work order that moves to another
property is announced on both boards (the service passes the property it left), so the
old one can drop it. One without a property (no unit) has no board: no event.
"""

from typing import Any

from apps.events.outbox import ChangeEvent, deleted_data, register_deleted, register_saved, wire_fields
from apps.maintenance.models import MaintenanceRequest, WorkOrder
from apps.properties.models import Unit
from realtime import topics


class MaintenanceCreated(ChangeEvent):
    name = "maintenance.created"


class MaintenanceUpdated(ChangeEvent):
    name = "maintenance.updated"


class WorkOrderUpdated(ChangeEvent):
    name = "workorder.updated"


def maintenance_request_data(request: MaintenanceRequest, *, property_id: Any) -> dict[str, Any]:
    return wire_fields(
        {
            "id": request.pk,
            "unitId": request.unit_id,
            "propertyId": property_id,
            "tenantId": request.tenant_id,
            "category": request.category,
            "priority": request.priority,
            "description": request.description,
            "status": request.status,
            "createdAt": request.created_at,
            "updatedAt": request.updated_at,
            "completedAt": request.completed_at,
            "isTenantCaused": request.is_tenant_caused,
            "estimatedCost": request.estimated_cost,
            "actualCost": request.actual_cost,
        }
    )


def work_order_data(order: WorkOrder, *, property_id: Any) -> dict[str, Any]:
    return wire_fields(
        {
            "id": order.pk,
            "requestId": order.request_id,
            "propertyId": property_id,
            "vendorId": order.vendor_id,
            "assignedBy": order.assigned_by_id,
            "assignedAt": order.assigned_at,
            "scheduledDate": order.scheduled_date,
            "scheduledTimeStart": order.scheduled_time_start,
            "scheduledTimeEnd": order.scheduled_time_end,
            "status": order.status,
            "completionNotes": order.completion_notes,
            "completedAt": order.completed_at,
            "invoiceAmount": order.invoice_amount,
            "invoicePaid": order.invoice_paid,
            "invoicePaidDate": order.invoice_paid_date,
        }
    )


def _boards(*property_ids: Any) -> tuple[str, ...]:
    return tuple(dict.fromkeys(topics.maintenance_updates(str(p)) for p in property_ids if p is not None))


def _unit_property_id(unit_id: Any) -> Any:
    if unit_id is None:
        return None
    return Unit.objects.filter(pk=unit_id).values_list("property_id", flat=True).first()


def _request_property_id(request_id: Any) -> Any:
    if request_id is None:
        return None
    return MaintenanceRequest.objects.filter(pk=request_id).values_list("unit__property_id", flat=True).first()


def request_property_id(request: MaintenanceRequest) -> Any:
    """The property of the request's unit as it is now: from the loaded unit, or one query."""
    if request.unit_id is not None and MaintenanceRequest.unit.is_cached(request):
        unit = request.unit
        if unit is not None and unit.pk == request.unit_id:
            return unit.property_id
    return _unit_property_id(request.unit_id)


# --- maintenance requests --------------------------------------------------------


def record_request_saved(request: MaintenanceRequest, *, created: bool, previous_property_id: Any = None) -> None:
    """`maintenance.created` / `.updated` with the request as saved, on its board and the one it left."""
    property_id = request_property_id(request)
    boards = _boards(property_id, previous_property_id)
    if boards:
        event = MaintenanceCreated if created else MaintenanceUpdated
        event(boards, maintenance_request_data(request, property_id=property_id)).send_on_commit()


def record_request_deleted(request: MaintenanceRequest) -> None:
    """`maintenance.updated` marking the request deleted (call before the row and its unit go)."""
    boards = _boards(_unit_property_id(request.unit_id))
    if boards:
        MaintenanceUpdated(boards, deleted_data(request.pk)).send_on_commit()


# --- work orders -------------------------------------------------------------------


def record_work_order_saved(order: WorkOrder, *, previous_property_id: Any = None) -> None:
    """`workorder.updated` with the order as saved, on its request's board and the one it left."""
    property_id = _request_property_id(order.request_id)
    boards = _boards(property_id, previous_property_id)
    if boards:
        WorkOrderUpdated(boards, work_order_data(order, property_id=property_id)).send_on_commit()


def record_work_order_deleted(order: WorkOrder) -> None:
    """`workorder.updated` marking the order deleted (call before the row and its request go)."""
    boards = _boards(_request_property_id(order.request_id))
    if boards:
        WorkOrderUpdated(boards, deleted_data(order.pk)).send_on_commit()


register_deleted(MaintenanceRequest, record_request_deleted)
register_deleted(WorkOrder, record_work_order_deleted)
register_saved(
    MaintenanceRequest,
    lambda request, created, previous: record_request_saved(
        request,
        created=created,
        previous_property_id=_unit_property_id(previous["unit_id"]) if "unit_id" in previous else None,
    ),
)
