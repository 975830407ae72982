"""Request and response schemas of the finance API (camelCase on the wire, money as decimal strings),
and the maps from their field names to the model fields (used by apps/finance/api.py)."""

from datetime import date, datetime
from typing import Annotated
from uuid import UUID

from ninja import Schema
from pydantic import Field, StringConstraints

from apps.common.schemas import Money, PatchIn, Timestamp, text
from apps.finance.models import PaymentStatus, RecurrenceFrequency, RecurringTransactionType, TransactionType

WaiveReason = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=1000)]
DayOfMonth = Annotated[int, Field(ge=1, le=31)]
DaysLate = Annotated[int, Field(ge=0, le=100_000)]


# --- transactions ------------------------------------------------------------------------


class TransactionOut(Schema):
    id: UUID
    leaseId: UUID | None
    propertyId: UUID | None
    transactionType: str
    amount: str = Field(description="Decimal as a string.")
    dueDate: date | None
    paymentDate: datetime | None
    paymentMethod: str | None
    paymentStatus: str | None
    description: str | None
    referenceNumber: str | None
    isRecurring: bool | None
    createdAt: datetime | None
    updatedAt: datetime | None


class RecentTransactionsOut(Schema):
    items: list[TransactionOut]


TRANSACTION_FIELDS = {
    "transactionType": "transaction_type",
    "amount": "amount",
    "dueDate": "due_date",
    "paymentDate": "payment_date",
    "paymentMethod": "payment_method",
    "paymentStatus": "payment_status",
    "description": "description",
    "referenceNumber": "reference_number",
    "isRecurring": "is_recurring",
}


class TransactionIn(Schema):
    leaseId: UUID | None = Field(None, description="The lease charged; its unit's property is the transaction's.")
    propertyId: UUID | None = Field(None, description="Required when leaseId is left out.")
    transactionType: TransactionType
    amount: Money
    dueDate: date | None = None
    paymentDate: Timestamp | None = None
    paymentMethod: text(50) | None = None  # type: ignore[valid-type]
    paymentStatus: PaymentStatus = PaymentStatus.PENDING
    description: text(10_000) | None = None  # type: ignore[valid-type]
    referenceNumber: text(100) | None = None  # type: ignore[valid-type]
    isRecurring: bool = False


class TransactionPatch(PatchIn):
    NOT_NULL = frozenset({"transactionType", "amount", "paymentStatus", "isRecurring"})
    FIELDS = TRANSACTION_FIELDS

    transactionType: TransactionType | None = None
    amount: Money | None = None
    dueDate: date | None = None
    paymentDate: Timestamp | None = None
    paymentMethod: text(50) | None = None  # type: ignore[valid-type]
    paymentStatus: PaymentStatus | None = None
    description: text(10_000) | None = None  # type: ignore[valid-type]
    referenceNumber: text(100) | None = None  # type: ignore[valid-type]
    isRecurring: bool | None = None


class TransactionFilters(Schema):
    leaseId: UUID | None = None
    propertyId: UUID | None = None
    status: PaymentStatus | None = Field(None, description="payment_status")
    type: TransactionType | None = Field(None, description="transaction_type")
    dueFrom: date | None = Field(None, description="due_date >= dueFrom")
    dueTo: date | None = Field(None, description="due_date <= dueTo")


# --- recurring transactions ----------------------------------------------------------------


class RecurringTransactionOut(Schema):
    id: UUID
    leaseId: UUID | None
    transactionType: str
    amount: str = Field(description="Decimal as a string.")
    frequency: str | None
    dayOfMonth: int
    startDate: date
    endDate: date | None
    isActive: bool | None
    description: str | None
    createdAt: datetime | None
    updatedAt: datetime | None


RECURRING_FIELDS = {
    "transactionType": "transaction_type",
    "amount": "amount",
    "frequency": "frequency",
    "dayOfMonth": "day_of_month",
    "startDate": "start_date",
    "endDate": "end_date",
    "isActive": "is_active",
    "description": "description",
}


class RecurringTransactionIn(Schema):
    leaseId: UUID
    transactionType: RecurringTransactionType
    amount: Money
    frequency: RecurrenceFrequency = RecurrenceFrequency.MONTHLY
    dayOfMonth: DayOfMonth
    startDate: date
    endDate: date | None = None
    isActive: bool = True
    description: text(10_000) | None = None  # type: ignore[valid-type]


class RecurringTransactionPatch(PatchIn):
    NOT_NULL = frozenset({"transactionType", "amount", "frequency", "dayOfMonth", "startDate", "isActive"})
    FIELDS = RECURRING_FIELDS

    transactionType: RecurringTransactionType | None = None
    amount: Money | None = None
    frequency: RecurrenceFrequency | None = None
    dayOfMonth: DayOfMonth | None = None
    startDate: date | None = None
    endDate: date | None = None
    isActive: bool | None = None
    description: text(10_000) | None = None  # type: ignore[valid-type]


class RecurringTransactionFilters(Schema):
    leaseId: UUID | None = None
    isActive: bool | None = None


# --- late fees -----------------------------------------------------------------------------


class LateFeeOut(Schema):
    id: UUID
    transactionId: UUID | None
    amount: str = Field(description="Decimal as a string.")
    daysLate: int
    appliedAt: datetime | None
    isWaived: bool | None
    waivedBy: UUID | None
    waivedAt: datetime | None
    waiveReason: str | None


class LateFeeIn(Schema):
    transactionId: UUID
    amount: Money
    daysLate: DaysLate
    appliedAt: Timestamp | None = Field(None, description="Defaults to now.")


class LateFeeWaiveIn(Schema):
    reason: WaiveReason


class LateFeeFilters(Schema):
    transactionId: UUID | None = None
    isWaived: bool | None = None
