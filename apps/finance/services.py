"""Writes of transactions, recurring transactions and late fees.

Each write runs in one transaction and checks its preconditions here, not in the views
(the views only translate HTTP): the caller needs `transactions.manage` (apps/common/policy.py:
admins and the `accountant` role everywhere, landlords and property managers on their properties;
a tenant gets 403 before any object is looked up), and the objects it names must be within that
scope (the `access_*` selectors: 404 otherwise).
A payment (a transaction created or changed to `paid` or `partial`) notifies the lease's tenants
and the property's landlord after commit (apps/finance/notices.py has the table).
The daily jobs' writes (recurring charges, late charges and fees, due reminders) are at the end.
Each write of a transaction drops the `transactions:recent:{userId}` lists of everyone who
may see it after the commit (`caches.transaction_changed`).
"""

from dataclasses import dataclass
from datetime import date, datetime
from decimal import ROUND_HALF_UP, Decimal
from typing import Any
from uuid import UUID

from django.conf import settings
from django.db import IntegrityError
from django.db import transaction as db_transaction
from django.utils import timezone

from apps.common.validation import invalid
from apps.common.visibility import Caller
from apps.events.notices import notify_on_commit
from apps.finance import caches, notices, selectors
from apps.finance.models import LateFee, PaymentStatus, RecurringChargeRun, RecurringTransaction, Transaction
from apps.finance.schedule import period_start
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
CENT = Decimal("0.01")
PAYMENT_STATUSES = (PaymentStatus.PAID, PaymentStatus.PARTIAL)


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
    if created.payment_status in PAYMENT_STATUSES:
        notify_on_commit(*notices.payment_recorded(created))
    return created


@db_transaction.atomic
def transaction_update(*, caller: Caller, transaction_id: UUID | str, changes: dict[str, Any]) -> Transaction:
    """Apply `changes` (model field names); marking it paid without a payment date stamps now."""
    require_staff(caller, MANAGE)
    found = selectors.access_transaction(caller=caller, transaction_id=str(transaction_id))
    current = Transaction.objects.select_for_update().get(pk=found.pk)
    status_before = current.payment_status
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
    if current.payment_status in PAYMENT_STATUSES and current.payment_status != status_before:
        notify_on_commit(*notices.payment_recorded(current))
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


# --- Writes of the daily jobs (apps/finance/jobs.py): the system acts, no caller ----------------


@db_transaction.atomic
def recurring_charge_create(*, recurring: RecurringTransaction, due_date: date) -> Transaction | None:
    """The charge of `recurring` for the period of `due_date`, made once: None when that period
    already has one (made by this or another worker, or made and deleted since).

    Exactly once: the period's `recurring_charge_runs` row is inserted first, under its unique
    key, in this transaction; a concurrent second call waits for this one to commit, then finds
    the key taken. The charge is pending, recurring, on the lease unit's property, due `due_date`;
    the lease's tenants are notified after commit.
    """
    try:
        with db_transaction.atomic():
            run = RecurringChargeRun.objects.create(recurring=recurring, period_start=period_start(due_date))
    except IntegrityError:
        return None
    lease = recurring.lease
    charge = Transaction.objects.create(
        lease=lease,
        property_id=lease.unit.property_id if lease is not None and lease.unit is not None else None,
        transaction_type=recurring.transaction_type,
        amount=recurring.amount,
        due_date=due_date,
        payment_status=PaymentStatus.PENDING,
        is_recurring=True,
        description=recurring.description or f"{recurring.get_transaction_type_display()} for {due_date:%B %Y}",
    )
    run.transaction = charge
    run.save(update_fields=["transaction"])
    caches.transaction_changed(charge)
    notify_on_commit(*notices.charge_created(charge))
    return charge


def late_fee_amount(amount: Decimal) -> Decimal:
    """The late-fee policy (settings): `PMS_LATE_FEE_FLAT` + `PMS_LATE_FEE_PERCENT` % of the charge,
    at most `PMS_LATE_FEE_MAX` (0: no cap), to the cent."""
    fee = settings.LATE_FEE_FLAT + amount * settings.LATE_FEE_PERCENT / 100
    if settings.LATE_FEE_MAX > 0:
        fee = min(fee, settings.LATE_FEE_MAX)
    return fee.quantize(CENT, rounding=ROUND_HALF_UP)


@dataclass(frozen=True)
class LateCheck:
    """What `charge_check_late` changed on one charge."""

    became_late: bool = False
    fee: LateFee | None = None
    days_late_updated: bool = False

    @property
    def changed(self) -> bool:
        return self.became_late or self.fee is not None or self.days_late_updated


@db_transaction.atomic
def charge_check_late(*, transaction_id: UUID | str, day: date) -> LateCheck:
    """Apply the late rules to one charge as of `day`, under a row lock on the charge.

    A `pending` or `partial` charge more than `PMS_LATE_GRACE_DAYS` past its due date becomes
    `late`. A late charge has exactly one late fee (the lock makes the check-then-insert safe;
    a fee staff added by hand counts as that one; no fee when the policy comes to 0); its
    `days_late` (days since the due date) only grows while the charge is late and the fee is not
    waived: paying (or waiving the charge) stops the clock. Tenants are notified after commit.
    """
    charge = (
        Transaction.objects.select_for_update(of=("self",))
        .select_related("lease", "property")
        .filter(pk=transaction_id)
        .first()
    )
    if charge is None or charge.due_date is None:
        return LateCheck()
    days = (day - charge.due_date).days
    became_late = False
    if charge.payment_status in (PaymentStatus.PENDING, PaymentStatus.PARTIAL) and days > settings.LATE_GRACE_DAYS:
        charge.payment_status = PaymentStatus.LATE
        charge.save(update_fields=["payment_status", "updated_at"])
        caches.transaction_changed(charge)
        notify_on_commit(*notices.charge_late(charge))
        became_late = True
    if charge.payment_status != PaymentStatus.LATE:
        return LateCheck(became_late=became_late)
    fee = LateFee.objects.filter(transaction=charge).order_by("applied_at").first()
    if fee is None:
        amount = late_fee_amount(charge.amount)
        if amount <= 0:
            return LateCheck(became_late=became_late)
        fee = LateFee.objects.create(transaction=charge, amount=amount, days_late=days, applied_at=timezone.now())
        fee.refresh_from_db()
        notify_on_commit(*notices.late_fee_applied(charge, fee))
        return LateCheck(became_late=became_late, fee=fee)
    updated = LateFee.objects.filter(pk=fee.pk, is_waived=False, days_late__lt=days).update(days_late=days)
    return LateCheck(became_late=became_late, days_late_updated=bool(updated))


def charge_remind_due(*, charge: Transaction, days: int) -> int:
    """Tell the lease's tenants that `charge` is due in `days` days (after the caller's commit);
    how many were told."""
    reminders = notices.charge_due_soon(charge, days)
    notify_on_commit(*reminders)
    return len(reminders)
