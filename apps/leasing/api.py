"""HTTP endpoints of tenants, leases, lease tenants and lease documents (mounted at /api/v1 by pms/api.py).

Reads follow apps/leasing/selectors.py (forbidden objects answer 404); writes are for
admins, landlords and property managers of the property (a tenant gets 403).
DELETE /leases/{id} terminates (history kept); DELETE /tenants/{id} removes a record only
while it is on no lease other than drafts (409 otherwise, history kept).
Tenants join a lease by invitation (apps/leasing/invitations_api.py): for landlords and
managers, POST /tenants with `leaseId` invites (202) and PUT /leases/{id}/tenants adds no one;
admins may attach directly.
Shapes are in apps/leasing/schemas.py.
"""

from typing import Any
from uuid import UUID

from django.http import HttpRequest
from ninja import Query, Router, Status

from apps.accounts.services import Principal
from apps.common.http import token_auth
from apps.common.pagination import Page, PageParams, apaginate
from apps.common.schemas import call, principal
from apps.common.validation import invalid
from apps.leasing import invitations, selectors, services
from apps.leasing.invitations_api import InvitationOut, invitation_out
from apps.leasing.models import LeaseTenant
from apps.leasing.schemas import (
    REQUIRED_FOR_STAFF,
    TENANT_FIELDS,
    LeaseDocumentIn,
    LeaseDocumentOut,
    LeaseFilters,
    LeaseIn,
    LeaseOut,
    LeasePatch,
    LeaseTenantsIn,
    LeaseTenantsOut,
    TenantFilters,
    TenantIn,
    TenantOut,
    TenantPatch,
    lease_document_out,
    lease_out,
    lease_tenant_out,
    tenant_out,
)

router = Router(tags=["leasing"], auth=token_auth)


# Tenants


@router.get("/tenants", response=Page[TenantOut])
async def tenants_list(request: HttpRequest, filters: Query[TenantFilters], page: Query[PageParams]) -> Any:
    """Tenant records the caller may see: staff those on leases of their properties, a tenant their own."""
    user_id = str(filters.userId) if filters.userId else None
    return await apaginate(selectors.tenant_list(caller=principal(request), user_id=user_id), page, tenant_out)


@router.post("/tenants", response={201: TenantOut, 202: InvitationOut})
async def tenants_create(request: HttpRequest, payload: TenantIn) -> Status:
    """Landlords and managers: invite a tenant-type user onto one of their leases (`leaseId`
    required); answers 202 with the invitation, and the tenant record (from this body, if the
    user has none) and the lease link are made only when the user accepts it
    (`POST /invitations/{id}/accept`). Admins: create the tenant record at once (201), on
    `leaseId` if given, without an invitation."""
    caller = principal(request)
    selectors.require_staff(caller, "tenants.manage")
    lease = None
    if payload.leaseId is not None:
        lease = await call(selectors.access_lease, caller=caller, lease_id=str(payload.leaseId))
    elif not invitations.attaches_directly(caller):
        raise invalid("leaseId", REQUIRED_FOR_STAFF)
    if lease is not None and not invitations.attaches_directly(caller):
        invitation = await call(
            invitations.invitation_create,
            lease=lease,
            user_id=str(payload.userId),
            invited_by_id=caller.user_id,
            is_primary=payload.isPrimary,
            tenant_profile=payload.model_dump(mode="json", include=set(invitations.PROFILE_FIELDS)),
        )
        return Status(202, invitation_out(invitation))
    fields = {
        TENANT_FIELDS[name]: getattr(value, "value", value)
        for name, value in payload.model_dump(exclude={"userId", "leaseId", "isPrimary"}).items()
    }
    tenant = await call(
        services.tenant_create, user_id=str(payload.userId), lease=lease, is_primary=payload.isPrimary, **fields
    )
    return Status(201, tenant_out(tenant))


@router.get("/tenants/{tenant_id}", response=TenantOut)
async def tenants_get(request: HttpRequest, tenant_id: UUID) -> Any:
    """One tenant record the caller may see."""
    return tenant_out(await call(selectors.access_tenant, caller=principal(request), tenant_id=str(tenant_id)))


@router.patch("/tenants/{tenant_id}", response=TenantOut)
async def tenants_update(request: HttpRequest, tenant_id: UUID, payload: TenantPatch) -> Any:
    """Change a tenant record (staff of one of its leases' properties, or admin)."""
    caller = principal(request)
    selectors.require_staff(caller, "tenants.manage")
    tenant = await call(selectors.access_tenant, caller=caller, tenant_id=str(tenant_id))
    return tenant_out(await call(services.tenant_update, tenant=tenant, changes=payload.changes()))


@router.delete("/tenants/{tenant_id}", response={204: None})
async def tenants_delete(request: HttpRequest, tenant_id: UUID) -> Status:
    """Delete a tenant record that is on no lease but drafts; 409 when on an active or past lease."""
    caller = principal(request)
    selectors.require_staff(caller, "tenants.manage")
    tenant = await call(selectors.access_tenant, caller=caller, tenant_id=str(tenant_id))
    await call(services.tenant_delete, tenant=tenant)
    return Status(204, None)


# Leases


def _text_or_none(value: Any) -> Any:
    return None if value is None else str(value)


@router.get("/leases", response=Page[LeaseOut])
async def leases_list(request: HttpRequest, filters: Query[LeaseFilters], page: Query[PageParams]) -> Any:
    """Leases the caller may see, newest start first; date bounds are inclusive."""
    queryset = selectors.lease_list(
        caller=principal(request),
        unit_id=_text_or_none(filters.unitId),
        property_id=_text_or_none(filters.propertyId),
        status=filters.status.value if filters.status else None,
        start_from=filters.startFrom,
        start_to=filters.startTo,
        end_from=filters.endFrom,
        end_to=filters.endTo,
    )
    return await apaginate(queryset, page, lease_out)


@router.post("/leases", response={201: LeaseOut})
async def leases_create(request: HttpRequest, payload: LeaseIn) -> Status:
    """Create a lease on a unit of the caller's property; 409 if active while the unit has an active lease."""
    caller = principal(request)
    selectors.require_staff(caller)
    unit = await call(selectors.access_unit_for_lease, caller=caller, unit_id=str(payload.unitId))
    lease = await call(
        services.lease_create,
        unit=unit,
        start_date=payload.startDate,
        end_date=payload.endDate,
        monthly_rent=payload.monthlyRent,
        security_deposit=payload.securityDeposit,
        lease_status=payload.leaseStatus,
        lease_document_url=payload.leaseDocumentUrl,
        is_signed=payload.isSigned,
        special_terms=payload.specialTerms,
        auto_renewal=payload.autoRenewal,
    )
    lease.unit = unit
    return Status(201, lease_out(lease))


@router.get("/leases/{lease_id}", response=LeaseOut)
async def leases_get(request: HttpRequest, lease_id: UUID) -> Any:
    """One lease the caller may see."""
    return lease_out(await call(selectors.access_lease, caller=principal(request), lease_id=str(lease_id)))


@router.patch("/leases/{lease_id}", response=LeaseOut)
async def leases_update(request: HttpRequest, lease_id: UUID, payload: LeasePatch) -> Any:
    """Change a lease; status moves draft -> active/terminated, active -> expired/terminated/renewed,
    expired -> renewed (409 otherwise, and 409 when activating beside another active lease)."""
    caller = principal(request)
    selectors.require_staff(caller)
    lease = await call(selectors.access_lease, caller=caller, lease_id=str(lease_id))
    updated = await call(services.lease_update, lease=lease, changes=payload.changes())
    updated.unit = lease.unit
    return lease_out(updated)


@router.delete("/leases/{lease_id}", response={204: None})
async def leases_terminate(request: HttpRequest, lease_id: UUID) -> Status:
    """Terminate the lease (status `terminated`; the row, its tenants and transactions stay)."""
    caller = principal(request)
    selectors.require_staff(caller)
    lease = await call(selectors.access_lease, caller=caller, lease_id=str(lease_id))
    await call(services.lease_terminate, lease=lease)
    return Status(204, None)


# Lease tenants


@router.get("/leases/{lease_id}/tenants", response=LeaseTenantsOut)
async def lease_tenants_list(request: HttpRequest, lease_id: UUID) -> Any:
    """The tenants on a lease the caller may see, primary first."""
    lease = await call(selectors.access_lease, caller=principal(request), lease_id=str(lease_id))
    links = await call(selectors.lease_tenant_list, lease=lease)
    return {"items": [lease_tenant_out(link) for link in links]}


def _set_lease_tenants(*, caller: Principal, lease_id: str, payload: LeaseTenantsIn) -> list[LeaseTenant]:
    lease = selectors.access_lease(caller=caller, lease_id=lease_id)
    ids = [str(entry.tenantId) for entry in payload.tenants]
    tenants = list(selectors.tenant_list(caller=caller).filter(pk__in=ids))
    specs = [services.LeaseTenantSpec(str(entry.tenantId), entry.isPrimary) for entry in payload.tenants]
    if not invitations.attaches_directly(caller) and len(tenants) == len(specs):
        invitations.require_no_newcomers(lease=lease, specs=specs)
    services.lease_tenants_set(lease=lease, tenants=tenants, specs=specs)
    return selectors.lease_tenant_list(lease=lease)


@router.put("/leases/{lease_id}/tenants", response=LeaseTenantsOut)
async def lease_tenants_set(request: HttpRequest, lease_id: UUID, payload: LeaseTenantsIn) -> Any:
    """Replace the lease's tenants (exactly one primary); each tenant must be visible to the caller
    (404 otherwise). Landlords and managers keep, drop or re-rank the tenants on the lease; one not
    on it yet answers 422 (`body.payload.tenants.<i>.tenantId`): invite them
    (`POST /leases/{id}/invitations`), they join when they accept. Admins may add anyone directly."""
    caller = principal(request)
    selectors.require_staff(caller)
    links = await call(_set_lease_tenants, caller=caller, lease_id=str(lease_id), payload=payload)
    return {"items": [lease_tenant_out(link) for link in links]}


# Lease documents


@router.get("/leases/{lease_id}/documents", response=Page[LeaseDocumentOut])
async def lease_documents_list(request: HttpRequest, lease_id: UUID, page: Query[PageParams]) -> Any:
    """Documents of a lease the caller may see, newest first."""
    lease = await call(selectors.access_lease, caller=principal(request), lease_id=str(lease_id))
    return await apaginate(selectors.lease_document_list(lease=lease), page, lease_document_out)


@router.post("/leases/{lease_id}/documents", response={201: LeaseDocumentOut})
async def lease_documents_create(request: HttpRequest, lease_id: UUID, payload: LeaseDocumentIn) -> Status:
    """Record a document (by URL) on the lease; uploadedBy is the caller."""
    caller = principal(request)
    selectors.require_staff(caller)
    lease = await call(selectors.access_lease, caller=caller, lease_id=str(lease_id))
    document = await call(
        services.lease_document_create,
        lease=lease,
        uploaded_by_id=caller.user_id,
        document_type=payload.documentType,
        document_url=payload.documentUrl,
        is_signed=payload.isSigned,
        signed_at=payload.signedAt,
    )
    return Status(201, lease_document_out(document))


@router.delete("/leases/{lease_id}/documents/{document_id}", response={204: None})
async def lease_documents_delete(request: HttpRequest, lease_id: UUID, document_id: UUID) -> Status:
    """Remove a document record from the lease."""
    caller = principal(request)
    selectors.require_staff(caller)
    document = await call(
        selectors.access_lease_document, caller=caller, lease_id=str(lease_id), document_id=str(document_id)
    )
    await call(services.lease_document_delete, document=document)
    return Status(204, None)
