"""Typed change events of maintenance, published on commit through the outbox.

`maintenance:updates:{propertyId}` carries `maintenance.created` / `maintenance.updated`
(a maintenance request) and `workorder.updated` (a work order of one of its requests).
The receivers run for every ORM save and delete, inside the change's transaction. A
request or work order that moves to another property is announced on both boards, so
the old one can drop it. One without a property (no unit) has no board: no event.
"""

from typing import Any

from django.db.models.signals import post_delete, post_save, pre_delete, pre_save
from django.dispatch import receiver

from apps.maintenance.models import MaintenanceRequest, WorkOrder
from apps.events.outbox import ChangeEvent, deleted_data, wire_fields
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


def _unit_property_id(unit_id: Any, using: str) -> Any:
    if unit_id is None:
        return None
    return Unit.objects.using(using).filter(pk=unit_id).values_list("property_id", flat=True).first()


def _request_property_id(request_id: Any, using: str) -> Any:
    if request_id is None:
        return None
    return (
        MaintenanceRequest.objects.using(using)
        .filter(pk=request_id)
        .values_list("unit__property_id", flat=True)
        .first()
    )


# --- maintenance requests --------------------------------------------------------


def _request_property_now(instance: MaintenanceRequest, using: str) -> Any:
    """The property of the request's unit as saved: from pre_save's read, the loaded unit, or a query."""
    previous = getattr(instance, "_outbox_previous", None)
    if previous is not None and previous[0] == instance.unit_id:
        return previous[1]
    if instance.unit_id is not None and MaintenanceRequest.unit.is_cached(instance):  # type: ignore[attr-defined]
        unit = instance.unit
        if unit is not None and unit.pk == instance.unit_id:
            return unit.property_id
    return _unit_property_id(instance.unit_id, using)


@receiver(pre_save, sender=MaintenanceRequest)
def remember_request_parent(sender: type, instance: MaintenanceRequest, raw: bool, using: str, **kwargs: Any) -> None:
    previous = None
    if not raw and not instance._state.adding:
        previous = (
            MaintenanceRequest.objects.using(using)
            .filter(pk=instance.pk)
            .values_list("unit_id", "unit__property_id")
            .first()
        )
    instance._outbox_previous = previous  # type: ignore[attr-defined]


@receiver(post_save, sender=MaintenanceRequest)
def request_saved(
    sender: type, instance: MaintenanceRequest, created: bool, raw: bool, using: str, **kwargs: Any
) -> None:
    if raw:
        return
    previous = getattr(instance, "_outbox_previous", None)
    property_id = _request_property_now(instance, using)
    boards = _boards(property_id, previous[1] if previous else None)
    if boards:
        event = MaintenanceCreated if created else MaintenanceUpdated
        event(boards, maintenance_request_data(instance, property_id=property_id)).send_on_commit(using=using)


@receiver(pre_delete, sender=MaintenanceRequest)
def remember_deleted_request(sender: type, instance: MaintenanceRequest, using: str, **kwargs: Any) -> None:
    instance._outbox_boards = _boards(_unit_property_id(instance.unit_id, using))  # type: ignore[attr-defined]


@receiver(post_delete, sender=MaintenanceRequest)
def request_deleted(sender: type, instance: MaintenanceRequest, using: str, **kwargs: Any) -> None:
    boards = getattr(instance, "_outbox_boards", ())
    if boards:
        MaintenanceUpdated(boards, deleted_data(instance.pk)).send_on_commit(using=using)


# --- work orders -------------------------------------------------------------------


@receiver(pre_save, sender=WorkOrder)
def remember_work_order_parent(sender: type, instance: WorkOrder, raw: bool, using: str, **kwargs: Any) -> None:
    previous = None
    if not raw and not instance._state.adding:
        previous = (
            WorkOrder.objects.using(using)
            .filter(pk=instance.pk)
            .values_list("request_id", "request__unit__property_id")
            .first()
        )
    instance._outbox_previous = previous  # type: ignore[attr-defined]


@receiver(post_save, sender=WorkOrder)
def work_order_saved(sender: type, instance: WorkOrder, raw: bool, using: str, **kwargs: Any) -> None:
    if raw:
        return
    previous = getattr(instance, "_outbox_previous", None)
    if previous is not None and previous[0] == instance.request_id:
        property_id = previous[1]
    else:
        property_id = _request_property_id(instance.request_id, using)
    boards = _boards(property_id, previous[1] if previous else None)
    if boards:
        WorkOrderUpdated(boards, work_order_data(instance, property_id=property_id)).send_on_commit(using=using)


@receiver(pre_delete, sender=WorkOrder)
def remember_deleted_work_order(sender: type, instance: WorkOrder, using: str, **kwargs: Any) -> None:
    instance._outbox_boards = _boards(_request_property_id(instance.request_id, using))  # type: ignore[attr-defined]


@receiver(post_delete, sender=WorkOrder)
def work_order_deleted(sender: type, instance: WorkOrder, using: str, **kwargs: Any) -> None:
    boards = getattr(instance, "_outbox_boards", ())
    if boards:
        WorkOrderUpdated(boards, deleted_data(instance.pk)).send_on_commit(using=using)
