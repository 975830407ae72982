"""Request and response shapes of the leasing API (shared field types: apps/common/schemas.py).

Wire conventions: camelCase fields; money as exact decimal strings with two places;
dates and times ISO 8601 (times with their UTC offset); a PATCH changes only the fields
sent and refuses `null` for required ones (422 with the field and the reason).
"""

from datetime import date, datetime
from typing import Annotated, Any, Literal
from uuid import UUID

from ninja import Schema
from pydantic import (
    Field,
    StringConstraints,
    model_validator,
)

from apps.common.schemas import (
    NO_NUL,
    Income,
    Money,
    MoneyOrZero,
    PatchIn,
    Timestamp,
    money,
    text,
)
from apps.leasing.models import BackgroundCheckStatus, Lease, LeaseDocument, LeaseStatus, LeaseTenant, Tenant

REQUIRED_FOR_STAFF = "required for landlords and managers: a tenant record is created on one of your leases"

# Tenants


class TenantOut(Schema):
    id: UUID
    userId: UUID | None
    dateOfBirth: date
    ssnLastFour: str
    income: str | None = Field(description="Decimal as a string.")
    employmentStatus: str | None
    employerName: str | None
    emergencyContactName: str | None
    emergencyContactPhone: str | None
    backgroundCheckStatus: str | None
    creditCheckStatus: str | None
    createdAt: datetime | None
    updatedAt: datetime | None


TENANT_FIELDS = {
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

SsnLastFour = Annotated[str, StringConstraints(pattern=r"^[0-9]{4}$")]
Phone = Annotated[str, StringConstraints(strip_whitespace=True, max_length=20, pattern=NO_NUL)]


class TenantIn(Schema):
    userId: UUID = Field(description="A tenant-type user.")
    leaseId: UUID | None = Field(
        None, description="Attach the new record to this lease (required unless the caller is an admin)."
    )
    isPrimary: bool = Field(False, description="Primary tenant of `leaseId` (the first tenant always is).")
    dateOfBirth: date
    ssnLastFour: SsnLastFour
    income: Income | None = None
    employmentStatus: text(50) | None = None  # type: ignore[valid-type]
    employerName: text(255) | None = None  # type: ignore[valid-type]
    emergencyContactName: text(255) | None = None  # type: ignore[valid-type]
    emergencyContactPhone: Phone | None = None
    backgroundCheckStatus: BackgroundCheckStatus = BackgroundCheckStatus.NOT_SUBMITTED
    creditCheckStatus: BackgroundCheckStatus = BackgroundCheckStatus.NOT_SUBMITTED


class TenantPatch(PatchIn):
    NOT_NULL = frozenset({"dateOfBirth", "ssnLastFour", "backgroundCheckStatus", "creditCheckStatus"})
    FIELDS = TENANT_FIELDS

    dateOfBirth: date | None = None
    ssnLastFour: SsnLastFour | None = None
    income: Income | None = None
    employmentStatus: text(50) | None = None  # type: ignore[valid-type]
    employerName: text(255) | None = None  # type: ignore[valid-type]
    emergencyContactName: text(255) | None = None  # type: ignore[valid-type]
    emergencyContactPhone: Phone | None = None
    backgroundCheckStatus: BackgroundCheckStatus | None = None
    creditCheckStatus: BackgroundCheckStatus | None = None


class TenantFilters(Schema):
    userId: UUID | None = None


def tenant_out(tenant: Tenant) -> dict[str, Any]:
    return {
        "id": tenant.pk,
        "userId": tenant.user_id,
        "dateOfBirth": tenant.date_of_birth,
        "ssnLastFour": tenant.ssn_last_four,
        "income": money(tenant.income),
        "employmentStatus": tenant.employment_status,
        "employerName": tenant.employer_name,
        "emergencyContactName": tenant.emergency_contact_name,
        "emergencyContactPhone": tenant.emergency_contact_phone,
        "backgroundCheckStatus": tenant.background_check_status,
        "creditCheckStatus": tenant.credit_check_status,
        "createdAt": tenant.created_at,
        "updatedAt": tenant.updated_at,
    }


class LeaseOut(Schema):
    id: UUID
    unitId: UUID | None
    propertyId: UUID | None
    startDate: date
    endDate: date
    monthlyRent: str = Field(description="Decimal as a string.")
    securityDeposit: str = Field(description="Decimal as a string.")
    leaseStatus: str | None
    leaseDocumentUrl: str | None
    isSigned: bool | None
    specialTerms: str | None
    autoRenewal: bool | None
    createdAt: datetime | None
    updatedAt: datetime | None


LEASE_FIELDS = {
    "startDate": "start_date",
    "endDate": "end_date",
    "monthlyRent": "monthly_rent",
    "securityDeposit": "security_deposit",
    "leaseStatus": "lease_status",
    "leaseDocumentUrl": "lease_document_url",
    "isSigned": "is_signed",
    "specialTerms": "special_terms",
    "autoRenewal": "auto_renewal",
}


class LeaseIn(Schema):
    unitId: UUID
    startDate: date
    endDate: date
    monthlyRent: Money
    securityDeposit: MoneyOrZero
    leaseStatus: Literal["draft", "active"] = "draft"
    leaseDocumentUrl: text(255) | None = None  # type: ignore[valid-type]
    isSigned: bool = False
    specialTerms: text(10_000) | None = None  # type: ignore[valid-type]
    autoRenewal: bool = False


class LeasePatch(PatchIn):
    NOT_NULL = frozenset(
        {"startDate", "endDate", "monthlyRent", "securityDeposit", "leaseStatus", "isSigned", "autoRenewal"}
    )
    FIELDS = LEASE_FIELDS

    startDate: date | None = None
    endDate: date | None = None
    monthlyRent: Money | None = None
    securityDeposit: MoneyOrZero | None = None
    leaseStatus: LeaseStatus | None = None
    leaseDocumentUrl: text(255) | None = None  # type: ignore[valid-type]
    isSigned: bool | None = None
    specialTerms: text(10_000) | None = None  # type: ignore[valid-type]
    autoRenewal: bool | None = None


class LeaseFilters(Schema):
    unitId: UUID | None = None
    propertyId: UUID | None = None
    status: LeaseStatus | None = None
    startFrom: date | None = Field(None, description="start_date >= startFrom")
    startTo: date | None = Field(None, description="start_date <= startTo")
    endFrom: date | None = Field(None, description="end_date >= endFrom")
    endTo: date | None = Field(None, description="end_date <= endTo")


def lease_out(lease: Lease) -> dict[str, Any]:
    return {
        "id": lease.pk,
        "unitId": lease.unit_id,
        "propertyId": lease.unit.property_id if lease.unit is not None else None,
        "startDate": lease.start_date,
        "endDate": lease.end_date,
        "monthlyRent": money(lease.monthly_rent),
        "securityDeposit": money(lease.security_deposit),
        "leaseStatus": lease.lease_status,
        "leaseDocumentUrl": lease.lease_document_url,
        "isSigned": lease.is_signed,
        "specialTerms": lease.special_terms,
        "autoRenewal": lease.auto_renewal,
        "createdAt": lease.created_at,
        "updatedAt": lease.updated_at,
    }


class LeaseTenantOut(Schema):
    tenantId: UUID
    isPrimary: bool | None
    createdAt: datetime | None
    tenant: TenantOut


class LeaseTenantsOut(Schema):
    items: list[LeaseTenantOut]


class LeaseTenantIn(Schema):
    tenantId: UUID
    isPrimary: bool = False


class LeaseTenantsIn(Schema):
    tenants: list[LeaseTenantIn] = Field(min_length=1, max_length=20)

    @model_validator(mode="after")
    def _one_primary_no_duplicates(self) -> "LeaseTenantsIn":
        ids = [entry.tenantId for entry in self.tenants]
        if len(set(ids)) != len(ids):
            raise ValueError("tenants: each tenantId at most once")
        if sum(entry.isPrimary for entry in self.tenants) != 1:
            raise ValueError("tenants: exactly one entry has isPrimary true")
        return self


def lease_tenant_out(link: LeaseTenant) -> dict[str, Any]:
    return {
        "tenantId": link.tenant_id,
        "isPrimary": link.is_primary,
        "createdAt": link.created_at,
        "tenant": tenant_out(link.tenant),
    }


class LeaseDocumentOut(Schema):
    id: UUID
    leaseId: UUID | None
    documentType: str
    documentUrl: str
    uploadedBy: UUID | None
    uploadedAt: datetime | None
    isSigned: bool | None
    signedAt: datetime | None


class LeaseDocumentIn(Schema):
    documentType: text(100, 1)  # type: ignore[valid-type]
    documentUrl: text(255, 1)  # type: ignore[valid-type]
    isSigned: bool = False
    signedAt: Timestamp | None = None


def lease_document_out(document: LeaseDocument) -> dict[str, Any]:
    return {
        "id": document.pk,
        "leaseId": document.lease_id,
        "documentType": document.document_type,
        "documentUrl": document.document_url,
        "uploadedBy": document.uploaded_by_id,
        "uploadedAt": document.uploaded_at,
        "isSigned": document.is_signed,
        "signedAt": document.signed_at,
    }
