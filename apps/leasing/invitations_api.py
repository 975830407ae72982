"""HTTP endpoints of lease invitations (mounted at /api/v1 by pms/api.py); apps/leasing/invitations.py
has the rules.

For the invited user: `GET /invitations` (theirs), `POST /invitations/{id}/accept` and
`/decline`; an invitation addressed to someone else answers 404, like an unknown id.
For the lease's landlord, managers and admins: `GET|POST /leases/{id}/invitations` and
`POST /leases/{id}/invitations/{invitationId}/revoke`.
Until it accepts, the invited user sees of the lease only what its invitation shows
(`lease`: property name, unit number, dates, rent), never the lease, unit, property,
documents or charges themselves.
"""

from datetime import date, datetime
from typing import Any
from uuid import UUID

from django.http import HttpRequest
from ninja import Query, Router, Schema, Status
from pydantic import Field

from apps.common.http import token_auth
from apps.common.pagination import Page, PageParams, apaginate
from apps.common.schemas import Income, call, money, principal, text
from apps.leasing import invitations, selectors
from apps.leasing.models import BackgroundCheckStatus, InvitationStatus, LeaseInvitation
from apps.leasing.schemas import Phone, SsnLastFour

router = Router(tags=["lease invitations"], auth=token_auth)


class TenantProfileIn(Schema):
    """The tenant record made when the invited user accepts and has none yet."""

    dateOfBirth: date
    ssnLastFour: SsnLastFour
    income: Income | None = None
    employmentStatus: text(50) | None = None  # type: ignore[valid-type]
    employerName: text(255) | None = None  # type: ignore[valid-type]
    emergencyContactName: text(255) | None = None  # type: ignore[valid-type]
    emergencyContactPhone: Phone | None = None


class StaffTenantProfileIn(TenantProfileIn):
    """As the tenant's own profile, plus the screening results only staff set."""

    backgroundCheckStatus: BackgroundCheckStatus = BackgroundCheckStatus.NOT_SUBMITTED
    creditCheckStatus: BackgroundCheckStatus = BackgroundCheckStatus.NOT_SUBMITTED


class InvitationIn(Schema):
    userId: UUID = Field(description="An active tenant-type user.")
    isPrimary: bool = Field(False, description="Becomes the primary tenant on accepting (the first tenant always is).")
    tenant: StaffTenantProfileIn | None = Field(
        None, description="Their tenant record, used only if they have none when accepting."
    )


class AcceptIn(Schema):
    tenant: TenantProfileIn | None = Field(
        None,
        description="Your tenant record, needed only if you have none and the invitation carries none"
        " (422 `body.payload.tenant` then); ignored if you have one.",
    )


class InvitationFilters(Schema):
    status: InvitationStatus | None = Field(
        None, description="`pending` lists unexpired ones; `expired` includes pending ones past expiresAt."
    )


class InvitationLeaseOut(Schema):
    id: UUID
    propertyName: str | None
    unitNumber: str | None
    startDate: date
    endDate: date
    monthlyRent: str = Field(description="Decimal as a string.")


class InvitationOut(Schema):
    id: UUID
    leaseId: UUID
    invitedUserId: UUID
    invitedBy: UUID | None
    invitedByName: str | None
    isPrimary: bool
    status: InvitationStatus = Field(description="As of now: a pending invitation past expiresAt is `expired`.")
    createdAt: datetime | None
    respondedAt: datetime | None
    expiresAt: datetime
    lease: InvitationLeaseOut = Field(description="What the invited user sees of the lease before accepting.")


def invitation_out(invitation: LeaseInvitation) -> dict[str, Any]:
    lease, inviter = invitation.lease, invitation.invited_by
    unit = lease.unit
    return {
        "id": invitation.pk,
        "leaseId": invitation.lease_id,
        "invitedUserId": invitation.invited_user_id,
        "invitedBy": invitation.invited_by_id,
        "invitedByName": None if inviter is None else f"{inviter.first_name} {inviter.last_name}".strip(),
        "isPrimary": bool(invitation.is_primary),
        "status": invitation.effective_status(invitations.now()),
        "createdAt": invitation.created_at,
        "respondedAt": invitation.responded_at,
        "expiresAt": invitation.expires_at,
        "lease": {
            "id": lease.pk,
            "propertyName": unit.property.property_name if unit is not None and unit.property else None,
            "unitNumber": unit.unit_number if unit is not None else None,
            "startDate": lease.start_date,
            "endDate": lease.end_date,
            "monthlyRent": money(lease.monthly_rent),
        },
    }


# The invited user


@router.get("/invitations", response=Page[InvitationOut])
async def invitations_mine(request: HttpRequest, filters: Query[InvitationFilters], page: Query[PageParams]) -> Any:
    """Lease invitations addressed to me, newest first."""
    status = filters.status.value if filters.status else None
    queryset = invitations.invitation_list_for_user(user_id=principal(request).user_id, status=status)
    return await apaginate(queryset, page, invitation_out)


@router.post("/invitations/{invitation_id}/accept", response=InvitationOut)
async def invitations_accept(request: HttpRequest, invitation_id: UUID, payload: AcceptIn | None = None) -> Any:
    """Accept my pending invitation: I join the lease (and get a tenant record if I had none).
    404 if it is not mine, 409 `conflict` if it is no longer pending (answered, revoked, expired)."""
    profile = payload.tenant.model_dump(mode="json") if payload is not None and payload.tenant else None
    invitation = await call(
        invitations.invitation_accept,
        invitation_id=str(invitation_id),
        user_id=principal(request).user_id,
        tenant_profile=profile,
    )
    return invitation_out(invitation)


@router.post("/invitations/{invitation_id}/decline", response=InvitationOut)
async def invitations_decline(request: HttpRequest, invitation_id: UUID) -> Any:
    """Decline my pending invitation; 404 if it is not mine, 409 `conflict` if no longer pending."""
    invitation = await call(
        invitations.invitation_decline, invitation_id=str(invitation_id), user_id=principal(request).user_id
    )
    return invitation_out(invitation)


# The lease's staff


@router.get("/leases/{lease_id}/invitations", response=Page[InvitationOut])
async def lease_invitations_list(
    request: HttpRequest, lease_id: UUID, filters: Query[InvitationFilters], page: Query[PageParams]
) -> Any:
    """The lease's invitations, newest first (landlord, managers and admins; a tenant gets 403)."""
    caller = principal(request)
    selectors.require_staff(caller)
    lease = await call(selectors.access_lease, caller=caller, lease_id=str(lease_id))
    status = filters.status.value if filters.status else None
    return await apaginate(invitations.invitation_list_for_lease(lease=lease, status=status), page, invitation_out)


@router.post("/leases/{lease_id}/invitations", response={201: InvitationOut})
async def lease_invitations_create(request: HttpRequest, lease_id: UUID, payload: InvitationIn) -> Status:
    """Invite a tenant-type user onto the lease; they join only by accepting (and are notified).
    422 `body.payload.userId` for a user who is not an active tenant; 409 `conflict` if they are
    on the lease already or hold a pending invitation to it."""
    caller = principal(request)
    selectors.require_staff(caller)
    lease = await call(selectors.access_lease, caller=caller, lease_id=str(lease_id))
    invitation = await call(
        invitations.invitation_create,
        lease=lease,
        user_id=str(payload.userId),
        invited_by_id=caller.user_id,
        is_primary=payload.isPrimary,
        tenant_profile=payload.tenant.model_dump(mode="json") if payload.tenant else None,
    )
    return Status(201, invitation_out(invitation))


@router.post("/leases/{lease_id}/invitations/{invitation_id}/revoke", response=InvitationOut)
async def lease_invitations_revoke(request: HttpRequest, lease_id: UUID, invitation_id: UUID) -> Any:
    """Withdraw a pending invitation of the lease; 409 `conflict` if it is no longer pending."""
    caller = principal(request)
    selectors.require_staff(caller)
    lease = await call(selectors.access_lease, caller=caller, lease_id=str(lease_id))
    invitation = await call(invitations.access_lease_invitation, lease=lease, invitation_id=str(invitation_id))
    return invitation_out(await call(invitations.invitation_revoke, invitation=invitation))
