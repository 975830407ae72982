"""Writes of tenants, leases, lease tenants and lease documents.

Preconditions: the caller was checked by the API (`require_staff`, `access_*` selectors);
these functions take the objects they act on and enforce the domain rules:
- one ACTIVE lease per unit (409), checked under a row lock on the unit;
- lease status moves only along `LEASE_TRANSITIONS` (409 otherwise);
- a lease ends after it starts (422);
- a lease's tenants have exactly one primary;
- tenant records on a lease other than a draft are kept for the lease history (409 on delete).

Every lease write records its `lease.updated` event (`events.py`) in the outbox in its
own transaction, after the row is written; it is published after the commit.

Every lease write (HTTP, admin, the integration layer, the daily jobs) ends with
`unit_occupancy_follow` in its transaction: the unit's `is_occupied` / `is_available` follow
whether it has an active lease (apps/properties/services.py `unit_occupancy_set`).
"""

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from django.db import transaction
from django.utils import timezone

from apps.accounts.models import User, UserType
from apps.common.access import access_changed, register_access_deleted
from apps.common.validation import invalid
from apps.events.outbox import delete_recording_events, register_saved
from apps.leasing import events
from apps.leasing.models import Lease, LeaseDocument, LeaseStatus, LeaseTenant, Tenant
from apps.properties import services as property_services
from apps.properties.models import Unit
from realtime import errors
from realtime.errors import ProtocolError

SECOND_ACTIVE_LEASE = "The unit already has an active lease; end it before activating another."
BAD_TRANSITION = "A lease cannot move from {current} to {target}."
END_BEFORE_START = "must be after startDate"
NOT_A_TENANT_USER = "must be the id of an active tenant-type user"
TENANT_ON_ACTIVE_LEASE = "The tenant is on an active lease; end the lease first."
TENANT_HAS_HISTORY = "The tenant is on past leases; tenant records are kept for the lease history."
TENANT_NOT_FOUND = "Tenant not found."

LEASE_TRANSITIONS: dict[str, frozenset[str]] = {
    LeaseStatus.DRAFT: frozenset({LeaseStatus.DRAFT, LeaseStatus.ACTIVE, LeaseStatus.TERMINATED}),
    LeaseStatus.ACTIVE: frozenset(
        {LeaseStatus.ACTIVE, LeaseStatus.EXPIRED, LeaseStatus.TERMINATED, LeaseStatus.RENEWED}
    ),
    LeaseStatus.EXPIRED: frozenset({LeaseStatus.EXPIRED, LeaseStatus.RENEWED}),
    LeaseStatus.RENEWED: frozenset({LeaseStatus.RENEWED}),
    LeaseStatus.TERMINATED: frozenset({LeaseStatus.TERMINATED}),
}


# Tenants


def tenant_create(*, user_id: str, lease: Lease | None, is_primary: bool = False, **fields: Any) -> Tenant:
    """A tenant profile for a tenant-type user; attached to `lease` (primary if it is the first
    tenant or `is_primary`) in the same transaction when given. Attaching directly is for
    admins; landlords and managers invite (apps/leasing/invitations.py)."""
    if not User.objects.filter(pk=user_id, user_type=UserType.TENANT, is_active=True).exists():
        raise invalid("userId", NOT_A_TENANT_USER)
    with transaction.atomic():
        tenant = Tenant.objects.create(user_id=user_id, **fields)
        if lease is not None:
            lease_tenant_attach(lease=lease, tenant=tenant, is_primary=is_primary)
    return tenant


def lease_tenant_attach(*, lease: Lease, tenant: Tenant, is_primary: bool = False) -> LeaseTenant:
    """Put `tenant` on `lease` (the `lease_tenants` row), under a row lock on the lease; it becomes
    the primary if `is_primary` or the lease has none, and then the only primary.

    Preconditions: the caller may attach directly (an admin, or an accepted invitation:
    apps/leasing/invitations.py) and the tenant is not on the lease yet.
    """
    with transaction.atomic():
        Lease.objects.select_for_update().filter(pk=lease.pk).first()
        links = LeaseTenant.objects.filter(lease=lease)
        primary = is_primary or not links.filter(is_primary=True).exists()
        if primary:
            links.update(is_primary=False)
        link = LeaseTenant.objects.create(lease=lease, tenant=tenant, is_primary=primary)
        access_changed(user_ids={tenant.user_id})
        return link


def tenant_update(*, tenant: Tenant, changes: dict[str, Any]) -> Tenant:
    """Apply `changes` (model field names) to the tenant record."""
    for name, value in changes.items():
        setattr(tenant, name, value)
    tenant.save(update_fields=[*changes, "updated_at"])
    return tenant


def tenant_delete(*, tenant: Tenant) -> None:
    """Delete a tenant record that is on no lease, or only on drafts (409 otherwise)."""
    with transaction.atomic():
        statuses = set(
            LeaseTenant.objects.select_for_update(of=("self",))
            .filter(tenant=tenant)
            .values_list("lease__lease_status", flat=True)
        )
        if LeaseStatus.ACTIVE in statuses:
            raise ProtocolError(errors.CONFLICT, TENANT_ON_ACTIVE_LEASE)
        if statuses - {LeaseStatus.DRAFT, None}:
            raise ProtocolError(errors.CONFLICT, TENANT_HAS_HISTORY)
        tenant.delete()
        access_changed(user_ids={tenant.user_id})


def tenant_admin_save(*, tenant: Tenant) -> Tenant:
    """Save the tenant record as the admin's form built it; a record moved to another user re-checks both."""
    with transaction.atomic():
        previous_user_id = None
        if not tenant._state.adding:
            previous_user_id = Tenant.objects.filter(pk=tenant.pk).values_list("user_id", flat=True).first()
        tenant.save()
        if previous_user_id is not None and previous_user_id != tenant.user_id:
            access_changed(user_ids={previous_user_id, tenant.user_id})
    return tenant


def tenant_admin_delete(*, tenant: Tenant) -> None:
    """Delete the tenant record from the admin, with its lease links (and what else cascades), announcing
    each; its user loses those leases after the commit."""
    with transaction.atomic():
        delete_recording_events(tenant)
        access_changed(user_ids={tenant.user_id})


# Leases


def _lock_unit_and_check_single_active(*, unit_id: Any, exclude_lease_id: Any = None) -> None:
    """Row-lock the unit (serializes concurrent activations) and refuse a second active lease."""
    # order_by(): Unit's default ordering joins its (nullable) property, which FOR UPDATE refuses.
    list(Unit.objects.select_for_update().filter(pk=unit_id).order_by().values_list("pk", flat=True))
    others = Lease.objects.filter(unit_id=unit_id, lease_status=LeaseStatus.ACTIVE)
    if exclude_lease_id is not None:
        others = others.exclude(pk=exclude_lease_id)
    if others.exists():
        raise ProtocolError(errors.CONFLICT, SECOND_ACTIVE_LEASE)


def lease_create(
    *,
    unit: Unit,
    start_date: date,
    end_date: date,
    monthly_rent: Decimal,
    security_deposit: Decimal,
    lease_status: str = LeaseStatus.DRAFT,
    **fields: Any,
) -> Lease:
    """A lease on `unit`; 409 if it is active and the unit already has an active lease."""
    if end_date <= start_date:
        raise invalid("endDate", END_BEFORE_START)
    if lease_status not in (LeaseStatus.DRAFT, LeaseStatus.ACTIVE):
        raise invalid("status", "a new lease is draft or active")
    with transaction.atomic():
        if lease_status == LeaseStatus.ACTIVE:
            _lock_unit_and_check_single_active(unit_id=unit.pk)
        lease = Lease.objects.create(
            unit=unit,
            start_date=start_date,
            end_date=end_date,
            monthly_rent=monthly_rent,
            security_deposit=security_deposit,
            lease_status=lease_status,
            **fields,
        )
        events.record_lease_saved(lease)
        unit_occupancy_follow(unit_ids=[lease.unit_id])
        return lease


def lease_update(*, lease: Lease, changes: dict[str, Any], follow_occupancy: bool = True) -> Lease:
    """Apply `changes` (model field names); status moves along LEASE_TRANSITIONS, and
    activating a lease while the unit has another active one answers 409.

    `follow_occupancy=False` leaves the unit's occupancy to the caller, who writes the next
    lease of the unit in the same transaction (a renewal: the unit is never free in between).
    """
    with transaction.atomic():
        current = Lease.objects.select_for_update().get(pk=lease.pk)
        target = changes.get("lease_status")
        if target is not None:
            source = current.lease_status or LeaseStatus.DRAFT
            if target not in LEASE_TRANSITIONS[source]:
                raise ProtocolError(
                    errors.CONFLICT, BAD_TRANSITION.format(current=source, target=target), current=source
                )
            if target == LeaseStatus.ACTIVE and source != LeaseStatus.ACTIVE:
                _lock_unit_and_check_single_active(unit_id=current.unit_id, exclude_lease_id=current.pk)
        start = changes.get("start_date", current.start_date)
        end = changes.get("end_date", current.end_date)
        if end <= start:
            raise invalid("endDate", END_BEFORE_START)
        previous_status = current.lease_status
        for name, value in changes.items():
            setattr(current, name, value)
        current.save(update_fields=[*changes, "updated_at"])
        _saved(current, created=False, previous_status=previous_status, follow_occupancy=follow_occupancy)
    return current


def _saved(
    lease: Lease, *, created: bool, previous_status: Any, previous_unit_id: Any = None, follow_occupancy: bool = True
) -> None:
    """What every saved lease records: its event, its units' occupancy, and an access re-check of its tenants when its status changed."""
    events.record_lease_saved(lease)
    if follow_occupancy:
        unit_occupancy_follow(unit_ids=[lease.unit_id, previous_unit_id])
    if not created and previous_status != lease.lease_status:
        access_changed(
            user_ids=set(LeaseTenant.objects.filter(lease_id=lease.pk).values_list("tenant__user_id", flat=True))
        )


def _saved_by_a_generic_writer(lease: Lease, created: bool, previous: dict[str, Any]) -> None:
    # The integration layer's saveEntityWithDocuments (`previous`: the columns it changed).
    _saved(
        lease,
        created=created,
        previous_status=previous.get("lease_status", lease.lease_status),
        previous_unit_id=previous.get("unit_id"),
    )


register_saved(Lease, _saved_by_a_generic_writer)
# A lease, unit or property deleted with its tenant links (`delete_recording_events`): the tenants lose it.
register_access_deleted(LeaseTenant, lambda link: {link.tenant.user_id})


def lease_admin_save(*, lease: Lease) -> Lease:
    """Save the lease as the admin's form built it (the admin site checked the caller); records `lease.updated`."""
    with transaction.atomic():
        created = lease._state.adding
        previous_status = previous_unit_id = None
        if not created:
            previous_status, previous_unit_id = (
                Lease.objects.select_for_update()
                .filter(pk=lease.pk)
                .order_by()
                .values_list("lease_status", "unit_id")
                .first()
            ) or (None, None)
        lease.save()
        _saved(lease, created=created, previous_status=previous_status, previous_unit_id=previous_unit_id)
    return lease


def lease_admin_delete(*, lease: Lease) -> None:
    """Delete the lease (its tenant links and documents cascade), announcing it; its tenants lose it and
    its unit's occupancy follows."""
    with transaction.atomic():
        delete_recording_events(lease)
        unit_occupancy_follow(unit_ids=[lease.unit_id])


def unit_occupancy_follow(*, unit_ids: Iterable[Any]) -> None:
    """Make each unit's `is_occupied` / `is_available` follow whether it has an active lease now
    (apps/properties/services.py `unit_occupancy_set`: `unit.updated` and the `unit:availability`
    drop when it changed). Called by every lease write, inside its transaction, after the lease
    row is written; `None` ids are skipped. Each unit is row-locked (in id order) before its
    active leases are counted, so concurrent lease writes on one unit settle on the last one.
    """
    for unit_id in sorted({str(pk) for pk in unit_ids if pk is not None}):
        with transaction.atomic():
            # order_by(): Unit's default ordering joins its (nullable) property, which FOR UPDATE refuses.
            locked = Unit.objects.select_for_update().filter(pk=unit_id).order_by().values_list("pk", flat=True)
            if locked.first() is None:
                continue
            occupied = Lease.objects.filter(unit_id=unit_id, lease_status=LeaseStatus.ACTIVE).exists()
            property_services.unit_occupancy_set(unit_id=unit_id, occupied=occupied)


def lease_terminate(*, lease: Lease) -> Lease:
    """End a draft or active lease (status terminated; the row and its history stay).
    Terminating a terminated lease is a no-op; an expired or renewed one answers 409."""
    if lease.lease_status == LeaseStatus.TERMINATED:
        return lease
    return lease_update(lease=lease, changes={"lease_status": LeaseStatus.TERMINATED})


@dataclass(frozen=True)
class LeaseTenantSpec:
    tenant_id: str
    is_primary: bool


def lease_tenants_set(*, lease: Lease, tenants: list[Tenant], specs: list[LeaseTenantSpec]) -> None:
    """Make the lease's tenants exactly `specs` (kept links keep their created_at).

    Preconditions: `tenants` are the records of `specs` (each visible to the caller),
    ids are unique and exactly one spec is primary (the API schema checks both).
    """
    wanted = {spec.tenant_id: spec.is_primary for spec in specs}
    if {str(tenant.pk) for tenant in tenants} != set(wanted):
        raise ProtocolError(errors.NOT_FOUND, TENANT_NOT_FOUND)
    with transaction.atomic():
        Lease.objects.select_for_update().filter(pk=lease.pk).first()
        existing = {str(link.tenant_id): link for link in LeaseTenant.objects.filter(lease=lease)}
        removed = [tenant_id for tenant_id in existing if tenant_id not in wanted]
        if removed:
            LeaseTenant.objects.filter(lease=lease, tenant_id__in=removed).delete()
        added = []
        for tenant_id, is_primary in wanted.items():
            link = existing.get(tenant_id)
            if link is None:
                LeaseTenant.objects.create(lease=lease, tenant_id=tenant_id, is_primary=is_primary)
                added.append(tenant_id)
            elif link.is_primary != is_primary:
                LeaseTenant.objects.filter(lease=lease, tenant_id=tenant_id).update(is_primary=is_primary)
        _tenants_changed([*removed, *added])


def _tenants_changed(tenant_ids: list[Any]) -> None:
    """The users of these tenant records gained or lost a lease: re-check their access after the commit."""
    if tenant_ids:
        access_changed(user_ids=set(Tenant.objects.filter(pk__in=tenant_ids).values_list("user_id", flat=True)))


def lease_tenants_admin_set(*, lease: Lease, tenant_ids: set[Any], primary_id: Any) -> None:
    """The admin's lease form: the lease's tenants become exactly `tenant_ids` (plus `primary_id`), with
    exactly that primary (none if None); whoever joined or left is re-checked after the commit."""
    chosen = set(tenant_ids) | ({primary_id} if primary_id is not None else set())
    with transaction.atomic():
        Lease.objects.select_for_update().filter(pk=lease.pk).first()
        links = LeaseTenant.objects.filter(lease=lease)
        removed = list(links.exclude(tenant_id__in=chosen).values_list("tenant_id", flat=True))
        links.filter(tenant_id__in=removed).delete()
        existing = set(links.values_list("tenant_id", flat=True))
        added = sorted(chosen - existing, key=str)
        LeaseTenant.objects.bulk_create([LeaseTenant(lease=lease, tenant_id=pk) for pk in added], ignore_conflicts=True)
        links.exclude(tenant_id=primary_id).update(is_primary=False)  # None: no primary, so every link is cleared
        if primary_id is not None:
            links.filter(tenant_id=primary_id).update(is_primary=True)
        _tenants_changed([*removed, *added])


# Lease documents


def lease_document_create(
    *,
    lease: Lease,
    uploaded_by_id: str,
    document_type: str,
    document_url: str,
    is_signed: bool = False,
    signed_at: datetime | None = None,
) -> LeaseDocument:
    """A document record on the lease; a signed one without `signed_at` is signed now."""
    if is_signed and signed_at is None:
        signed_at = timezone.now()
    document = LeaseDocument.objects.create(
        lease=lease,
        uploaded_by_id=uploaded_by_id,
        document_type=document_type,
        document_url=document_url,
        is_signed=is_signed,
        signed_at=signed_at,
    )
    document.refresh_from_db()
    return document


def lease_document_delete(*, document: LeaseDocument) -> None:
    """Remove the document record (the file itself lives wherever its URL points)."""
    document.delete()
