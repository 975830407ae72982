"""Reads of tenants, leases, lease tenants and lease documents, filtered by who may see them.

Who sees what (apps/common/visibility.py): an admin everything; a landlord or property
manager everything under the properties they own or manage; a tenant-type user their own
tenant records, their leases (any status) and what hangs off them, read-only. Objects
outside the caller's view answer 404 (`access_*` raise not_found), never 403.
"""

from datetime import date
from typing import Any, TypeVar

from django.db.models import Model, Q, QuerySet

from apps.common.visibility import Caller, not_found, property_staff_q, tenant_user_q
from apps.leasing.models import Lease, LeaseDocument, LeaseTenant, Tenant
from apps.properties.models import Unit
from realtime import errors
from realtime.errors import ProtocolError

M = TypeVar("M", bound=Model)

STAFF_TYPES = frozenset({"landlord", "property_manager"})
READ_ONLY = "Tenants have read-only access here; ask the property's landlord or manager."

# Field paths from each model to its property (staff scope) and to its tenants' users (tenant scope).
LEASE_PROPERTY = "unit__property__"
LEASE_TENANT_USER = "tenant_links__tenant__"
TENANT_PROPERTY = "lease_links__lease__unit__property__"


def require_staff(caller: Caller) -> None:
    """Writes are for admins, landlords and property managers; a tenant gets 403 (the object
    itself was never looked up, so nothing about it leaks)."""
    if not (caller.is_admin or caller.user_type in STAFF_TYPES):
        raise ProtocolError(errors.FORBIDDEN, READ_ONLY)


def scope_q(caller: Caller, *, staff_path: str, tenant_path: str | None) -> Q | None:
    """The filter of rows `caller` may read (None: all of them, for admins)."""
    if caller.is_admin:
        return None
    if caller.user_type in STAFF_TYPES:
        return property_staff_q(caller, staff_path)
    if caller.user_type == "tenant" and tenant_path is not None:
        return tenant_user_q(caller, tenant_path)
    return Q(pk__in=[])


def scoped(queryset: QuerySet[M], q: Q | None) -> QuerySet[M]:
    """`queryset` limited to the rows matching `q`, without duplicates from multi-valued joins."""
    if q is None:
        return queryset
    return queryset.filter(pk__in=queryset.model._default_manager.filter(q).values("pk"))


# Tenants


def tenant_scope_q(caller: Caller) -> Q | None:
    if caller.is_admin:
        return None
    if caller.user_type in STAFF_TYPES:
        return property_staff_q(caller, TENANT_PROPERTY)
    if caller.user_type == "tenant":
        return Q(user_id=caller.user_id)
    return Q(pk__in=[])


def tenant_list(*, caller: Caller, user_id: str | None = None) -> QuerySet[Tenant]:
    """Tenant records the caller may see, oldest first."""
    queryset = scoped(Tenant.objects.select_related("user"), tenant_scope_q(caller))
    if user_id is not None:
        queryset = queryset.filter(user_id=user_id)
    return queryset.order_by("created_at", "id")


def access_tenant(*, caller: Caller, tenant_id: str) -> Tenant:
    """The tenant record if the caller may see it; not_found otherwise."""
    tenant = tenant_list(caller=caller).filter(pk=tenant_id).first()
    if tenant is None:
        raise not_found()
    return tenant


# Leases


def lease_scope_q(caller: Caller) -> Q | None:
    return scope_q(caller, staff_path=LEASE_PROPERTY, tenant_path=LEASE_TENANT_USER)


def lease_list(
    *,
    caller: Caller,
    unit_id: str | None = None,
    property_id: str | None = None,
    status: str | None = None,
    start_from: date | None = None,
    start_to: date | None = None,
    end_from: date | None = None,
    end_to: date | None = None,
) -> QuerySet[Lease]:
    """Leases the caller may see, filtered (date bounds inclusive), newest start first."""
    queryset = scoped(Lease.objects.select_related("unit"), lease_scope_q(caller))
    filters: dict[str, Any] = {
        "unit_id": unit_id,
        "unit__property_id": property_id,
        "lease_status": status,
        "start_date__gte": start_from,
        "start_date__lte": start_to,
        "end_date__gte": end_from,
        "end_date__lte": end_to,
    }
    queryset = queryset.filter(**{key: value for key, value in filters.items() if value is not None})
    return queryset.order_by("-start_date", "-created_at", "id")


def access_lease(*, caller: Caller, lease_id: str) -> Lease:
    """The lease if the caller may see it; not_found otherwise."""
    lease = lease_list(caller=caller).filter(pk=lease_id).first()
    if lease is None:
        raise not_found()
    return lease


def lease_tenant_list(*, lease: Lease) -> list[LeaseTenant]:
    """The lease's tenant links (primary first), with their tenant records."""
    return list(
        LeaseTenant.objects.filter(lease=lease)
        .select_related("tenant", "tenant__user")
        .order_by("-is_primary", "created_at", "tenant_id")
    )


def lease_document_list(*, lease: Lease) -> QuerySet[LeaseDocument]:
    """The lease's documents, newest first."""
    return LeaseDocument.objects.filter(lease=lease).order_by("-uploaded_at", "id")


def access_lease_document(*, caller: Caller, lease_id: str, document_id: str) -> LeaseDocument:
    """A document of a lease the caller may see; not_found otherwise."""
    lease = access_lease(caller=caller, lease_id=lease_id)
    document = lease_document_list(lease=lease).filter(pk=document_id).first()
    if document is None:
        raise not_found()
    return document


# Units (the parent a lease is created under)


def access_unit_for_lease(*, caller: Caller, unit_id: str) -> Unit:
    """A unit whose property the caller owns or manages (any unit for admins); not_found otherwise."""
    q = None if caller.is_admin else property_staff_q(caller, "property__")
    unit = scoped(Unit.objects.all(), q).filter(pk=unit_id).first()
    if unit is None:
        raise not_found()
    return unit
