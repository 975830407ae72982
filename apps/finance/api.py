"""HTTP endpoints of transactions, recurring transactions and late fees (mounted at /api/v1 by pms/api.py).

Thin async views: parse, call a selector or service in a worker thread, serialize. Reads
follow apps/finance/selectors.py (forbidden objects answer 404); writes are for admins,
landlords and property managers of the property (a tenant gets 403), checked in
apps/finance/services.py. The schemas are in apps/finance/schemas.py. Money is a
decimal string, dates ISO 8601. GET /transactions/recent reads `transactions:recent:{userId}`
through (apps/finance/caches.py).
"""

from typing import Any
from uuid import UUID

from django.http import HttpRequest
from ninja import Query, Router, Status

from apps.common.http import token_auth
from apps.common.pagination import Page, PageParams, apaginate
from apps.common.schemas import call, money, principal
from apps.finance import caches, selectors, services
from apps.finance.models import LateFee, RecurringTransaction
from apps.finance.schemas import (
    RECURRING_FIELDS,
    TRANSACTION_FIELDS,
    LateFeeFilters,
    LateFeeIn,
    LateFeeOut,
    LateFeeWaiveIn,
    RecentTransactionsOut,
    RecurringTransactionFilters,
    RecurringTransactionIn,
    RecurringTransactionOut,
    RecurringTransactionPatch,
    TransactionFilters,
    TransactionIn,
    TransactionOut,
    TransactionPatch,
)

router = Router(tags=["finance"], auth=token_auth)


def _text(value: Any) -> str | None:
    return None if value is None else str(value)


# Transactions


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
    fields = {
        TRANSACTION_FIELDS[name]: getattr(value, "value", value)
        for name, value in payload.model_dump(exclude={"leaseId", "propertyId"}).items()
    }
    created = await call(
        services.transaction_create,
        caller=principal(request),
        lease_id=payload.leaseId,
        property_id=payload.propertyId,
        **fields,
    )
    return Status(201, selectors.transaction_data(created))


@router.get("/transactions/{transaction_id}", response=TransactionOut)
async def transactions_get(request: HttpRequest, transaction_id: UUID) -> Any:
    """One transaction the caller may see."""
    found = await call(selectors.access_transaction, caller=principal(request), transaction_id=str(transaction_id))
    return selectors.transaction_data(found)


@router.patch("/transactions/{transaction_id}", response=TransactionOut)
async def transactions_update(request: HttpRequest, transaction_id: UUID, payload: TransactionPatch) -> Any:
    """Change a transaction, e.g. mark it paid (paymentStatus `paid`, paymentDate defaults to now)."""
    updated = await call(
        services.transaction_update,
        caller=principal(request),
        transaction_id=transaction_id,
        changes=payload.changes(),
    )
    return selectors.transaction_data(updated)


@router.delete("/transactions/{transaction_id}", response={204: None})
async def transactions_delete(request: HttpRequest, transaction_id: UUID) -> Status:
    """Delete a pending transaction; 409 for any other status."""
    await call(services.transaction_delete, caller=principal(request), transaction_id=transaction_id)
    return Status(204, None)


# Recurring transactions


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
    fields = {
        RECURRING_FIELDS[name]: getattr(value, "value", value)
        for name, value in payload.model_dump(exclude={"leaseId"}).items()
    }
    created = await call(
        services.recurring_transaction_create, caller=principal(request), lease_id=payload.leaseId, **fields
    )
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
    updated = await call(
        services.recurring_transaction_update,
        caller=principal(request),
        recurring_id=recurring_id,
        changes=payload.changes(),
    )
    return recurring_out(updated)


@router.delete("/recurring-transactions/{recurring_id}", response=RecurringTransactionOut)
async def recurring_transactions_deactivate(request: HttpRequest, recurring_id: UUID) -> Any:
    """Deactivate the schedule (isActive false; the row stays for history) and return it."""
    deactivated = await call(
        services.recurring_transaction_deactivate, caller=principal(request), recurring_id=recurring_id
    )
    return recurring_out(deactivated)


# Late fees


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
    fee = await call(
        services.late_fee_create,
        caller=principal(request),
        transaction_id=payload.transactionId,
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
    waived = await call(
        services.late_fee_waive, caller=principal(request), late_fee_id=late_fee_id, reason=payload.reason
    )
    return late_fee_out(waived)
