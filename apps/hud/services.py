"""Writes of the HUD domain: reference data (admins), a property's programs (its staff),
applications and their forms (the applicant tenant and the staff who decide).

Application status moves draft -> submitted (sets `submission_date`) -> under_review ->
approved | denied (a decision sets `decision_date`; submitted may be decided directly).
Applicants file and submit; only staff of a property where the applicant leases (or an
admin) review and decide. A form goes pending -> submitted (sets `submitted_at`) ->
accepted | rejected (rejection needs a reason).
"""

from typing import Any
from uuid import UUID

from django.db import transaction
from django.db.models import Model, ProtectedError, Q
from django.utils import timezone

from apps.accounts.services import Principal
from apps.common import policy
from apps.common.validation import invalid
from apps.common.visibility import not_found
from apps.hud import selectors
from apps.hud.models import (
    HousingAuthority,
    HudApplication,
    HudApplicationStatus,
    HudForm,
    HudFormStatus,
    HudProgram,
    PropertyHudProgram,
)
from apps.leasing.models import Tenant
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
    """Delete an authority or program nothing references (409 otherwise)."""
    _require_admin(caller)
    try:
        instance.delete()
    except ProtectedError as exc:
        raise ProtocolError(errors.CONFLICT, IN_USE) from exc


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
    PropertyHudProgram.objects.filter(property=prop).delete()
    for entry in entries:
        PropertyHudProgram.objects.create(property=prop, **entry)


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
    return application


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
