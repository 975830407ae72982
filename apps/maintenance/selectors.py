"""Reads of the maintenance domain, always narrowed to what the caller may see.

Who sees what is the access policy's (apps/common/policy.py: `maintenance.view`,
`workorders.view`, `vendors.view` in the caller's scope): an admin everything; a landlord or
property manager the requests and work orders under the properties they own or manage; a
tenant their own requests (`tenant.user` is the caller). Reading of ours: a user holding the
role `maintenance_staff` (the platform's maintenance workforce, tracked globally in
`maintenance:active:workers`) sees every request and work order, since no column ties a
worker to a property. Vendors are a shared directory read by every holder of `vendors.view`.
Objects outside the caller's view raise `not_found`; collections a caller can never see
raise `forbidden`.
"""

from dataclasses import dataclass
from datetime import date, datetime
from typing import Any
from uuid import UUID

from asgiref.sync import sync_to_async
from django.db.models import Count, Q, QuerySet

from apps.accounts.models import User
from apps.accounts.services import Principal
from apps.common import policy
from apps.common.cache import aread_hash, decode_hash
from apps.common.visibility import not_found, tenant_user_q
from apps.maintenance.models import (
    MaintenanceImage,
    MaintenanceRequest,
    MaintenanceStatus,
    Priority,
    Vendor,
    WorkOrder,
)
from apps.properties.models import Property
from realtime import errors, keys
from realtime.connections import get_redis
from realtime.errors import ProtocolError
from realtime.workers import ActiveWorkers

MAINTENANCE_STAFF_ROLE = "maintenance_staff"
COUNTS_TTL_SECONDS = 5 * 60
COUNT_FIELDS: dict[str, type] = {
    "total": int,
    "emergency": int,
    "high": int,
    "medium": int,
    "low": int,
    "open": int,
    "inProgress": int,
}

VENDORS_FORBIDDEN = "Tenants have no access to vendors."
WORK_ORDERS_FORBIDDEN = "Tenants have no access to work orders."
WORKERS_FORBIDDEN = "Only landlords, property managers and admins may see the maintenance workers."
OPEN_WORK_ORDER_STATUSES = ("assigned", "scheduled", "in_progress")


def is_maintenance_worker(caller: Principal) -> bool:
    """The caller does maintenance work (`maintenance.work`: may move work orders along)."""
    return policy.allows(caller, "maintenance.work")


def forbidden(message: str) -> ProtocolError:
    return ProtocolError(errors.FORBIDDEN, message)


def property_is_staffed_by(*, caller: Principal, property_id: Any) -> bool:
    """The property is in the caller's `maintenance.manage` scope (an admin, or its owner or manager)."""
    q = policy.visible_q(caller, "maintenance.manage", property_path="")
    found = Property.objects.filter(pk=property_id)
    return (found if q is None else found.filter(q)).exists()


# --- maintenance requests ---------------------------------------------------------------


def maintenance_request_visible(*, caller: Principal) -> QuerySet[MaintenanceRequest]:
    """Every request the caller may read (`maintenance.view` in their scope)."""
    requests = MaintenanceRequest.objects.select_related("unit")
    q = policy.visible_q(
        caller, "maintenance.view", property_path="unit__property__", own=tenant_user_q(caller, "tenant__")
    )
    return requests if q is None else requests.filter(pk__in=MaintenanceRequest.objects.filter(q).values("pk"))


def maintenance_request_list(
    *,
    caller: Principal,
    unit_id: UUID | None = None,
    property_id: UUID | None = None,
    status: str | None = None,
    priority: str | None = None,
    created_from: datetime | None = None,
    created_to: datetime | None = None,
) -> QuerySet[MaintenanceRequest]:
    """Visible requests matching the filters, newest first (`createdTo` inclusive); 403 without `maintenance.view`."""
    policy.require(caller, "maintenance.view")
    requests = maintenance_request_visible(caller=caller)
    if unit_id is not None:
        requests = requests.filter(unit_id=unit_id)
    if property_id is not None:
        requests = requests.filter(unit__property_id=property_id)
    if status is not None:
        requests = requests.filter(status=status)
    if priority is not None:
        requests = requests.filter(priority=priority)
    if created_from is not None:
        requests = requests.filter(created_at__gte=created_from)
    if created_to is not None:
        requests = requests.filter(created_at__lte=created_to)
    return requests.order_by("-created_at", "-pk")


def access_maintenance_request(*, caller: Principal, request_id: UUID, for_update: bool = False) -> MaintenanceRequest:
    """The request if the caller may read it, else `not_found` (locked FOR UPDATE when asked, in a transaction)."""
    requests = maintenance_request_visible(caller=caller).filter(pk=request_id)
    if for_update:
        # The visibility filter joins other tables: lock only the request's own row.
        requests = (
            MaintenanceRequest.objects.select_for_update(of=("self",))
            .select_related("unit")
            .filter(pk__in=requests.values("pk"))
        )
    found = requests.first()
    if found is None:
        raise not_found()
    return found


def maintenance_request_is_managed_by(*, caller: Principal, request: MaintenanceRequest) -> bool:
    """The request's property is in the caller's `maintenance.manage` scope (may change status, priority, costs)."""
    if policy.sees_all(caller, "maintenance.manage"):
        return True
    if request.unit is None or request.unit.property_id is None:
        return False
    return property_is_staffed_by(caller=caller, property_id=request.unit.property_id)


def maintenance_image_list(*, request: MaintenanceRequest) -> QuerySet[MaintenanceImage]:
    return MaintenanceImage.objects.filter(request=request).order_by("uploaded_at", "pk")


# --- the maintenance:counts:{propertyId} cache ------------------------------------------


def maintenance_counts_from_db(*, property_id: Any) -> dict[str, int]:
    """The seed's counts hash from PostgreSQL (DESIGN.md: open = submitted + assigned, inProgress = in_progress).

    `total` and the priority counts cover every request of the property, whatever its status.
    """
    requests = MaintenanceRequest.objects.filter(unit__property_id=property_id)
    counted = requests.aggregate(
        total=Count("pk"),
        emergency=Count("pk", filter=Q(priority=Priority.EMERGENCY)),
        high=Count("pk", filter=Q(priority=Priority.HIGH)),
        medium=Count("pk", filter=Q(priority=Priority.MEDIUM)),
        low=Count("pk", filter=Q(priority=Priority.LOW)),
        open=Count("pk", filter=Q(status__in=[MaintenanceStatus.SUBMITTED, MaintenanceStatus.ASSIGNED])),
        inProgress=Count("pk", filter=Q(status=MaintenanceStatus.IN_PROGRESS)),
    )
    return {field: int(counted[field]) for field in COUNT_FIELDS}


async def amaintenance_counts_get(*, property_id: Any) -> dict[str, int]:
    """`maintenance:counts:{propertyId}` read through (TTL 5 min); PostgreSQL when Redis is down.

    Precondition: the caller checked that the property exists and may be seen.
    """

    async def load() -> dict[str, int]:
        return await sync_to_async(maintenance_counts_from_db)(property_id=property_id)

    raw = await aread_hash(keys.maintenance_counts(str(property_id)), COUNTS_TTL_SECONDS, load)
    return {field: value or 0 for field, value in decode_hash(raw, COUNT_FIELDS).items()}


# --- vendors -----------------------------------------------------------------------------


def vendor_list(
    *, caller: Principal, service_category: str | None = None, is_preferred: bool | None = None
) -> QuerySet[Vendor]:
    """Vendors by name; `forbidden` without `vendors.view` (tenants never see vendors)."""
    policy.require(caller, "vendors.view", VENDORS_FORBIDDEN)
    vendors = Vendor.objects.all()
    if service_category is not None:
        vendors = vendors.filter(service_category__iexact=service_category)
    if is_preferred is not None:
        vendors = vendors.filter(is_preferred=is_preferred)
    return vendors.order_by("company_name", "pk")


def access_vendor(*, caller: Principal, vendor_id: UUID) -> Vendor:
    policy.require_for_item(caller, "vendors.view")
    vendor = Vendor.objects.filter(pk=vendor_id).first()
    if vendor is None:
        raise not_found()
    return vendor


# --- work orders -------------------------------------------------------------------------


def work_order_visible(*, caller: Principal) -> QuerySet[WorkOrder]:
    orders = WorkOrder.objects.select_related("request__unit")
    q = policy.visible_q(caller, "workorders.view", property_path="request__unit__property__")
    return orders if q is None else orders.filter(pk__in=WorkOrder.objects.filter(q).values("pk"))


def work_order_list(
    *,
    caller: Principal,
    request_id: UUID | None = None,
    vendor_id: UUID | None = None,
    status: str | None = None,
    scheduled_from: date | None = None,
    scheduled_to: date | None = None,
) -> QuerySet[WorkOrder]:
    """Visible work orders matching the filters, newest assignment first; `forbidden` without
    `workorders.view` (tenants)."""
    policy.require(caller, "workorders.view", WORK_ORDERS_FORBIDDEN)
    orders = work_order_visible(caller=caller)
    if request_id is not None:
        orders = orders.filter(request_id=request_id)
    if vendor_id is not None:
        orders = orders.filter(vendor_id=vendor_id)
    if status is not None:
        orders = orders.filter(status=status)
    if scheduled_from is not None:
        orders = orders.filter(scheduled_date__gte=scheduled_from)
    if scheduled_to is not None:
        orders = orders.filter(scheduled_date__lte=scheduled_to)
    return orders.order_by("-assigned_at", "-pk")


def access_work_order(*, caller: Principal, work_order_id: UUID, for_update: bool = False) -> WorkOrder:
    orders = work_order_visible(caller=caller).filter(pk=work_order_id)
    if for_update:
        orders = (
            WorkOrder.objects.select_for_update(of=("self",))
            .select_related("request__unit")
            .filter(pk__in=orders.values("pk"))
        )
    found = orders.first()
    if found is None:
        raise not_found()
    return found


# --- maintenance workers -----------------------------------------------------------------


def maintenance_worker_list(*, caller: Principal) -> list[User]:
    """The active users holding the role `maintenance_staff`, by name; `forbidden` without
    `maintenance.manage` (whoever assigns work: landlords, property managers, admins). Workers are
    the platform's, not a property's (no column ties them to one), so every assigner sees all."""
    policy.require(caller, "maintenance.manage", WORKERS_FORBIDDEN)
    return list(
        User.objects.filter(is_active=True, roles__role_name=MAINTENANCE_STAFF_ROLE)
        .distinct()
        .order_by("first_name", "last_name", "pk")
    )


def worker_vendor_ids(*, emails: list[str]) -> dict[str, UUID]:
    """Lower-cased email -> the vendor record with that email (a worker's own record; the seed links
    vendors to no user, ours: the vendor's email is the user's, as notices.py reads it)."""
    found: dict[str, UUID] = {}
    if not emails:
        return found
    match = Q()
    for email in emails:
        match |= Q(email__iexact=email)
    rows = Vendor.objects.filter(match).order_by("created_at", "pk").values_list("pk", "email")
    for vendor_id, vendor_email in rows:
        if vendor_email:
            found.setdefault(vendor_email.lower(), vendor_id)
    return found


def open_work_orders_of_vendors(*, caller: Principal, vendor_ids: list[UUID]) -> list[WorkOrder]:
    """The caller's visible open work orders (assigned, scheduled, in progress) of these vendors."""
    return list(
        work_order_visible(caller=caller)
        .filter(vendor_id__in=vendor_ids, status__in=OPEN_WORK_ORDER_STATUSES)
        .order_by("-assigned_at", "-pk")
    )


@dataclass(frozen=True, slots=True)
class WorkerStatus:
    """One maintenance worker as an assigner sees them: online (a socket open now), working (an
    open work order of theirs is `in_progress`) and their open work orders, newest first."""

    worker: User
    vendor_id: UUID | None
    active: bool
    work_orders: list[WorkOrder]

    @property
    def working(self) -> bool:
        return any(order.status == "in_progress" for order in self.work_orders)


async def amaintenance_worker_statuses(*, caller: Principal) -> list[WorkerStatus]:
    """Every maintenance worker with who is online (`maintenance:active:workers`, one Redis read)
    and their open work orders the caller may see (three PostgreSQL reads); `forbidden` as
    `maintenance_worker_list`. A worker's work orders are those of the vendor record with their email."""

    def read() -> tuple[list[User], dict[str, UUID], list[WorkOrder]]:
        workers = maintenance_worker_list(caller=caller)
        vendors = worker_vendor_ids(emails=[worker.email for worker in workers])
        orders = open_work_orders_of_vendors(caller=caller, vendor_ids=list(vendors.values()))
        return workers, vendors, orders

    workers, vendors, orders = await sync_to_async(read)()
    active = await ActiveWorkers(get_redis()).members() if workers else set()
    by_vendor: dict[UUID | None, list[WorkOrder]] = {}
    for order in orders:
        by_vendor.setdefault(order.vendor_id, []).append(order)
    statuses = []
    for worker in workers:
        vendor_id = vendors.get(worker.email.lower())
        mine = by_vendor.get(vendor_id, []) if vendor_id is not None else []
        statuses.append(
            WorkerStatus(worker=worker, vendor_id=vendor_id, active=str(worker.pk) in active, work_orders=mine)
        )
    return statuses
