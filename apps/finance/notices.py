"""The notifications finance writes raise (delivered after commit by apps.events.notices).

| event                          | recipients                   | priority |
|--------------------------------|------------------------------|----------|
| `charge_created` (recurring)   | the lease's tenants          | medium   |
| `charge_due_soon` (N days)     | the lease's tenants          | medium   |
| `charge_late`                  | the lease's tenants          | high     |
| `late_fee_applied`             | the lease's tenants          | high     |
| `payment_recorded`             | the lease's tenants, landlord | low     |
"""

from collections.abc import Iterable
from dataclasses import replace
from datetime import UTC, datetime, time, timedelta

from apps.events.notices import Notice
from apps.finance.models import LateFee, Transaction
from apps.leasing.models import Tenant

CHARGE_CREATED = "charge_created"
CHARGE_DUE_SOON = "charge_due_soon"
CHARGE_LATE = "charge_late"
LATE_FEE_APPLIED = "late_fee_applied"
PAYMENT_RECORDED = "payment_recorded"
REFERENCE_TRANSACTION = "transaction"
REFERENCE_LATE_FEE = "late_fee"


def tenant_user_ids(charge: Transaction) -> list[str]:
    """The users of the charge's lease's tenants (none for a charge without a lease)."""
    if charge.lease_id is None:
        return []
    users = (
        Tenant.objects.filter(lease_links__lease_id=charge.lease_id, user__isnull=False)
        .values_list("user_id", flat=True)
        .distinct()
    )
    return sorted(str(user) for user in users)


def landlord_user_ids(charge: Transaction) -> list[str]:
    owner = charge.property.owner_id if charge.property is not None else None
    return [str(owner)] if owner is not None else []


def _view_charge(charge: Transaction) -> tuple[dict[str, str], ...]:
    return ({"label": "View charge", "url": f"/api/v1/transactions/{charge.pk}", "type": "link"},)


def _what(charge: Transaction) -> str:
    due = f", due {charge.due_date:%Y-%m-%d}" if charge.due_date else ""
    return f"{charge.get_transaction_type_display()} of {charge.amount}{due}"


def _for(users: Iterable[str], notice: Notice) -> list[Notice]:
    """`notice` (written for no one yet) once for each of `users`."""
    return [replace(notice, user_id=user) for user in users]


def charge_created(charge: Transaction) -> list[Notice]:
    return _for(
        tenant_user_ids(charge),
        Notice(
            user_id="",
            type=CHARGE_CREATED,
            title="New charge",
            message=f"A new charge was posted to your lease: {_what(charge)}.",
            reference_id=str(charge.pk),
            reference_type=REFERENCE_TRANSACTION,
            actions=_view_charge(charge),
        ),
    )


def charge_due_soon(charge: Transaction, days: int) -> list[Notice]:
    expires = datetime.combine(charge.due_date, time.min, tzinfo=UTC) + timedelta(days=1) if charge.due_date else None
    return _for(
        tenant_user_ids(charge),
        Notice(
            user_id="",
            type=CHARGE_DUE_SOON,
            title=f"Payment due in {days} days",
            message=f"Reminder: {_what(charge)}.",
            reference_id=str(charge.pk),
            reference_type=REFERENCE_TRANSACTION,
            actions=_view_charge(charge),
            expires_at=expires,
        ),
    )


def charge_late(charge: Transaction) -> list[Notice]:
    return _for(
        tenant_user_ids(charge),
        Notice(
            user_id="",
            type=CHARGE_LATE,
            title="Payment overdue",
            message=f"Your payment is late: {_what(charge)}.",
            reference_id=str(charge.pk),
            reference_type=REFERENCE_TRANSACTION,
            priority="high",
            actions=_view_charge(charge),
        ),
    )


def late_fee_applied(charge: Transaction, fee: LateFee) -> list[Notice]:
    return _for(
        tenant_user_ids(charge),
        Notice(
            user_id="",
            type=LATE_FEE_APPLIED,
            title="Late fee applied",
            message=f"A late fee of {fee.amount} was applied to {_what(charge)}.",
            reference_id=str(fee.pk),
            reference_type=REFERENCE_LATE_FEE,
            priority="high",
            actions=(
                {"label": "View late fee", "url": f"/api/v1/late-fees/{fee.pk}", "type": "link"},
                *_view_charge(charge),
            ),
        ),
    )


def payment_recorded(charge: Transaction) -> list[Notice]:
    recipients = dict.fromkeys([*tenant_user_ids(charge), *landlord_user_ids(charge)])
    return _for(
        recipients,
        Notice(
            user_id="",
            type=PAYMENT_RECORDED,
            title="Payment recorded",
            message=f"A payment was recorded ({charge.get_payment_status_display()}): {_what(charge)}.",
            reference_id=str(charge.pk),
            reference_type=REFERENCE_TRANSACTION,
            priority="low",
            actions=_view_charge(charge),
        ),
    )
