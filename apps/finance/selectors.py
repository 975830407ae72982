"""Reads of transactions, recurring transactions and late fees, filtered by who may see them.

The permission `transactions.view` in the caller's scope (apps/common/policy.py): admins
and the `accountant` role see everything; landlords and property managers what belongs to
the properties they own or manage (a transaction through its `property`, a recurring
transaction through its lease's unit, a late fee through its transaction); a tenant-type
user what belongs to their leases (any status), read-only. Anything else answers 404.
"""

from datetime import date, datetime
from decimal import Decimal
from typing import Any

from django.db.models import F, QuerySet

from apps.common import policy
from apps.common.visibility import Caller, not_found
from apps.finance.models import LateFee, RecurringTransaction, Transaction
from apps.leasing.selectors import scope_q, scoped
from apps.properties.models import Property

RECENT_COUNT = 20

TRANSACTION_PROPERTY = "property__"
TRANSACTION_TENANT_USER = "lease__tenant_links__tenant__"
VIEW = "transactions.view"


def _iso(value: date | datetime | None) -> str | None:
    return None if value is None else value.isoformat()


def _money(value: Decimal | None) -> str | None:
    return None if value is None else f"{value:.2f}"


def _text(value: Any) -> str | None:
    return None if value is None else str(value)


def transaction_data(transaction: Transaction) -> dict[str, Any]:
    """The transaction's wire shape, JSON-ready (money and dates as strings): the API body and
    the items of `transactions:recent:{userId}` are this same dict."""
    return {
        "id": str(transaction.pk),
        "leaseId": _text(transaction.lease_id),
        "propertyId": _text(transaction.property_id),
        "transactionType": transaction.transaction_type,
        "amount": _money(transaction.amount),
        "dueDate": _iso(transaction.due_date),
        "paymentDate": _iso(transaction.payment_date),
        "paymentMethod": transaction.payment_method,
        "paymentStatus": transaction.payment_status,
        "description": transaction.description,
        "referenceNumber": transaction.reference_number,
        "isRecurring": transaction.is_recurring,
        "createdAt": _iso(transaction.created_at),
        "updatedAt": _iso(transaction.updated_at),
    }


# Transactions


def transaction_list(
    *,
    caller: Caller,
    lease_id: str | None = None,
    property_id: str | None = None,
    status: str | None = None,
    transaction_type: str | None = None,
    due_from: date | None = None,
    due_to: date | None = None,
) -> QuerySet[Transaction]:
    """Transactions the caller may see, filtered (due-date bounds inclusive), latest due first; 403
    without `transactions.view`."""
    policy.require(caller, VIEW)
    queryset = scoped(
        Transaction.objects.all(),
        scope_q(caller, staff_path=TRANSACTION_PROPERTY, tenant_path=TRANSACTION_TENANT_USER, permission=VIEW),
    )
    filters: dict[str, Any] = {
        "lease_id": lease_id,
        "property_id": property_id,
        "payment_status": status,
        "transaction_type": transaction_type,
        "due_date__gte": due_from,
        "due_date__lte": due_to,
    }
    queryset = queryset.filter(**{key: value for key, value in filters.items() if value is not None})
    return queryset.order_by(F("due_date").desc(nulls_last=True), "-created_at", "id")


def access_transaction(*, caller: Caller, transaction_id: str) -> Transaction:
    """The transaction if the caller may see it; not_found otherwise."""
    transaction = transaction_list(caller=caller).filter(pk=transaction_id).first()
    if transaction is None:
        raise not_found()
    return transaction


def transaction_list_recent(*, caller: Caller) -> list[dict[str, Any]]:
    """The caller's RECENT_COUNT newest visible transactions (by creation), newest first, as wire dicts."""
    rows = transaction_list(caller=caller).order_by("-created_at", "-id")[:RECENT_COUNT]
    return [transaction_data(row) for row in rows]


def access_property_for_transaction(*, caller: Caller, property_id: str) -> Property:
    """A property in the caller's `transactions.manage` scope; not_found otherwise."""
    q = policy.visible_q(caller, "transactions.manage", property_path="")
    found = scoped(Property.objects.all(), q).filter(pk=property_id).first()
    if found is None:
        raise not_found()
    return found


# Recurring transactions


def recurring_transaction_list(
    *, caller: Caller, lease_id: str | None = None, is_active: bool | None = None
) -> QuerySet[RecurringTransaction]:
    """Recurring transactions of leases the caller may see, latest start first."""
    queryset = scoped(
        RecurringTransaction.objects.all(),
        scope_q(
            caller, staff_path="lease__unit__property__", tenant_path="lease__tenant_links__tenant__", permission=VIEW
        ),
    )
    if lease_id is not None:
        queryset = queryset.filter(lease_id=lease_id)
    if is_active is not None:
        queryset = queryset.filter(is_active=is_active)
    return queryset.order_by("-start_date", "-created_at", "id")


def access_recurring_transaction(*, caller: Caller, recurring_id: str) -> RecurringTransaction:
    """The recurring transaction if the caller may see it; not_found otherwise."""
    found = recurring_transaction_list(caller=caller).filter(pk=recurring_id).first()
    if found is None:
        raise not_found()
    return found


# Late fees


def late_fee_list(
    *, caller: Caller, transaction_id: str | None = None, is_waived: bool | None = None
) -> QuerySet[LateFee]:
    """Late fees on transactions the caller may see, latest applied first."""
    queryset = scoped(
        LateFee.objects.all(),
        scope_q(
            caller,
            staff_path="transaction__property__",
            tenant_path="transaction__lease__tenant_links__tenant__",
            permission=VIEW,
        ),
    )
    if transaction_id is not None:
        queryset = queryset.filter(transaction_id=transaction_id)
    if is_waived is not None:
        queryset = queryset.filter(is_waived=is_waived)
    return queryset.order_by("-applied_at", "id")


def access_late_fee(*, caller: Caller, late_fee_id: str) -> LateFee:
    """The late fee if the caller may see it; not_found otherwise."""
    found = late_fee_list(caller=caller).filter(pk=late_fee_id).first()
    if found is None:
        raise not_found()
    return found
