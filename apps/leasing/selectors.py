"""Reads of tenants, leases, lease tenants and lease documents, filtered by who may see them.

Who sees what is the access policy's (apps/common/policy.py): `leases.view` and
`tenants.view` in the caller's scope (an admin everything; a landlord or property manager
everything under the properties they own or manage; a tenant-type user their own tenant
records, their leases (any status) and what hangs off them, read-only). Writes need
`leases.manage` / `tenants.manage`. Objects outside the caller's view answer 404
(`access_*` raise not_found), never 403.
"""

from datetime import date
from typing import Any, TypeVar

from django.db.models import Model, Q, QuerySet

from apps.common import policy
from apps.common.visibility import Caller, not_found, tenant_user_q
from apps.leasing.models import Lease, LeaseDocument, LeaseTenant, Tenant
from apps.properties.models import Unit

M = TypeVar("M", bound=Model)

READ_ONLY = "Tenants have read-only access here; ask the property's landlord or manager."

# Field paths from each model to its property (staff scope) and to its tenants' users (tenant scope).
LEASE_PROPERTY = "unit__property__"
LEASE_TENANT_USER = "tenant_links__tenant__"
TENANT_PROPERTY = "lease_links__lease__unit__property__"


def require_staff(caller: Caller, permission: str = "leases.manage") -> None:
    """Writes need `permission` (`leases.manage` unless named) in some scope; without it, 403
    (the object itself was never looked up, so nothing about it leaks)."""
    policy.require(caller, permission, READ_ONLY)


def scope_q(caller: Caller, *, staff_path: str, tenant_path: str | None, permission: str = "leases.view") -> Q | None:
    """The filter of rows `caller` may act on under `permission` (None: all of them)."""
    own = tenant_user_q(caller, tenant_path) if tenant_path is not None else None
    return policy.visible_q(caller, permission, property_path=staff_path, own=own)


def scoped(queryset: QuerySet[M], q: Q | None) -> QuerySet[M]:
    """`queryset` limited to the rows matching `q`, without duplicates from multi-valued joins."""
    if q is None:
        return queryset
    return queryset.filter(pk__in=queryset.model._default_manager.filter(q).values("pk"))


# Tenants


def tenant_scope_q(caller: Caller, permission: str = "tenants.view") -> Q | None:
    return policy.visible_q(caller, permission, property_path=TENANT_PROPERTY, own=Q(user_id=caller.user_id))


def tenant_list(*, caller: Caller, user_id: str | None = None, permission: str = "tenants.view") -> QuerySet[Tenant]:
    """Tenant records the caller may see (or act on under `permission`), oldest first; 403 without it."""
    policy.require(caller, permission)
    queryset = scoped(Tenant.objects.select_related("user"), tenant_scope_q(caller, permission))
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


def lease_scope_q(caller: Caller, permission: str = "leases.view") -> Q | None:
    return scope_q(caller, staff_path=LEASE_PROPERTY, tenant_path=LEASE_TENANT_USER, permission=permission)


def lease_list(
    *,
    caller: Caller,
    permission: str = "leases.view",
    unit_id: str | None = None,
    property_id: str | None = None,
    status: str | None = None,
    start_from: date | None = None,
    start_to: date | None = None,
    end_from: date | None = None,
    end_to: date | None = None,
) -> QuerySet[Lease]:
    """Leases the caller may see (or act on under `permission`), filtered (date bounds inclusive),
    newest start first; 403 without `permission`."""
    policy.require(caller, permission)
    queryset = scoped(Lease.objects.select_related("unit"), lease_scope_q(caller, permission))
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


def access_lease(*, caller: Caller, lease_id: str, permission: str = "leases.view") -> Lease:
    """The lease if the caller may see it (or act on it under `permission`); not_found otherwise."""
    policy.require_for_item(caller, permission)
    lease = lease_list(caller=caller, permission=permission).filter(pk=lease_id).first()
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
    """A unit in the caller's `leases.manage` scope (staff: their properties'; admins: any); not_found otherwise."""
    q = policy.visible_q(caller, "leases.manage", property_path="property__")
    unit = scoped(Unit.objects.all(), q).filter(pk=unit_id).first()
    if unit is None:
        raise not_found()
    return unit
