"""Request and response schemas of the HUD API (camelCase on the wire, money as decimal strings),
and the maps from their field names to the model fields (used by apps/hud/api.py)."""

from datetime import date, datetime
from decimal import Decimal
from typing import Annotated, Any, Literal
from uuid import UUID

from ninja import Schema
from pydantic import Field, StringConstraints

from apps.common.decimals import decimal_schema

Str20 = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=20)]
Str50 = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=50)]
Str100 = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=100)]
Str255 = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=255)]
Email = Annotated[str, StringConstraints(strip_whitespace=True, max_length=255, pattern=r"^[^@\s]+@[^@\s]+$")]
Notes = Annotated[str, StringConstraints(max_length=10_000)]
Money = Annotated[Decimal, Field(max_digits=10, decimal_places=2, ge=0), decimal_schema(10, 2)]
ApplicationStatus = Literal["draft", "submitted", "under_review", "approved", "denied"]
FormStatus = Literal["pending", "submitted", "accepted", "rejected"]
LinkStatus = Literal["pending", "approved", "expired", "revoked"]


# --- housing authorities -------------------------------------------------------------------


class HousingAuthorityOut(Schema):
    id: UUID
    name: str
    state: str
    county: str | None
    contactName: str | None
    contactEmail: str | None
    contactPhone: str | None
    website: str | None
    createdAt: datetime | None
    updatedAt: datetime | None


class HousingAuthorityIn(Schema):
    name: Str255
    state: Str50
    county: Str100 | None = None
    contactName: Str255 | None = None
    contactEmail: Email | None = None
    contactPhone: Str20 | None = None
    website: Str255 | None = None


class HousingAuthorityPatch(Schema):
    name: Str255 = None  # type: ignore[assignment]
    state: Str50 = None  # type: ignore[assignment]
    county: Str100 | None = None
    contactName: Str255 | None = None
    contactEmail: Email | None = None
    contactPhone: Str20 | None = None
    website: Str255 | None = None


AUTHORITY_FIELDS = {
    "name": "name",
    "state": "state",
    "county": "county",
    "contactName": "contact_name",
    "contactEmail": "contact_email",
    "contactPhone": "contact_phone",
    "website": "website",
}


# --- HUD programs --------------------------------------------------------------------------


class HudProgramOut(Schema):
    id: UUID
    programName: str
    programCode: str
    description: str | None
    eligibilityCriteria: str | None
    requiredForms: list[Any] | dict[str, Any] | None
    createdAt: datetime | None
    updatedAt: datetime | None


class HudProgramIn(Schema):
    programName: Str100
    programCode: Str50
    description: Notes | None = None
    eligibilityCriteria: Notes | None = None
    requiredForms: list[Any] | dict[str, Any] | None = Field(None, description="JSON, e.g. a list of form numbers.")


class HudProgramPatch(Schema):
    programName: Str100 = None  # type: ignore[assignment]
    programCode: Str50 = None  # type: ignore[assignment]
    description: Notes | None = None
    eligibilityCriteria: Notes | None = None
    requiredForms: list[Any] | dict[str, Any] | None = None


PROGRAM_FIELDS = {
    "programName": "program_name",
    "programCode": "program_code",
    "description": "description",
    "eligibilityCriteria": "eligibility_criteria",
    "requiredForms": "required_forms",
}


# --- a property's programs -----------------------------------------------------------------


class PropertyHudProgramOut(Schema):
    programId: UUID
    programName: str
    programCode: str
    authorityId: UUID | None
    approvalDate: date | None
    expirationDate: date | None
    status: str | None


class PropertyHudProgramIn(Schema):
    programId: UUID
    authorityId: UUID | None = None
    approvalDate: date | None = None
    expirationDate: date | None = None
    status: LinkStatus = "pending"


class PropertyHudProgramsIn(Schema):
    programs: list[PropertyHudProgramIn] = Field(max_length=100)


# --- applications --------------------------------------------------------------------------


class HudApplicationOut(Schema):
    id: UUID
    tenantId: UUID | None
    programId: UUID | None
    authorityId: UUID | None
    applicationDate: date
    status: str | None
    submissionDate: datetime | None
    decisionDate: datetime | None
    voucherAmount: Decimal | None
    voucherStartDate: date | None
    voucherEndDate: date | None
    notes: str | None


class HudApplicationIn(Schema):
    tenantId: UUID | None = Field(None, description="Staff: required. Tenants: their own tenant record (default).")
    programId: UUID | None = None
    authorityId: UUID | None = None
    applicationDate: date | None = Field(None, description="Defaults to today.")
    notes: Notes | None = None


class HudApplicationPatch(Schema):
    """Applicants: programId, authorityId, applicationDate, notes and status `submitted`, while a draft.
    Staff: everything, along draft -> submitted -> under_review -> approved | denied."""

    programId: UUID | None = None
    authorityId: UUID | None = None
    applicationDate: date = None  # type: ignore[assignment]
    status: ApplicationStatus = None  # type: ignore[assignment]
    voucherAmount: Money | None = None
    voucherStartDate: date | None = None
    voucherEndDate: date | None = None
    notes: Notes | None = None


APPLICATION_FIELDS = {
    "tenantId": "tenant_id",
    "programId": "program_id",
    "authorityId": "authority_id",
    "applicationDate": "application_date",
    "status": "status",
    "voucherAmount": "voucher_amount",
    "voucherStartDate": "voucher_start_date",
    "voucherEndDate": "voucher_end_date",
    "notes": "notes",
}


class HudApplicationFilters(Schema):
    tenantId: UUID | None = None
    status: ApplicationStatus | None = None


# --- forms ---------------------------------------------------------------------------------


class HudFormOut(Schema):
    id: UUID
    applicationId: UUID | None
    formType: str
    formNumber: str | None
    documentUrl: str | None
    submittedAt: datetime | None
    status: str | None
    rejectionReason: str | None


class HudFormIn(Schema):
    formType: Str100
    formNumber: Str50 | None = None
    documentUrl: Str255 | None = None


class HudFormPatch(Schema):
    """Applicants: edit a pending form and set status `submitted`. Staff: accept or reject (with a reason)."""

    formType: Str100 = None  # type: ignore[assignment]
    formNumber: Str50 | None = None
    documentUrl: Str255 | None = None
    status: FormStatus = None  # type: ignore[assignment]
    rejectionReason: Notes | None = None


FORM_FIELDS = {
    "formType": "form_type",
    "formNumber": "form_number",
    "documentUrl": "document_url",
    "status": "status",
    "rejectionReason": "rejection_reason",
}
