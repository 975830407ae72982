"""Request and response schemas of the maintenance API (camelCase on the wire, money as decimal strings),
and the maps from their field names to the model fields (used by apps/maintenance/api.py)."""

from datetime import date, datetime, time
from decimal import Decimal
from typing import Annotated, Literal
from uuid import UUID

from ninja import Schema
from pydantic import AfterValidator, AwareDatetime, Field, StringConstraints

from apps.common.decimals import decimal_schema

PriorityName = Literal["low", "medium", "high", "emergency"]
RequestStatus = Literal["submitted", "assigned", "in_progress", "completed", "cancelled"]
WorkOrderStatusName = Literal["assigned", "scheduled", "in_progress", "completed", "cancelled"]
Money = Annotated[Decimal, Field(max_digits=10, decimal_places=2, ge=0), decimal_schema(10, 2)]
Text = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=10_000)]
Str20 = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=20)]
Str100 = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=100)]
Str255 = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=255)]
Email = Annotated[str, StringConstraints(strip_whitespace=True, max_length=255, pattern=r"^[^@\s]+@[^@\s]+$")]
Notes = Annotated[str, StringConstraints(max_length=10_000)]


def _local_time(value: time) -> time:
    """The columns are `TIME` without zone: an offset would be silently meaningless, so refuse it."""
    if value.tzinfo is not None:
        raise ValueError("give a local time without a UTC offset, e.g. 09:30:00")
    return value


LocalTime = Annotated[time, AfterValidator(_local_time)]


# --- maintenance requests ---------------------------------------------------------------


class MaintenanceRequestOut(Schema):
    id: UUID
    unitId: UUID | None
    propertyId: UUID | None
    tenantId: UUID | None
    category: str
    priority: str | None
    description: str
    status: str | None
    createdAt: datetime | None
    updatedAt: datetime | None
    completedAt: datetime | None
    isTenantCaused: bool | None
    estimatedCost: Decimal | None
    actualCost: Decimal | None


class MaintenanceRequestIn(Schema):
    unitId: UUID
    tenantId: UUID | None = Field(None, description="Staff only: the unit's tenant the request is for.")
    category: Str100
    description: Text
    priority: PriorityName = "medium"
    isTenantCaused: bool | None = Field(None, description="Staff only.")
    estimatedCost: Money | None = Field(None, description="Staff only.")
    actualCost: Money | None = Field(None, description="Staff only.")


class MaintenanceRequestPatch(Schema):
    """Tenants: category and description while `submitted`. Staff: everything."""

    category: Str100 = None  # type: ignore[assignment]
    description: Text = None  # type: ignore[assignment]
    priority: PriorityName = None  # type: ignore[assignment]
    status: RequestStatus = None  # type: ignore[assignment]
    isTenantCaused: bool | None = None
    estimatedCost: Money | None = None
    actualCost: Money | None = None


REQUEST_FIELDS = {
    "category": "category",
    "description": "description",
    "priority": "priority",
    "status": "status",
    "isTenantCaused": "is_tenant_caused",
    "estimatedCost": "estimated_cost",
    "actualCost": "actual_cost",
}


class MaintenanceRequestFilters(Schema):
    unitId: UUID | None = None
    propertyId: UUID | None = None
    status: RequestStatus | None = None
    priority: PriorityName | None = None
    createdFrom: datetime | None = Field(None, description="Created at or after (ISO 8601).")
    createdTo: datetime | None = Field(None, description="Created at or before (ISO 8601).")


# --- images --------------------------------------------------------------------------------


class MaintenanceImageIn(Schema):
    imageUrl: Str255
    isBefore: bool = True


class MaintenanceImageOut(Schema):
    id: UUID
    requestId: UUID | None
    imageUrl: str
    uploadedAt: datetime | None
    isBefore: bool | None


# --- counts --------------------------------------------------------------------------------


class MaintenanceCountsOut(Schema):
    propertyId: UUID
    total: int
    emergency: int
    high: int
    medium: int
    low: int
    open: int = Field(description="submitted + assigned")
    inProgress: int


# --- vendors -------------------------------------------------------------------------------


class VendorOut(Schema):
    id: UUID
    companyName: str
    contactName: str | None
    email: str | None
    phone: str
    serviceCategory: str
    isPreferred: bool | None
    notes: str | None
    insuranceExpiry: date | None
    licenseNumber: str | None
    createdAt: datetime | None
    updatedAt: datetime | None


class VendorIn(Schema):
    companyName: Str255
    contactName: Str255 | None = None
    email: Email | None = None
    phone: Str20
    serviceCategory: Str100
    isPreferred: bool = False
    notes: Notes | None = None
    insuranceExpiry: date | None = None
    licenseNumber: Str100 | None = None


class VendorPatch(Schema):
    companyName: Str255 = None  # type: ignore[assignment]
    contactName: Str255 | None = None
    email: Email | None = None
    phone: Str20 = None  # type: ignore[assignment]
    serviceCategory: Str100 = None  # type: ignore[assignment]
    isPreferred: bool = None  # type: ignore[assignment]
    notes: Notes | None = None
    insuranceExpiry: date | None = None
    licenseNumber: Str100 | None = None


VENDOR_FIELDS = {
    "companyName": "company_name",
    "contactName": "contact_name",
    "email": "email",
    "phone": "phone",
    "serviceCategory": "service_category",
    "isPreferred": "is_preferred",
    "notes": "notes",
    "insuranceExpiry": "insurance_expiry",
    "licenseNumber": "license_number",
}


class VendorFilters(Schema):
    serviceCategory: str | None = Field(None, max_length=100)
    isPreferred: bool | None = None


# --- work orders ---------------------------------------------------------------------------


class WorkOrderOut(Schema):
    id: UUID
    requestId: UUID | None
    propertyId: UUID | None
    vendorId: UUID | None
    assignedBy: UUID | None
    assignedAt: datetime | None
    scheduledDate: date | None
    scheduledTimeStart: time | None
    scheduledTimeEnd: time | None
    status: str | None
    completionNotes: str | None
    completedAt: datetime | None
    invoiceAmount: Decimal | None
    invoicePaid: bool | None
    invoicePaidDate: datetime | None


class WorkOrderIn(Schema):
    requestId: UUID
    vendorId: UUID | None = None
    workerId: UUID | None = Field(
        None, description="a maintenance worker (role maintenance_staff) instead of vendorId: their vendor record"
    )
    scheduledDate: date | None = None
    scheduledTimeStart: LocalTime | None = None
    scheduledTimeEnd: LocalTime | None = None
    status: WorkOrderStatusName = "assigned"
    completionNotes: Notes | None = None
    invoiceAmount: Money | None = None


class WorkOrderPatch(Schema):
    """Staff: everything. Users with the role `maintenance_staff`: status and completionNotes."""

    vendorId: UUID | None = None
    scheduledDate: date | None = None
    scheduledTimeStart: LocalTime | None = None
    scheduledTimeEnd: LocalTime | None = None
    status: WorkOrderStatusName = None  # type: ignore[assignment]
    completionNotes: Notes | None = None
    invoiceAmount: Money | None = None
    invoicePaid: bool = None  # type: ignore[assignment]
    invoicePaidDate: AwareDatetime | None = None


WORK_ORDER_FIELDS = {
    "vendorId": "vendor_id",
    "scheduledDate": "scheduled_date",
    "scheduledTimeStart": "scheduled_time_start",
    "scheduledTimeEnd": "scheduled_time_end",
    "status": "status",
    "completionNotes": "completion_notes",
    "invoiceAmount": "invoice_amount",
    "invoicePaid": "invoice_paid",
    "invoicePaidDate": "invoice_paid_date",
}


class WorkOrderFilters(Schema):
    requestId: UUID | None = None
    vendorId: UUID | None = None
    status: WorkOrderStatusName | None = None
    scheduledFrom: date | None = None
    scheduledTo: date | None = None


# --- maintenance workers -------------------------------------------------------------------


class WorkerOrderOut(Schema):
    id: UUID
    requestId: UUID | None
    status: str | None


class MaintenanceWorkerOut(Schema):
    """A maintenance worker: `active` while they have a socket open (`maintenance:active:workers`),
    `vendorId` their vendor record (null before their first work order), `workOrders` their open
    work orders the caller may see (`working`: one of them is in progress)."""

    id: UUID
    firstName: str
    lastName: str
    email: str
    active: bool
    working: bool
    vendorId: UUID | None
    workOrders: list[WorkerOrderOut]


class MaintenanceWorkersOut(Schema):
    items: list[MaintenanceWorkerOut]
