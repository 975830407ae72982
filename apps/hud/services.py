"""Writes of the HUD domain: reference data (admins), a property's programs (its staff),
applications and their forms (the applicant tenant and the staff who decide).

Application status moves draft -> submitted (sets `submission_date`) -> under_review ->
approved | denied (a decision sets `decision_date`; submitted may be decided directly).
Applicants file and submit; only staff of a property where the applicant leases (or an
admin) review and decide. A form goes pending -> submitted (sets `submitted_at`) ->
accepted | rejected (rejection needs a reason).

`properties.has_hud_approval` follows the property's programs on every path that changes them
(the staff's PUT, the admin's program page, deleting a program, the daily expiry of approvals):
true while at least one of its `property_hud_programs` rows is `approved`, false once the last
one is not (status change, expiry or removal). The property row is written through the
properties service, so `property.updated` is recorded. Paths that change a property's
programs lock its row first (in id order), so concurrent changes settle on the right flag.

When an application's status changes, the landlords of the applicant's property (owners of the
properties where the applicant holds an active lease, else any lease) are notified after the
commit, except the person who made the change.
"""

from datetime import date
from typing import Any
from uuid import UUID

from django.db import transaction
from django.db.models import Model, ProtectedError, Q
from django.utils import timezone

from apps.accounts.services import Principal
from apps.common import policy
from apps.common.validation import invalid
from apps.common.visibility import not_found
from apps.events.notices import Notice, notify_on_commit
from apps.hud import selectors
from apps.hud.models import (
    HousingAuthority,
    HudApplication,
    HudApplicationStatus,
    HudForm,
    HudFormStatus,
    HudProgram,
    PropertyHudProgram,
    PropertyHudProgramStatus,
)
from apps.leasing.models import LeaseStatus, Tenant
from apps.properties import services as property_services
from apps.properties.models import Property
from realtime import errors
from realtime.errors import ProtocolError

ADMINS_ONLY = "Only admins may change housing authorities and HUD programs."
IN_USE = "It is still referenced (applications or property programs); it cannot be deleted."
UNKNOWN_PROGRAM = "No such HUD program."
UNKNOWN_AUTHORITY = "No such housing authority."
DUPLICATE_PROGRAM = "A program appears twice."
NO_TENANT_RECORD = "You have no tenant record to apply with."
TENANT_REQUIRED = "tenantId is required: name the tenant the application is for."
NOT_YOUR_TENANT = "No such tenant among your properties' tenants."
APPLICANT_EDITS_DRAFT_ONLY = "The applicant may change only a draft application (and submit it)."
STAFF_DECIDE = "Only the property's staff or an admin may review or decide an application."
BAD_TRANSITION = "The application cannot move from '{old}' to '{new}'."
FORM_CLOSED = "Forms can be added only while the application is a draft or submitted."
APPLICANT_FORM_EDITS = "The applicant may edit a pending form and submit it; staff accept or reject it."
REJECTION_NEEDS_REASON = "A rejected form needs a rejectionReason."

TRANSITIONS: dict[str, frozenset[str]] = {
    HudApplicationStatus.DRAFT: frozenset({HudApplicationStatus.SUBMITTED}),
    HudApplicationStatus.SUBMITTED: frozenset(
        {HudApplicationStatus.UNDER_REVIEW, HudApplicationStatus.APPROVED, HudApplicationStatus.DENIED}
    ),
    HudApplicationStatus.UNDER_REVIEW: frozenset({HudApplicationStatus.APPROVED, HudApplicationStatus.DENIED}),
    HudApplicationStatus.APPROVED: frozenset(),
    HudApplicationStatus.DENIED: frozenset(),
}
APPLICANT_FIELDS = frozenset({"program_id", "authority_id", "application_date", "notes", "status"})
DECISIONS = frozenset({HudApplicationStatus.APPROVED, HudApplicationStatus.DENIED})
APPLICANT_FORM_FIELDS = frozenset({"form_type", "form_number", "document_url", "status"})


def _require_admin(caller: Principal) -> None:
    policy.require(caller, "hud.admin", ADMINS_ONLY)


def _apply(instance: Model, changes: dict[str, Any]) -> None:
    for field, value in changes.items():
        setattr(instance, field, value)


def _check_refs(changes: dict[str, Any], field_prefix: str = "") -> None:
    """Unknown program or authority ids answer 422 naming the field."""
    program_id, authority_id = changes.get("program_id"), changes.get("authority_id")
    if program_id is not None and not HudProgram.objects.filter(pk=program_id).exists():
        raise invalid(f"{field_prefix}programId", UNKNOWN_PROGRAM)
    if authority_id is not None and not HousingAuthority.objects.filter(pk=authority_id).exists():
        raise invalid(f"{field_prefix}authorityId", UNKNOWN_AUTHORITY)


# --- reference data (admins) -------------------------------------------------------------


@transaction.atomic
def housing_authority_create(*, caller: Principal, fields: dict[str, Any]) -> HousingAuthority:
    _require_admin(caller)
    return HousingAuthority.objects.create(**fields)


@transaction.atomic
def housing_authority_update(*, caller: Principal, authority_id: UUID, changes: dict[str, Any]) -> HousingAuthority:
    authority = selectors.housing_authority_get(authority_id=authority_id)
    _require_admin(caller)
    _apply(authority, changes)
    authority.save()
    return authority


@transaction.atomic
def hud_program_create(*, caller: Principal, fields: dict[str, Any]) -> HudProgram:
    _require_admin(caller)
    return HudProgram.objects.create(**fields)


@transaction.atomic
def hud_program_update(*, caller: Principal, program_id: UUID, changes: dict[str, Any]) -> HudProgram:
    program = selectors.hud_program_get(program_id=program_id)
    _require_admin(caller)
    _apply(program, changes)
    program.save()
    return program


@transaction.atomic
def reference_delete(*, caller: Principal, instance: HousingAuthority | HudProgram) -> None:
    """Delete an authority or program nothing references (409 otherwise). A program's property links go with
    it, and with them, perhaps, a property's last approval."""
    _require_admin(caller)
    property_ids = _lock_program_properties(instance) if isinstance(instance, HudProgram) else set()
    try:
        with transaction.atomic():
            instance.delete()
    except ProtectedError as exc:
        raise ProtocolError(errors.CONFLICT, IN_USE) from exc
    _sync_hud_approval(property_ids)


# --- a property's programs -----------------------------------------------------------------


@transaction.atomic
def property_hud_programs_replace(*, caller: Principal, property_id: UUID, entries: list[dict[str, Any]]) -> None:
    """Make the property's program links exactly `entries` (staff of the property or an admin)."""
    prop = selectors.access_property_as_staff(caller=caller, property_id=property_id)
    seen: set[Any] = set()
    for index, entry in enumerate(entries):
        if entry["program_id"] in seen:
            raise invalid(f"programs.{index}.programId", DUPLICATE_PROGRAM)
        seen.add(entry["program_id"])
        _check_refs(entry, f"programs.{index}.")
    _lock_properties({prop.pk})
    PropertyHudProgram.objects.filter(property=prop).delete()
    for entry in entries:
        PropertyHudProgram.objects.create(property=prop, **entry)
    _sync_hud_approval({prop.pk})


@transaction.atomic
def hud_program_properties_admin_set(*, program: HudProgram, property_ids: set[Any]) -> None:
    """The admin's program page: the program's property links become exactly `property_ids` (a new link is
    `pending`; a removed one is deleted with its status and dates); `has_hud_approval` follows."""
    links = PropertyHudProgram.objects.filter(program=program)
    current = set(links.values_list("property_id", flat=True))
    _lock_properties(current | set(property_ids))
    links.exclude(property_id__in=property_ids).delete()
    PropertyHudProgram.objects.bulk_create(
        [
            PropertyHudProgram(program=program, property_id=pk, status=PropertyHudProgramStatus.PENDING)
            for pk in set(property_ids) - current
        ],
        ignore_conflicts=True,
    )
    _sync_hud_approval(current - set(property_ids))


@transaction.atomic
def hud_program_admin_delete(*, program: HudProgram) -> None:
    """The admin deletes a program (its property links go with it); `has_hud_approval` follows."""
    property_ids = _lock_program_properties(program)
    program.delete()
    _sync_hud_approval(property_ids)


@transaction.atomic
def property_hud_approvals_expire(*, day: date) -> int:
    """Approved links whose `expiration_date` is before `day` become `expired`; `has_hud_approval` follows.
    Returns how many expired (a rerun finds none: the status is re-checked under the property locks)."""
    due = PropertyHudProgram.objects.filter(status=PropertyHudProgramStatus.APPROVED, expiration_date__lt=day)
    property_ids = set(due.values_list("property_id", flat=True))
    _lock_properties(property_ids)
    expired = due.filter(property_id__in=property_ids).update(status=PropertyHudProgramStatus.EXPIRED)
    _sync_hud_approval(property_ids)
    return expired


def _lock_properties(property_ids: set[Any]) -> None:
    """Lock the properties' rows until commit, in id order (every path takes them in this order)."""
    if property_ids:
        list(
            Property.objects.select_for_update().filter(pk__in=property_ids).order_by("pk").values_list("pk", flat=True)
        )


def _lock_program_properties(program: HudProgram) -> set[Any]:
    """Lock the properties the program is linked to; their ids."""
    property_ids = set(PropertyHudProgram.objects.filter(program=program).values_list("property_id", flat=True))
    _lock_properties(property_ids)
    return property_ids


def _sync_hud_approval(property_ids: set[Any]) -> None:
    """Make each property's `has_hud_approval` say whether it has an approved program (through the properties
    service). Precondition: the properties are locked in this transaction."""
    approved = set(
        PropertyHudProgram.objects.filter(property_id__in=property_ids, status=PropertyHudProgramStatus.APPROVED)
        .values_list("property_id", flat=True)
        .distinct()
    )
    for property_id in sorted(property_ids, key=str):
        property_services.property_hud_approval_set(property_id=property_id, approved=property_id in approved)


# --- applications --------------------------------------------------------------------------


@transaction.atomic
def hud_application_create(*, caller: Principal, tenant_id: UUID | None, fields: dict[str, Any]) -> HudApplication:
    """A draft application: a tenant applies for themselves; staff or an admin for one of their tenants."""
    own = Tenant.objects.filter(user_id=caller.user_id).order_by("created_at", "pk")
    # Applying for others is `hud.apply` beyond the OWN scope (staff for their tenants, admins for any).
    if policy.require(caller, "hud.apply") > policy.Scope.OWN:
        if tenant_id is None:
            raise invalid("tenantId", TENANT_REQUIRED)
        tenants = Tenant.objects.filter(pk=tenant_id)
        if not policy.sees_all(caller, "hud.apply"):
            tenants = tenants.filter(
                Q(pk__in=selectors.staff_tenant_ids(caller, "hud.apply")) | Q(user_id=caller.user_id)
            )
        tenant = tenants.first()
        if tenant is None:
            raise invalid("tenantId", NOT_YOUR_TENANT)
    else:
        tenant = own.filter(pk=tenant_id).first() if tenant_id is not None else own.first()
        if tenant is None:
            raise invalid("tenantId", NOT_YOUR_TENANT if tenant_id is not None else NO_TENANT_RECORD)
    _check_refs(fields)
    fields.setdefault("application_date", timezone.localdate())
    application = HudApplication(tenant=tenant, status=HudApplicationStatus.DRAFT, **fields)
    application.save()
    return application


@transaction.atomic
def hud_application_update(*, caller: Principal, application_id: UUID, changes: dict[str, Any]) -> HudApplication:
    """Change an application and move its status along TRANSITIONS (409 for a move it does not allow)."""
    application = selectors.access_hud_application(caller=caller, application_id=application_id, for_update=True)
    managed = selectors.hud_application_is_managed_by(caller=caller, application=application)
    old, new = application.status or HudApplicationStatus.DRAFT, changes.get("status")
    if not managed:
        if set(changes) - APPLICANT_FIELDS or old != HudApplicationStatus.DRAFT:
            raise ProtocolError(errors.FORBIDDEN, APPLICANT_EDITS_DRAFT_ONLY)
        if new not in (None, HudApplicationStatus.DRAFT, HudApplicationStatus.SUBMITTED):
            raise ProtocolError(errors.FORBIDDEN, STAFF_DECIDE)
    if new is not None and new != old:
        if new not in TRANSITIONS[old]:
            raise ProtocolError(errors.CONFLICT, BAD_TRANSITION.format(old=old, new=new))
        now = timezone.now()
        if new == HudApplicationStatus.SUBMITTED:
            application.submission_date = now
        if new in DECISIONS:
            application.decision_date = now
    _check_refs(changes)
    _apply(application, changes)
    application.save()
    if new is not None and new != old:
        _notify_status_changed(application, old=old, by_user_id=caller.user_id)
    return application


NOTICE_APPLICATION_STATUS = "hud_application_status_changed"


def _landlord_ids(application: HudApplication) -> list[str]:
    """Owners of the properties where the applicant holds an active lease (else any lease)."""
    if application.tenant_id is None:
        return []
    tenant_id = application.tenant_id
    active = Property.objects.filter(  # one filter(): the active lease is the applicant's lease
        units__leases__tenant_links__tenant_id=tenant_id, units__leases__lease_status=LeaseStatus.ACTIVE
    )
    owners = set(active.values_list("owner_id", flat=True)) or set(
        Property.objects.filter(units__leases__tenant_links__tenant_id=tenant_id).values_list("owner_id", flat=True)
    )
    return sorted(str(pk) for pk in owners if pk is not None)


def _notify_status_changed(application: HudApplication, *, old: str, by_user_id: str) -> None:
    """The landlords learn that the application moved from `old` to its status (after the commit)."""
    tenant = application.tenant
    user = tenant.user if tenant is not None else None
    applicant = (f"{user.first_name} {user.last_name}".strip() or user.email) if user is not None else "A tenant"
    program = application.program.program_code if application.program is not None else "HUD"
    new = HudApplicationStatus(application.status).label.lower() if application.status else "draft"
    decided = application.status in DECISIONS
    notify_on_commit(
        *(
            Notice(
                user_id=landlord_id,
                type=NOTICE_APPLICATION_STATUS,
                title=f"HUD application {new}",
                message=f"{applicant}'s {program} application moved from {old.replace('_', ' ')} to {new}.",
                reference_id=str(application.pk),
                reference_type="hud_application",
                priority="high" if decided else "medium",
                actions=(
                    {
                        "label": "View application",
                        "url": f"/api/v1/hud-applications/{application.pk}",
                        "type": "link",
                    },
                ),
            )
            for landlord_id in _landlord_ids(application)
            if landlord_id != by_user_id
        )
    )


# --- forms ---------------------------------------------------------------------------------


@transaction.atomic
def hud_form_create(*, caller: Principal, application_id: UUID, fields: dict[str, Any]) -> HudForm:
    application = selectors.access_hud_application(caller=caller, application_id=application_id, for_update=True)
    managed = selectors.hud_application_is_managed_by(caller=caller, application=application)
    if not managed and application.status not in (HudApplicationStatus.DRAFT, HudApplicationStatus.SUBMITTED):
        raise ProtocolError(errors.CONFLICT, FORM_CLOSED)
    return HudForm.objects.create(application=application, status=HudFormStatus.PENDING, **fields)


@transaction.atomic
def hud_form_update(*, caller: Principal, form_id: UUID, changes: dict[str, Any]) -> HudForm:
    form = selectors.access_hud_form(caller=caller, form_id=form_id, for_update=True)
    application = form.application
    if application is None:  # pragma: no cover  (visible forms always have one)
        raise not_found()
    if not selectors.hud_application_is_managed_by(caller=caller, application=application):
        new = changes.get("status")
        if (
            set(changes) - APPLICANT_FORM_FIELDS
            or form.status != HudFormStatus.PENDING
            or new not in (None, HudFormStatus.PENDING, HudFormStatus.SUBMITTED)
        ):
            raise ProtocolError(errors.FORBIDDEN, APPLICANT_FORM_EDITS)
    _apply(form, changes)
    if form.status == HudFormStatus.REJECTED and not form.rejection_reason:
        raise invalid("rejectionReason", REJECTION_NEEDS_REASON)
    if form.status != HudFormStatus.PENDING and form.submitted_at is None:
        form.submitted_at = timezone.now()
    form.save()
    return form
