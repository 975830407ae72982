"""HTTP endpoints of housing authorities, HUD programs, applications and forms (mounted at /api/v1 by pms/api.py).

The request and response schemas are in apps/hud/schemas.py.
"""

from decimal import Decimal
from typing import Annotated, Any
from uuid import UUID

from asgiref.sync import sync_to_async
from django.http import HttpRequest
from ninja import Query, Router, Schema, Status
from pydantic import Field

from apps.accounts.services import Principal
from apps.common.http import token_auth
from apps.common.pagination import Page, PageParams, apaginate, paginate
from apps.hud import selectors, services
from apps.hud.models import HousingAuthority, HudApplication, HudForm, HudProgram, PropertyHudProgram
from apps.hud.schemas import (
    APPLICATION_FIELDS,
    AUTHORITY_FIELDS,
    FORM_FIELDS,
    PROGRAM_FIELDS,
    HousingAuthorityIn,
    HousingAuthorityOut,
    HousingAuthorityPatch,
    HudApplicationFilters,
    HudApplicationIn,
    HudApplicationOut,
    HudApplicationPatch,
    HudFormIn,
    HudFormOut,
    HudFormPatch,
    HudProgramIn,
    HudProgramOut,
    HudProgramPatch,
    PropertyHudProgramOut,
    PropertyHudProgramsIn,
)

router = Router(tags=["hud"], auth=token_auth)


def _caller(request: HttpRequest) -> Principal:
    return request.auth  # type: ignore[attr-defined]


def _changes(payload: Schema, names: dict[str, str]) -> dict[str, Any]:
    return {names[key]: value for key, value in payload.model_dump(exclude_unset=True).items()}


def _money(value: Decimal | None) -> Decimal | None:
    return None if value is None else value.quantize(Decimal("0.01"))


# --- housing authorities -------------------------------------------------------------------


def authority_out(authority: HousingAuthority) -> HousingAuthorityOut:
    return HousingAuthorityOut(
        id=authority.pk,
        name=authority.name,
        state=authority.state,
        county=authority.county,
        contactName=authority.contact_name,
        contactEmail=authority.contact_email,
        contactPhone=authority.contact_phone,
        website=authority.website,
        createdAt=authority.created_at,
        updatedAt=authority.updated_at,
    )


@router.get("/housing-authorities", response=Page[HousingAuthorityOut])
async def housing_authority_list(
    request: HttpRequest, page: Query[PageParams], state: Annotated[str | None, Field(max_length=50)] = None
) -> dict[str, Any]:
    return await apaginate(selectors.housing_authority_list(state=state), page, authority_out)


@router.post("/housing-authorities", response={201: HousingAuthorityOut})
async def housing_authority_create(request: HttpRequest, payload: HousingAuthorityIn) -> Status:
    """Admins only."""
    authority = await sync_to_async(services.housing_authority_create)(
        caller=_caller(request), fields=_changes(payload, AUTHORITY_FIELDS)
    )
    return Status(201, authority_out(authority))


@router.get("/housing-authorities/{authority_id}", response=HousingAuthorityOut)
async def housing_authority_get(request: HttpRequest, authority_id: UUID) -> HousingAuthorityOut:
    return authority_out(await sync_to_async(selectors.housing_authority_get)(authority_id=authority_id))


@router.patch("/housing-authorities/{authority_id}", response=HousingAuthorityOut)
async def housing_authority_update(
    request: HttpRequest, authority_id: UUID, payload: HousingAuthorityPatch
) -> HousingAuthorityOut:
    authority = await sync_to_async(services.housing_authority_update)(
        caller=_caller(request), authority_id=authority_id, changes=_changes(payload, AUTHORITY_FIELDS)
    )
    return authority_out(authority)


@router.delete("/housing-authorities/{authority_id}", response={204: None})
async def housing_authority_delete(request: HttpRequest, authority_id: UUID) -> Status:
    """Admins only; 409 while applications or property programs name it."""

    def delete() -> None:
        authority = selectors.housing_authority_get(authority_id=authority_id)
        services.reference_delete(caller=_caller(request), instance=authority)

    await sync_to_async(delete)()
    return Status(204, None)


# --- HUD programs --------------------------------------------------------------------------


def program_out(program: HudProgram) -> HudProgramOut:
    return HudProgramOut(
        id=program.pk,
        programName=program.program_name,
        programCode=program.program_code,
        description=program.description,
        eligibilityCriteria=program.eligibility_criteria,
        requiredForms=program.required_forms,
        createdAt=program.created_at,
        updatedAt=program.updated_at,
    )


@router.get("/hud-programs", response=Page[HudProgramOut])
async def hud_program_list(
    request: HttpRequest,
    page: Query[PageParams],
    programCode: Annotated[str | None, Field(max_length=50)] = None,  # noqa: N803  (the query name)
) -> dict[str, Any]:
    return await apaginate(selectors.hud_program_list(program_code=programCode), page, program_out)


@router.post("/hud-programs", response={201: HudProgramOut})
async def hud_program_create(request: HttpRequest, payload: HudProgramIn) -> Status:
    """Admins only."""
    program = await sync_to_async(services.hud_program_create)(
        caller=_caller(request), fields=_changes(payload, PROGRAM_FIELDS)
    )
    return Status(201, program_out(program))


@router.get("/hud-programs/{program_id}", response=HudProgramOut)
async def hud_program_get(request: HttpRequest, program_id: UUID) -> HudProgramOut:
    return program_out(await sync_to_async(selectors.hud_program_get)(program_id=program_id))


@router.patch("/hud-programs/{program_id}", response=HudProgramOut)
async def hud_program_update(request: HttpRequest, program_id: UUID, payload: HudProgramPatch) -> HudProgramOut:
    program = await sync_to_async(services.hud_program_update)(
        caller=_caller(request), program_id=program_id, changes=_changes(payload, PROGRAM_FIELDS)
    )
    return program_out(program)


@router.delete("/hud-programs/{program_id}", response={204: None})
async def hud_program_delete(request: HttpRequest, program_id: UUID) -> Status:
    """Admins only; 409 while applications name it (property links go with it)."""

    def delete() -> None:
        program = selectors.hud_program_get(program_id=program_id)
        services.reference_delete(caller=_caller(request), instance=program)

    await sync_to_async(delete)()
    return Status(204, None)


# --- a property's programs -----------------------------------------------------------------


def link_out(link: PropertyHudProgram) -> PropertyHudProgramOut:
    return PropertyHudProgramOut(
        programId=link.program_id,
        programName=link.program.program_name,
        programCode=link.program.program_code,
        authorityId=link.authority_id,
        approvalDate=link.approval_date,
        expirationDate=link.expiration_date,
        status=link.status,
    )


def _links(caller: Principal, property_id: UUID) -> list[PropertyHudProgramOut]:
    prop = selectors.access_property_as_staff(caller=caller, property_id=property_id)
    return [link_out(link) for link in selectors.property_hud_program_list(property_id=prop.pk)]


@router.get("/properties/{property_id}/hud-programs", response=list[PropertyHudProgramOut])
async def property_hud_program_list(request: HttpRequest, property_id: UUID) -> list[PropertyHudProgramOut]:
    """The property's HUD programs (its staff and admins)."""
    return await sync_to_async(_links)(_caller(request), property_id)


@router.put("/properties/{property_id}/hud-programs", response=list[PropertyHudProgramOut])
async def property_hud_program_replace(
    request: HttpRequest, property_id: UUID, payload: PropertyHudProgramsIn
) -> list[PropertyHudProgramOut]:
    """Replace the property's HUD programs with the given list."""
    entries = [
        {
            "program_id": p.programId,
            "authority_id": p.authorityId,
            "approval_date": p.approvalDate,
            "expiration_date": p.expirationDate,
            "status": p.status,
        }
        for p in payload.programs
    ]

    def replace() -> list[PropertyHudProgramOut]:
        services.property_hud_programs_replace(caller=_caller(request), property_id=property_id, entries=entries)
        return _links(_caller(request), property_id)

    return await sync_to_async(replace)()


# --- applications --------------------------------------------------------------------------


def application_out(application: HudApplication) -> HudApplicationOut:
    return HudApplicationOut(
        id=application.pk,
        tenantId=application.tenant_id,
        programId=application.program_id,
        authorityId=application.authority_id,
        applicationDate=application.application_date,
        status=application.status,
        submissionDate=application.submission_date,
        decisionDate=application.decision_date,
        voucherAmount=_money(application.voucher_amount),
        voucherStartDate=application.voucher_start_date,
        voucherEndDate=application.voucher_end_date,
        notes=application.notes,
    )


@router.get("/hud-applications", response=Page[HudApplicationOut])
async def hud_application_list(
    request: HttpRequest, filters: Query[HudApplicationFilters], page: Query[PageParams]
) -> dict[str, Any]:
    """Applications the caller may see (tenants: their own), newest first."""
    applications = selectors.hud_application_list(
        caller=_caller(request), tenant_id=filters.tenantId, status=filters.status
    )
    return await apaginate(applications, page, application_out)


@router.post("/hud-applications", response={201: HudApplicationOut})
async def hud_application_create(request: HttpRequest, payload: HudApplicationIn) -> Status:
    """Start a draft application (a tenant for themselves, staff for a tenant of their properties)."""
    fields = _changes(payload, APPLICATION_FIELDS)
    tenant_id = fields.pop("tenant_id", None)
    if fields.get("application_date") is None:
        fields.pop("application_date", None)
    application = await sync_to_async(services.hud_application_create)(
        caller=_caller(request), tenant_id=tenant_id, fields=fields
    )
    return Status(201, application_out(application))


@router.get("/hud-applications/{application_id}", response=HudApplicationOut)
async def hud_application_get(request: HttpRequest, application_id: UUID) -> HudApplicationOut:
    application = await sync_to_async(selectors.access_hud_application)(
        caller=_caller(request), application_id=application_id
    )
    return application_out(application)


@router.patch("/hud-applications/{application_id}", response=HudApplicationOut)
async def hud_application_update(
    request: HttpRequest, application_id: UUID, payload: HudApplicationPatch
) -> HudApplicationOut:
    """Change an application; submitting sets `submissionDate`, approving or denying `decisionDate`."""
    application = await sync_to_async(services.hud_application_update)(
        caller=_caller(request), application_id=application_id, changes=_changes(payload, APPLICATION_FIELDS)
    )
    return application_out(application)


# --- forms ---------------------------------------------------------------------------------


def form_out(form: HudForm) -> HudFormOut:
    return HudFormOut(
        id=form.pk,
        applicationId=form.application_id,
        formType=form.form_type,
        formNumber=form.form_number,
        documentUrl=form.document_url,
        submittedAt=form.submitted_at,
        status=form.status,
        rejectionReason=form.rejection_reason,
    )


@router.get("/hud-applications/{application_id}/forms", response=Page[HudFormOut])
async def hud_form_list(request: HttpRequest, application_id: UUID, page: Query[PageParams]) -> dict[str, Any]:
    def read() -> dict[str, Any]:
        application = selectors.access_hud_application(caller=_caller(request), application_id=application_id)
        return paginate(selectors.hud_form_list(application=application), page, form_out)

    return await sync_to_async(read)()


@router.post("/hud-applications/{application_id}/forms", response={201: HudFormOut})
async def hud_form_create(request: HttpRequest, application_id: UUID, payload: HudFormIn) -> Status:
    form = await sync_to_async(services.hud_form_create)(
        caller=_caller(request), application_id=application_id, fields=_changes(payload, FORM_FIELDS)
    )
    return Status(201, form_out(form))


@router.patch("/hud-forms/{form_id}", response=HudFormOut)
async def hud_form_update(request: HttpRequest, form_id: UUID, payload: HudFormPatch) -> HudFormOut:
    form = await sync_to_async(services.hud_form_update)(
        caller=_caller(request), form_id=form_id, changes=_changes(payload, FORM_FIELDS)
    )
    return form_out(form)
