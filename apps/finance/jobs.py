"""Finance's daily jobs (registered with apps/common/jobs.py, run by the job runner in apps/jobs).

Each does the work that falls due on `day` and returns how many things it did; every write goes
through apps/finance/services.py. Timings are settings (README, "Configuration").
"""

import logging
from datetime import date, timedelta

from django.conf import settings
from django.db.models import Q
from django.utils import timezone

from apps.common.jobs import daily
from apps.finance import services
from apps.finance.models import PaymentStatus, RecurringChargeRun, RecurringTransaction, Transaction
from apps.finance.schedule import due_dates, period_start

logger = logging.getLogger(__name__)

UNPAID = (PaymentStatus.PENDING, PaymentStatus.PARTIAL)


@daily("finance.recurring_charges")
def recurring_charges(day: date) -> int:
    """Make the charge of every period of every active recurring transaction whose due date is on or
    before `day` + `PMS_CHARGE_LEAD_DAYS` (from `start_date`, up to `end_date`), once per period;
    returns how many charges were made. A schedule starting in the past gets its past periods."""
    until = day + timedelta(days=settings.CHARGE_LEAD_DAYS)
    schedules = (
        RecurringTransaction.objects.filter(is_active=True, lease__isnull=False, start_date__lte=until)
        .select_related("lease__unit")
        .order_by("start_date", "pk")
    )
    made = 0
    for recurring in schedules:
        done = set(RecurringChargeRun.objects.filter(recurring=recurring).values_list("period_start", flat=True))
        for due in due_dates(
            frequency=recurring.frequency,
            day_of_month=recurring.day_of_month,
            start=recurring.start_date,
            end=recurring.end_date,
            until=until,
        ):
            if period_start(due) in done:
                continue
            if services.recurring_charge_create(recurring=recurring, due_date=due) is not None:
                made += 1
    logger.info("recurring charges for %s: %d made", day, made)
    return made


@daily("finance.late_payments")
def late_payments(day: date) -> int:
    """Mark unpaid charges more than `PMS_LATE_GRACE_DAYS` past due `late`, give each late charge its
    one late fee, keep `days_late` current; returns how many charges changed."""
    cutoff = day - timedelta(days=settings.LATE_GRACE_DAYS)
    candidates = (
        Transaction.objects.filter(lease__isnull=False, due_date__isnull=False)
        .filter(
            Q(payment_status__in=UNPAID, due_date__lt=cutoff) | Q(payment_status=PaymentStatus.LATE, due_date__lt=day)
        )
        .order_by("due_date", "pk")
        .values_list("pk", flat=True)
    )
    became_late = fees = changed = 0
    for transaction_id in list(candidates):
        check = services.charge_check_late(transaction_id=transaction_id, day=day)
        became_late += check.became_late
        fees += check.fee is not None
        changed += check.changed
    logger.info(
        "late payments for %s: %d became late, %d late fees, %d charges changed", day, became_late, fees, changed
    )
    return changed


@daily("finance.due_reminders")
def due_reminders(day: date) -> int:
    """Remind the tenants of every unpaid charge due `PMS_DUE_REMINDER_DAYS` after `day`; returns
    how many reminders were sent (the runner runs each day once, so each charge is reminded once).
    A day caught up after its charges fell due sends nothing: the reminder would come too late."""
    days = settings.DUE_REMINDER_DAYS
    due = day + timedelta(days=days)
    if due < timezone.now().date():
        logger.info("due reminders for %s: skipped, charges due %s are already overdue", day, due)
        return 0
    charges = (
        Transaction.objects.filter(lease__isnull=False, payment_status__in=UNPAID, due_date=due)
        .select_related("lease", "property")
        .order_by("pk")
    )
    sent = sum(services.charge_remind_due(charge=charge, days=days) for charge in charges)
    logger.info("due reminders for %s: %d sent", day, sent)
    return sent
