"""Notifications of the maintenance domain (docs/notifications.md), raised by its services.

Each function is called inside the service's transaction, after the row is written, and
records its notices with `notify_on_commit` (delivered exactly once after the commit). The
person who made the change is never notified of it. Who hears of what:
- a request filed: the property's landlord (its owner) and its managers;
- a request assigned, its status changed, completed: the tenant who filed it (the tenant's user);
- a work order assigned to a vendor (created with one, or moved to another): the vendor's user,
  if the vendor has one. The seed links vendors to no user; ours: the active user whose email
  is the vendor's email (case-insensitive).
"""

from typing import Any

from apps.accounts.models import User
from apps.events.notices import Notice, notify_on_commit
from apps.maintenance.models import MaintenanceRequest, MaintenanceStatus, Priority, WorkOrder
from apps.properties.models import Property, PropertyManager

API = "/api/v1"
REFERENCE_REQUEST = "maintenance_request"
REFERENCE_WORK_ORDER = "work_order"

NOTICE_REQUEST_CREATED = "maintenance_request_created"
NOTICE_REQUEST_ASSIGNED = "maintenance_request_assigned"
NOTICE_REQUEST_STATUS = "maintenance_request_status_changed"
NOTICE_REQUEST_COMPLETED = "maintenance_request_completed"
NOTICE_WORK_ORDER_ASSIGNED = "work_order_assigned"

_URGENT = frozenset({Priority.HIGH, Priority.EMERGENCY})


def _priority(request: MaintenanceRequest | None, default: str = "medium") -> str:
    return "high" if request is not None and request.priority in _URGENT else default


def _place(request: MaintenanceRequest) -> str:
    unit = request.unit
    if unit is None or unit.property_id is None:
        return "a unit"
    prop = Property.objects.filter(pk=unit.property_id).values_list("property_name", flat=True).first()
    return f"unit {unit.unit_number} of {prop}" if prop else f"unit {unit.unit_number}"


def _request_action(request: MaintenanceRequest) -> tuple[dict[str, str], ...]:
    return ({"label": "View request", "url": f"{API}/maintenance-requests/{request.pk}", "type": "link"},)


def _request_notice(
    request: MaintenanceRequest, user_id: Any, type: str, title: str, message: str, priority: str
) -> Notice:
    return Notice(
        user_id=str(user_id),
        type=type,
        title=title,
        message=message,
        reference_id=str(request.pk),
        reference_type=REFERENCE_REQUEST,
        priority=priority,
        actions=_request_action(request),
    )


def _staff_of(request: MaintenanceRequest) -> list[str]:
    """The landlord and managers of the request's property, each once, owner first."""
    if request.unit is None or request.unit.property_id is None:
        return []
    property_id = request.unit.property_id
    owner = Property.objects.filter(pk=property_id).values_list("owner_id", flat=True).first()
    managers = PropertyManager.objects.filter(property_id=property_id).order_by("created_at", "pk")
    users = ([owner] if owner is not None else []) + list(managers.values_list("user_id", flat=True))
    return [str(user) for user in dict.fromkeys(users)]


def _tenant_user(request: MaintenanceRequest) -> str | None:
    if request.tenant_id is None:
        return None
    tenant = request.tenant
    return None if tenant is None or tenant.user_id is None else str(tenant.user_id)


def request_created(request: MaintenanceRequest, *, actor_id: Any) -> None:
    """A request was filed: tell the property's landlord and managers."""
    title = "New maintenance request"
    message = f"{request.category}: {request.description[:200]} ({_place(request)})."
    priority = _priority(request)
    notify_on_commit(
        *(
            _request_notice(request, user, NOTICE_REQUEST_CREATED, title, message, priority)
            for user in _staff_of(request)
            if user != str(actor_id)
        )
    )


def request_status_changed(request: MaintenanceRequest, *, previous: str | None, actor_id: Any) -> None:
    """The request's status moved (`previous` -> now): tell the tenant who filed it."""
    if request.status == previous:
        return
    user = _tenant_user(request)
    if user is None or user == str(actor_id):
        return
    place = _place(request)
    if request.status == MaintenanceStatus.ASSIGNED:
        notice = _request_notice(
            request,
            user,
            NOTICE_REQUEST_ASSIGNED,
            "Your maintenance request was assigned",
            f"Your {request.category} request for {place} was assigned and will be scheduled.",
            _priority(request),
        )
    elif request.status == MaintenanceStatus.COMPLETED:
        notice = _request_notice(
            request,
            user,
            NOTICE_REQUEST_COMPLETED,
            "Your maintenance request is completed",
            f"Your {request.category} request for {place} is completed.",
            "medium",
        )
    else:
        label = MaintenanceStatus(request.status).label.lower() if request.status else "unknown"
        notice = _request_notice(
            request,
            user,
            NOTICE_REQUEST_STATUS,
            "Your maintenance request changed",
            f"Your {request.category} request for {place} is now {label}.",
            _priority(request, "low"),
        )
    notify_on_commit(notice)


def _vendor_user(order: WorkOrder) -> str | None:
    vendor = order.vendor
    if vendor is None or not vendor.email:
        return None
    user = User.objects.filter(email__iexact=vendor.email, is_active=True).values_list("pk", flat=True).first()
    return None if user is None else str(user)


def work_order_assigned(order: WorkOrder, *, previous_vendor_id: Any, actor_id: Any) -> None:
    """The work order has a vendor it did not have before: tell the vendor's user, if any."""
    if order.vendor_id is None or order.vendor_id == previous_vendor_id:
        return
    user = _vendor_user(order)
    if user is None or user == str(actor_id):
        return
    request = order.request
    what = f"{request.category} at {_place(request)}" if request is not None else "a maintenance job"
    when = f" on {order.scheduled_date.isoformat()}" if order.scheduled_date else ""
    notify_on_commit(
        Notice(
            user_id=user,
            type=NOTICE_WORK_ORDER_ASSIGNED,
            title="New work order",
            message=f"You were assigned a work order: {what}{when}.",
            reference_id=str(order.pk),
            reference_type=REFERENCE_WORK_ORDER,
            priority=_priority(request),
            actions=({"label": "View work order", "url": f"{API}/work-orders/{order.pk}", "type": "link"},),
        )
    )
