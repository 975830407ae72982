"""Lease invitations: a tenant-type user joins a lease only by accepting an invitation.

Writes (`invitation_create`, `invitation_accept`, `invitation_decline`, `invitation_revoke`)
and reads (`invitation_list_*`, `access_*`) of `lease_invitations`. Guarantees:
- inviting writes no `lease_tenants` row: the invited user sees nothing of the lease, its
  unit, property, documents or charges until they accept (visibility follows `lease_tenants`);
- accepting creates the user's tenant record if they have none and the `lease_tenants` row,
  in one transaction with the status change (through `services.lease_tenant_attach`);
- one pending invitation per lease and user (409 `conflict` for a second one, and for a user
  already on the lease); only a pending, unexpired invitation can be answered or revoked
  (409 otherwise); an invitation addressed to someone else answers 404, like an unknown id;
- the invited user is notified when invited, the inviter when the invitation is accepted
  or declined, after the transaction commits (apps/events/notices.py).
Locks are taken lease row first, then the invitation, then the user, everywhere.
Callers check who may act on the lease (`selectors.require_staff` / `access_lease`) first.
"""

from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Any

from django.conf import settings
from django.db import transaction
from django.db.models import Q, QuerySet
from django.utils import timezone

from apps.accounts.models import User, UserType
from apps.common import policy
from apps.common.validation import invalid
from apps.common.visibility import not_found
from apps.events.notices import Notice, notify_on_commit
from apps.leasing import services
from apps.leasing.models import InvitationStatus, Lease, LeaseInvitation, LeaseTenant, Tenant
from realtime import errors
from realtime.errors import ProtocolError

ALREADY_ON_LEASE = "The user is already a tenant on this lease."
ALREADY_INVITED = "The user already has a pending invitation to this lease."
NOT_PENDING = "The invitation is {status}; only a pending invitation can be answered or revoked."
NO_LONGER_A_TENANT = "Only an active tenant-type user can join a lease."
PROFILE_REQUIRED = "required: you have no tenant record yet (give at least dateOfBirth and ssnLastFour)"

NOTICE_INVITED = "lease_invitation"
NOTICE_ACCEPTED = "lease_invitation_accepted"
NOTICE_DECLINED = "lease_invitation_declined"
REFERENCE_TYPE = "lease_invitation"

# Tenant-record fields of a profile (the API's camelCase names) -> model fields.
PROFILE_FIELDS = {
    "dateOfBirth": "date_of_birth",
    "ssnLastFour": "ssn_last_four",
    "income": "income",
    "employmentStatus": "employment_status",
    "employerName": "employer_name",
    "emergencyContactName": "emergency_contact_name",
    "emergencyContactPhone": "emergency_contact_phone",
    "backgroundCheckStatus": "background_check_status",
    "creditCheckStatus": "credit_check_status",
}


def attaches_directly(caller: policy.Subject) -> bool:
    """Whether `caller` puts tenants on leases without their consent: only who holds `tenants.manage`
    over every tenant (admins, apps/common/policy.py); landlords and managers invite instead."""
    return policy.sees_all(caller, "tenants.manage")


def now() -> datetime:
    """The clock of invitations (tests move it)."""
    return timezone.now()


def ttl() -> timedelta:
    """How long an invitation waits for an answer: `LEASE_INVITATION_TTL_SECONDS` (default 7 days)."""
    return timedelta(seconds=settings.LEASE_INVITATION_TTL_SECONDS)


# Reads


def _expired_q(at: datetime) -> Q:
    return Q(status=InvitationStatus.EXPIRED) | Q(status=InvitationStatus.PENDING, expires_at__lte=at)


def _with_status(queryset: QuerySet[LeaseInvitation], status: str | None, at: datetime) -> QuerySet[LeaseInvitation]:
    """Filter by effective status: pending means unexpired, expired includes pending ones past expiry."""
    if status is None:
        return queryset
    if status == InvitationStatus.PENDING:
        return queryset.filter(status=InvitationStatus.PENDING, expires_at__gt=at)
    if status == InvitationStatus.EXPIRED:
        return queryset.filter(_expired_q(at))
    return queryset.filter(status=status)


def _related(queryset: QuerySet[LeaseInvitation]) -> QuerySet[LeaseInvitation]:
    return queryset.select_related("lease__unit__property", "invited_by", "invited_user")


def invitation_list_for_user(*, user_id: str, status: str | None = None) -> QuerySet[LeaseInvitation]:
    """Invitations addressed to the user, newest first (every status unless `status` is given)."""
    queryset = LeaseInvitation.objects.filter(invited_user_id=user_id)
    return _related(_with_status(queryset, status, now())).order_by("-created_at", "-id")


def invitation_list_for_lease(*, lease: Lease, status: str | None = None) -> QuerySet[LeaseInvitation]:
    """A lease's invitations, newest first. Precondition: the caller may write the lease."""
    queryset = LeaseInvitation.objects.filter(lease=lease)
    return _related(_with_status(queryset, status, now())).order_by("-created_at", "-id")


def access_lease_invitation(*, lease: Lease, invitation_id: str) -> LeaseInvitation:
    """An invitation of `lease` (already access-checked); not_found otherwise."""
    invitation = _related(LeaseInvitation.objects.filter(lease=lease, pk=invitation_id)).first()
    if invitation is None:
        raise not_found()
    return invitation


# Writes


def invitation_create(
    *,
    lease: Lease,
    user_id: str,
    invited_by_id: str | None,
    is_primary: bool = False,
    tenant_profile: dict[str, Any] | None = None,
) -> LeaseInvitation:
    """Invite an active tenant-type user onto `lease` (422 `body.payload.userId` otherwise);
    409 if they are on it already or hold a pending invitation to it. The user is notified
    after commit. `tenant_profile` (JSON-ready, camelCase) seeds their tenant record if they
    have none when they accept."""
    if not User.objects.filter(pk=user_id, user_type=UserType.TENANT, is_active=True).exists():
        raise invalid("userId", services.NOT_A_TENANT_USER)
    at = now()
    with transaction.atomic():
        Lease.objects.select_for_update().filter(pk=lease.pk).first()
        if LeaseTenant.objects.filter(lease=lease, tenant__user_id=user_id).exists():
            raise ProtocolError(errors.CONFLICT, ALREADY_ON_LEASE)
        mine = LeaseInvitation.objects.filter(lease=lease, invited_user_id=user_id)
        # Due ones become `expired` now, so the one-pending constraint lets the new one in.
        mine.filter(status=InvitationStatus.PENDING, expires_at__lte=at).update(status=InvitationStatus.EXPIRED)
        pending = mine.filter(status=InvitationStatus.PENDING).values_list("pk", flat=True).first()
        if pending is not None:
            raise ProtocolError(errors.CONFLICT, ALREADY_INVITED, invitationId=str(pending))
        invitation = LeaseInvitation.objects.create(
            lease=lease,
            invited_user_id=user_id,
            invited_by_id=invited_by_id,
            is_primary=is_primary,
            tenant_profile=tenant_profile,
            created_at=at,
            expires_at=at + ttl(),
        )
        invitation = _related(LeaseInvitation.objects.filter(pk=invitation.pk)).get()
        notify_on_commit(_invited_notice(invitation))
    return invitation


def invitation_accept(
    *, invitation_id: str, user_id: str, tenant_profile: dict[str, Any] | None = None
) -> LeaseInvitation:
    """Accept the user's own pending invitation: their tenant record (created from
    `tenant_profile` over the inviter's profile if they have none; 422 `body.payload.tenant`
    when neither gives the required fields) goes on the lease, in one transaction.
    404 for an invitation that is not theirs, 409 when it is not pending (or expired)."""

    def join(invitation: LeaseInvitation) -> None:
        user = User.objects.select_for_update().filter(pk=user_id).first()
        if user is None or user.user_type != UserType.TENANT or not user.is_active:
            raise ProtocolError(errors.CONFLICT, NO_LONGER_A_TENANT)
        if LeaseTenant.objects.filter(lease_id=invitation.lease_id, tenant__user_id=user_id).exists():
            return  # attached directly meanwhile (an admin): accepting just records the answer
        tenant = Tenant.objects.filter(user_id=user_id).order_by("created_at", "id").first()
        if tenant is None:
            profile = {**(invitation.tenant_profile or {}), **(tenant_profile or {})}
            if not {"dateOfBirth", "ssnLastFour"} <= profile.keys():
                raise invalid("tenant", PROFILE_REQUIRED)
            tenant = Tenant.objects.create(user_id=user_id, **profile_fields(profile))
        services.lease_tenant_attach(lease=invitation.lease, tenant=tenant, is_primary=bool(invitation.is_primary))

    return _answer(invitation_id, Q(invited_user_id=user_id), InvitationStatus.ACCEPTED, join)


def invitation_decline(*, invitation_id: str, user_id: str) -> LeaseInvitation:
    """Decline the user's own pending invitation; 404 if not theirs, 409 if not pending."""
    return _answer(invitation_id, Q(invited_user_id=user_id), InvitationStatus.DECLINED, None)


def invitation_revoke(*, invitation: LeaseInvitation) -> LeaseInvitation:
    """Withdraw a pending invitation (409 otherwise). Precondition: the caller may write its lease."""
    return _answer(str(invitation.pk), Q(lease_id=invitation.lease_id), InvitationStatus.REVOKED, None)


def _answer(invitation_id: str, scope: Q, outcome: str, act: Any) -> LeaseInvitation:
    """Lock the invitation (lease first), run `act` and record `outcome`; a due invitation is
    written as expired (committed) and answers 409 like any other non-pending one."""
    found = LeaseInvitation.objects.filter(scope, pk=invitation_id).values_list("lease_id", flat=True).first()
    if found is None:
        raise not_found()
    at = now()
    with transaction.atomic():
        Lease.objects.select_for_update().filter(pk=found).first()
        invitation = _related(LeaseInvitation.objects.select_for_update(of=("self",)).filter(scope, pk=invitation_id))
        current = invitation.first()
        if current is None:
            raise not_found()
        status = current.effective_status(at)
        if status == InvitationStatus.PENDING:
            if act is not None:
                act(current)
            current.status, current.responded_at = outcome, at
            current.save(update_fields=["status", "responded_at"])
            notice = _answered_notice(current)
            if notice is not None:
                notify_on_commit(notice)
            return current
        if status != current.status:
            current.status = status
            current.save(update_fields=["status"])
    raise ProtocolError(errors.CONFLICT, NOT_PENDING.format(status=status), status=status)


def profile_fields(profile: dict[str, Any]) -> dict[str, Any]:
    """A stored (JSON) profile as Tenant model fields: dates and decimals back from strings."""
    fields: dict[str, Any] = {}
    for name, value in profile.items():
        if name not in PROFILE_FIELDS:
            continue
        if value is not None and name == "dateOfBirth":
            value = date.fromisoformat(value)
        elif value is not None and name == "income":
            value = Decimal(str(value))
        fields[PROFILE_FIELDS[name]] = value
    return fields


# Notifications


def _name(user: User | None) -> str:
    if user is None:
        return "Someone"
    return f"{user.first_name} {user.last_name}".strip() or user.email


def _place(lease: Lease) -> str:
    unit = lease.unit
    if unit is None:
        return "a lease"
    where = unit.property.property_name if unit.property is not None else "a property"
    return f"unit {unit.unit_number} at {where}"


def _invited_notice(invitation: LeaseInvitation) -> Notice:
    path = f"/api/v1/invitations/{invitation.pk}"
    return Notice(
        user_id=str(invitation.invited_user_id),
        type=NOTICE_INVITED,
        title="You are invited to a lease",
        message=f"{_name(invitation.invited_by)} invited you to join the lease of {_place(invitation.lease)}.",
        reference_id=str(invitation.pk),
        reference_type=REFERENCE_TYPE,
        priority="high",
        actions=(
            {"label": "Accept", "url": f"{path}/accept", "type": "api_call"},
            {"label": "Decline", "url": f"{path}/decline", "type": "api_call"},
        ),
        expires_at=invitation.expires_at,
    )


def _answered_notice(invitation: LeaseInvitation) -> Notice | None:
    """For the inviter when the invited user accepts or declines (none for a revoke)."""
    if invitation.invited_by_id is None or invitation.status not in (
        InvitationStatus.ACCEPTED,
        InvitationStatus.DECLINED,
    ):
        return None
    accepted = invitation.status == InvitationStatus.ACCEPTED
    verb = "accepted" if accepted else "declined"
    return Notice(
        user_id=str(invitation.invited_by_id),
        type=NOTICE_ACCEPTED if accepted else NOTICE_DECLINED,
        title=f"Lease invitation {verb}",
        message=f"{_name(invitation.invited_user)} {verb} your invitation to the lease of {_place(invitation.lease)}.",
        reference_id=str(invitation.pk),
        reference_type=REFERENCE_TYPE,
    )


NOT_ON_LEASE = "not on this lease: invite the user (POST /api/v1/leases/{id}/invitations); they join by accepting"


def require_no_newcomers(*, lease: Lease, specs: list[services.LeaseTenantSpec]) -> None:
    """For landlords and managers replacing a lease's tenants: every tenant must be on the lease
    already (422 naming the first entry that is not); newcomers join only through invitations."""
    current = {str(pk) for pk in LeaseTenant.objects.filter(lease=lease).values_list("tenant_id", flat=True)}
    for index, spec in enumerate(specs):
        if spec.tenant_id not in current:
            raise invalid(f"tenants.{index}.tenantId", NOT_ON_LEASE)
