"""Writes of transactions, recurring transactions and late fees.

Each write runs in one transaction and checks its preconditions here, not in the views
(the views only translate HTTP): the caller needs `transactions.manage` (apps/common/policy.py:
admins and the `accountant` role everywhere, landlords and property managers on their properties;
a tenant gets 403 before any object is looked up), and the objects it names must be within that
scope (the `access_*` selectors: 404 otherwise).
Each write of a transaction drops the `transactions:recent:{userId}` lists of everyone who
may see it after the commit (`caches.transaction_changed`).
"""

from datetime import date, datetime
from decimal import Decimal
from typing import Any
from uuid import UUID

from django.db import transaction as db_transaction
from django.utils import timezone

from apps.common.validation import invalid
from apps.common.visibility import Caller
from apps.finance import caches, selectors
from apps.finance.models import LateFee, PaymentStatus, RecurringTransaction, Transaction
from apps.leasing import selectors as leasing_selectors
from apps.leasing.selectors import require_staff
from realtime import errors
from realtime.errors import ProtocolError

ONLY_PENDING_DELETABLE = "Only pending transactions can be deleted; this one is {status}."
ALREADY_WAIVED = "The late fee is already waived."
LEASE_PROPERTY_MISMATCH = "must be the property of leaseId's unit (or be left out)"
LEASE_OR_PROPERTY = "give leaseId or propertyId"
END_BEFORE_START = "must be on or after startDate"

MANAGE = "transactions.manage"


@db_transaction.atomic
def transaction_create(
    *,
    caller: Caller,
    lease_id: UUID | str | None,
    property_id: UUID | str | None,
    transaction_type: str,
    amount: Decimal,
    payment_status: str = PaymentStatus.PENDING,
    payment_date: datetime | None = None,
    **fields: Any,
) -> Transaction:
    """A transaction on one of the caller's leases (its property is the lease unit's) or on one
    of their properties alone. A `paid` one without `payment_date` is paid now."""
    require_staff(caller, MANAGE)
    lease = prop = None
    if lease_id is not None:
        lease = leasing_selectors.access_lease(caller=caller, lease_id=str(lease_id), permission=MANAGE)
    if property_id is not None:
        prop = selectors.access_property_for_transaction(caller=caller, property_id=str(property_id))
    if lease is None and prop is None:
        raise invalid("leaseId", LEASE_OR_PROPERTY)
    on_property = prop.pk if prop is not None else None
    if lease is not None:
        lease_property_id = lease.unit.property_id if lease.unit is not None else None
        if on_property is not None and on_property != lease_property_id:
            raise invalid("propertyId", LEASE_PROPERTY_MISMATCH)
        on_property = lease_property_id
    if payment_status == PaymentStatus.PAID and payment_date is None:
        payment_date = timezone.now()
    created = Transaction.objects.create(
        lease=lease,
        property_id=on_property,
        transaction_type=transaction_type,
        amount=amount,
        payment_status=payment_status,
        payment_date=payment_date,
        **fields,
    )
    created.refresh_from_db()  # the stored values (UTC times), exactly as later reads return them
    caches.transaction_changed(created)
    return created


@db_transaction.atomic
def transaction_update(*, caller: Caller, transaction_id: UUID | str, changes: dict[str, Any]) -> Transaction:
    """Apply `changes` (model field names); marking it paid without a payment date stamps now."""
    require_staff(caller, MANAGE)
    found = selectors.access_transaction(caller=caller, transaction_id=str(transaction_id))
    current = Transaction.objects.select_for_update().get(pk=found.pk)
    if (
        changes.get("payment_status") == PaymentStatus.PAID
        and "payment_date" not in changes
        and current.payment_date is None
    ):
        changes = {**changes, "payment_date": timezone.now()}
    before = (current.lease_id, current.property_id)
    for name, value in changes.items():
        setattr(current, name, value)
    current.save(update_fields=[*changes, "updated_at"])
    current.refresh_from_db()
    caches.transaction_changed(current, before=before)
    return current


@db_transaction.atomic
def transaction_delete(*, caller: Caller, transaction_id: UUID | str) -> None:
    """Delete a pending transaction; any other status answers 409 (money history is kept)."""
    require_staff(caller, MANAGE)
    found = selectors.access_transaction(caller=caller, transaction_id=str(transaction_id))
    current = Transaction.objects.select_for_update().filter(pk=found.pk).first()
    if current is None:
        return
    if current.payment_status != PaymentStatus.PENDING:
        raise ProtocolError(errors.CONFLICT, ONLY_PENDING_DELETABLE.format(status=current.payment_status))
    caches.transaction_changed(current)
    current.delete()


@db_transaction.atomic
def transaction_admin_save(*, tx: Transaction) -> Transaction:
    """Save the transaction as the admin's form built it (the admin site checked the caller); the
    lists of everyone who sees it, as it is and as it was, are dropped after the commit."""
    before = None
    if not tx._state.adding:
        before = Transaction.objects.filter(pk=tx.pk).values_list("lease_id", "property_id").first()
    tx.save()
    caches.transaction_changed(tx, before=before)
    return tx


@db_transaction.atomic
def transaction_admin_delete(*, tx: Transaction) -> None:
    """Delete the transaction (its late fees cascade); the lists of everyone who saw it are dropped."""
    caches.transaction_changed(tx)
    tx.delete()


def _check_dates(start: date, end: date | None) -> None:
    if end is not None and end < start:
        raise invalid("endDate", END_BEFORE_START)


@db_transaction.atomic
def recurring_transaction_create(
    *, caller: Caller, lease_id: UUID | str, start_date: date, end_date: date | None, **fields: Any
) -> RecurringTransaction:
    """A schedule of charges on one of the caller's leases (rows are generated by a later job, DESIGN.md)."""
    require_staff(caller, MANAGE)
    lease = leasing_selectors.access_lease(caller=caller, lease_id=str(lease_id), permission=MANAGE)
    _check_dates(start_date, end_date)
    return RecurringTransaction.objects.create(lease=lease, start_date=start_date, end_date=end_date, **fields)


@db_transaction.atomic
def recurring_transaction_update(
    *, caller: Caller, recurring_id: UUID | str, changes: dict[str, Any]
) -> RecurringTransaction:
    """Apply `changes` (model field names); the end date stays on or after the start."""
    require_staff(caller, MANAGE)
    found = selectors.access_recurring_transaction(caller=caller, recurring_id=str(recurring_id))
    current = RecurringTransaction.objects.select_for_update().get(pk=found.pk)
    _check_dates(changes.get("start_date", current.start_date), changes.get("end_date", current.end_date))
    for name, value in changes.items():
        setattr(current, name, value)
    current.save(update_fields=[*changes, "updated_at"])
    return current


def recurring_transaction_deactivate(*, caller: Caller, recurring_id: UUID | str) -> RecurringTransaction:
    """Stop the schedule (is_active false); the row stays for history."""
    return recurring_transaction_update(caller=caller, recurring_id=recurring_id, changes={"is_active": False})


@db_transaction.atomic
def late_fee_create(
    *,
    caller: Caller,
    transaction_id: UUID | str,
    amount: Decimal,
    days_late: int,
    applied_at: datetime | None = None,
) -> LateFee:
    """A late fee on one of the caller's transactions, applied now unless `applied_at` says otherwise."""
    require_staff(caller, MANAGE)
    found = selectors.access_transaction(caller=caller, transaction_id=str(transaction_id))
    fee = LateFee.objects.create(
        transaction=found, amount=amount, days_late=days_late, applied_at=applied_at or timezone.now()
    )
    fee.refresh_from_db()
    return fee


@db_transaction.atomic
def late_fee_waive(*, caller: Caller, late_fee_id: UUID | str, reason: str) -> LateFee:
    """Waive the fee once (by the caller, now, why); a second waive answers 409."""
    require_staff(caller, MANAGE)
    fee = selectors.access_late_fee(caller=caller, late_fee_id=str(late_fee_id))
    changed = (
        LateFee.objects.filter(pk=fee.pk)
        .exclude(is_waived=True)
        .update(is_waived=True, waived_by_id=caller.user_id, waived_at=timezone.now(), waive_reason=reason)
    )
    if not changed:
        raise ProtocolError(errors.CONFLICT, ALREADY_WAIVED)
    return LateFee.objects.get(pk=fee.pk)
