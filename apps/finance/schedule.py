"""The due dates of a recurring transaction: pure calendar arithmetic, no database."""

import calendar
from collections.abc import Iterator
from datetime import date

from apps.finance.models import RecurrenceFrequency

MONTHS_PER_PERIOD = {
    RecurrenceFrequency.MONTHLY: 1,
    RecurrenceFrequency.QUARTERLY: 3,
    RecurrenceFrequency.ANNUALLY: 12,
}


def clamped(year: int, month: int, day_of_month: int) -> date:
    """`day_of_month` of that month, clamped to the month's days (31 -> 28/29/30; below 1 -> 1)."""
    last = calendar.monthrange(year, month)[1]
    return date(year, month, min(max(day_of_month, 1), last))


def period_start(due: date) -> date:
    """The key of the period a due date belongs to: the first day of its month."""
    return due.replace(day=1)


def due_dates(
    *, frequency: str | None, day_of_month: int, start: date, end: date | None, until: date
) -> Iterator[date]:
    """Every due date on or after `start`, on or before `end` (if any) and `until`, oldest first.

    Periods step from `start`'s month by 1, 3 or 12 months (monthly when `frequency` is unset);
    a period whose clamped due date falls before `start` is not charged.
    """
    step = MONTHS_PER_PERIOD.get(RecurrenceFrequency(frequency or RecurrenceFrequency.MONTHLY), 1)
    last = until if end is None else min(end, until)
    index = start.year * 12 + start.month - 1
    while True:
        due = clamped(index // 12, index % 12 + 1, day_of_month)
        if due > last:
            return
        if due >= start:
            yield due
        index += step
