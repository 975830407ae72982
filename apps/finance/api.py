"""HTTP endpoints of transactions, recurring transactions and late fees (mounted at /api/v1 by pms/api.py).

Reads follow apps/finance/selectors.py (forbidden objects answer 404); writes need
`transactions.manage` (apps/common/policy.py: admins and the `accountant` role everywhere,
landlords and property managers on their properties; a tenant gets 403). Money is a
decimal string, dates ISO 8601. GET /transactions/recent reads `transactions:recent:{userId}`
through (apps/finance/caches.py).
"""

from datetime import date, datetime
from typing import Annotated, Any
from uuid import UUID

from django.http import HttpRequest
from ninja import Query, Router, Schema, Status
from pydantic import Field, StringConstraints

from apps.accounts.api import token_auth
from apps.common.pagination import Page, PageParams, apaginate
from apps.finance import caches, selectors, services
from apps.finance.models import (
    LateFee,
    PaymentStatus,
    RecurrenceFrequency,
    RecurringTransaction,
    RecurringTransactionType,
    TransactionType,
)
from apps.leasing import selectors as leasing_selectors
from apps.leasing.schemas import Money, PatchIn, Timestamp, call, money, principal, text
from apps.leasing.selectors import require_staff

router = Router(tags=["finance"], auth=token_auth)

MANAGE = "transactions.manage"

WaiveReason = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=1000)]
DayOfMonth = Annotated[int, Field(ge=1, le=31)]
DaysLate = Annotated[int, Field(ge=0, le=100_000)]


def _text(value: Any) -> str | None:
    return None if value is None else str(value)


# Transactions


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


@router.get("/transactions", response=Page[TransactionOut])
async def transactions_list(request: HttpRequest, filters: Query[TransactionFilters], page: Query[PageParams]) -> Any:
    """Transactions the caller may see, latest due date first; due-date bounds are inclusive."""
    queryset = selectors.transaction_list(
        caller=principal(request),
        lease_id=_text(filters.leaseId),
        property_id=_text(filters.propertyId),
        status=filters.status.value if filters.status else None,
        transaction_type=filters.type.value if filters.type else None,
        due_from=filters.dueFrom,
        due_to=filters.dueTo,
    )
    return await apaginate(queryset, page, selectors.transaction_data)


@router.get("/transactions/recent", response=RecentTransactionsOut)
async def transactions_recent(request: HttpRequest) -> Any:
    """The caller's 20 newest visible transactions (by creation), newest first; cached 15 min,
    dropped after any change that would alter it."""
    return {"items": await caches.arecent_transactions(caller=principal(request))}


@router.post("/transactions", response={201: TransactionOut})
async def transactions_create(request: HttpRequest, payload: TransactionIn) -> Status:
    """Record a charge or payment on one of the caller's leases or properties."""
    caller = principal(request)
    require_staff(caller, MANAGE)
    lease = prop = None
    if payload.leaseId is not None:
        lease = await call(
            leasing_selectors.access_lease, caller=caller, lease_id=str(payload.leaseId), permission=MANAGE
        )
    if payload.propertyId is not None:
        prop = await call(selectors.access_property_for_transaction, caller=caller, property_id=str(payload.propertyId))
    fields = {
        TRANSACTION_FIELDS[name]: getattr(value, "value", value)
        for name, value in payload.model_dump(exclude={"leaseId", "propertyId"}).items()
    }
    created = await call(services.transaction_create, lease=lease, property=prop, **fields)
    return Status(201, selectors.transaction_data(created))


@router.get("/transactions/{transaction_id}", response=TransactionOut)
async def transactions_get(request: HttpRequest, transaction_id: UUID) -> Any:
    """One transaction the caller may see."""
    found = await call(selectors.access_transaction, caller=principal(request), transaction_id=str(transaction_id))
    return selectors.transaction_data(found)


@router.patch("/transactions/{transaction_id}", response=TransactionOut)
async def transactions_update(request: HttpRequest, transaction_id: UUID, payload: TransactionPatch) -> Any:
    """Change a transaction, e.g. mark it paid (paymentStatus `paid`, paymentDate defaults to now)."""
    caller = principal(request)
    require_staff(caller, MANAGE)
    found = await call(selectors.access_transaction, caller=caller, transaction_id=str(transaction_id))
    updated = await call(services.transaction_update, transaction=found, changes=payload.changes())
    return selectors.transaction_data(updated)


@router.delete("/transactions/{transaction_id}", response={204: None})
async def transactions_delete(request: HttpRequest, transaction_id: UUID) -> Status:
    """Delete a pending transaction; 409 for any other status."""
    caller = principal(request)
    require_staff(caller, MANAGE)
    found = await call(selectors.access_transaction, caller=caller, transaction_id=str(transaction_id))
    await call(services.transaction_delete, transaction=found)
    return Status(204, None)


# Recurring transactions


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


def recurring_out(recurring: RecurringTransaction) -> dict[str, Any]:
    return {
        "id": recurring.pk,
        "leaseId": recurring.lease_id,
        "transactionType": recurring.transaction_type,
        "amount": money(recurring.amount),
        "frequency": recurring.frequency,
        "dayOfMonth": recurring.day_of_month,
        "startDate": recurring.start_date,
        "endDate": recurring.end_date,
        "isActive": recurring.is_active,
        "description": recurring.description,
        "createdAt": recurring.created_at,
        "updatedAt": recurring.updated_at,
    }


@router.get("/recurring-transactions", response=Page[RecurringTransactionOut])
async def recurring_transactions_list(
    request: HttpRequest, filters: Query[RecurringTransactionFilters], page: Query[PageParams]
) -> Any:
    """Recurring transactions of leases the caller may see, latest start first."""
    queryset = selectors.recurring_transaction_list(
        caller=principal(request), lease_id=_text(filters.leaseId), is_active=filters.isActive
    )
    return await apaginate(queryset, page, recurring_out)


@router.post("/recurring-transactions", response={201: RecurringTransactionOut})
async def recurring_transactions_create(request: HttpRequest, payload: RecurringTransactionIn) -> Status:
    """Schedule a charge on one of the caller's leases."""
    caller = principal(request)
    require_staff(caller, MANAGE)
    lease = await call(leasing_selectors.access_lease, caller=caller, lease_id=str(payload.leaseId), permission=MANAGE)
    fields = {
        RECURRING_FIELDS[name]: getattr(value, "value", value)
        for name, value in payload.model_dump(exclude={"leaseId"}).items()
    }
    created = await call(services.recurring_transaction_create, lease=lease, **fields)
    return Status(201, recurring_out(created))


@router.get("/recurring-transactions/{recurring_id}", response=RecurringTransactionOut)
async def recurring_transactions_get(request: HttpRequest, recurring_id: UUID) -> Any:
    """One recurring transaction the caller may see."""
    found = await call(
        selectors.access_recurring_transaction, caller=principal(request), recurring_id=str(recurring_id)
    )
    return recurring_out(found)


@router.patch("/recurring-transactions/{recurring_id}", response=RecurringTransactionOut)
async def recurring_transactions_update(
    request: HttpRequest, recurring_id: UUID, payload: RecurringTransactionPatch
) -> Any:
    """Change a schedule (isActive true re-activates it)."""
    caller = principal(request)
    require_staff(caller, MANAGE)
    found = await call(selectors.access_recurring_transaction, caller=caller, recurring_id=str(recurring_id))
    return recurring_out(await call(services.recurring_transaction_update, recurring=found, changes=payload.changes()))


@router.delete("/recurring-transactions/{recurring_id}", response=RecurringTransactionOut)
async def recurring_transactions_deactivate(request: HttpRequest, recurring_id: UUID) -> Any:
    """Deactivate the schedule (isActive false; the row stays for history) and return it."""
    caller = principal(request)
    require_staff(caller, MANAGE)
    found = await call(selectors.access_recurring_transaction, caller=caller, recurring_id=str(recurring_id))
    return recurring_out(await call(services.recurring_transaction_deactivate, recurring=found))


# Late fees


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


def late_fee_out(fee: LateFee) -> dict[str, Any]:
    return {
        "id": fee.pk,
        "transactionId": fee.transaction_id,
        "amount": money(fee.amount),
        "daysLate": fee.days_late,
        "appliedAt": fee.applied_at,
        "isWaived": fee.is_waived,
        "waivedBy": fee.waived_by_id,
        "waivedAt": fee.waived_at,
        "waiveReason": fee.waive_reason,
    }


@router.get("/late-fees", response=Page[LateFeeOut])
async def late_fees_list(request: HttpRequest, filters: Query[LateFeeFilters], page: Query[PageParams]) -> Any:
    """Late fees on transactions the caller may see, latest applied first."""
    queryset = selectors.late_fee_list(
        caller=principal(request), transaction_id=_text(filters.transactionId), is_waived=filters.isWaived
    )
    return await apaginate(queryset, page, late_fee_out)


@router.post("/late-fees", response={201: LateFeeOut})
async def late_fees_create(request: HttpRequest, payload: LateFeeIn) -> Status:
    """Apply a late fee to one of the caller's transactions."""
    caller = principal(request)
    require_staff(caller, MANAGE)
    found = await call(selectors.access_transaction, caller=caller, transaction_id=str(payload.transactionId))
    fee = await call(
        services.late_fee_create,
        transaction=found,
        amount=payload.amount,
        days_late=payload.daysLate,
        applied_at=payload.appliedAt,
    )
    return Status(201, late_fee_out(fee))


@router.get("/late-fees/{late_fee_id}", response=LateFeeOut)
async def late_fees_get(request: HttpRequest, late_fee_id: UUID) -> Any:
    """One late fee the caller may see."""
    return late_fee_out(await call(selectors.access_late_fee, caller=principal(request), late_fee_id=str(late_fee_id)))


@router.post("/late-fees/{late_fee_id}/waive", response=LateFeeOut)
async def late_fees_waive(request: HttpRequest, late_fee_id: UUID, payload: LateFeeWaiveIn) -> Any:
    """Waive the fee with a reason (by the caller, now); 409 if it is already waived."""
    caller = principal(request)
    require_staff(caller, MANAGE)
    fee = await call(selectors.access_late_fee, caller=caller, late_fee_id=str(late_fee_id))
    waived = await call(services.late_fee_waive, late_fee=fee, waived_by_id=caller.user_id, reason=payload.reason)
    return late_fee_out(waived)
