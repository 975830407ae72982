"""The daily jobs of leasing (registered with `apps.common.jobs.daily`; the job runner calls them).

- `leasing.lease_notices`: the ending notices due on the day (`PMS_LEASE_NOTICE_DAYS` before a
  lease's end date, default 60 and 30), each once per lease;
- `leasing.lease_ends`: active leases whose end date is before the day end: expired, or
  renewed into a successor (`auto_renewal`).

Both keep the contract of `apps/common/jobs.py`: idempotent per day (the lifecycle services
act under the lease's row lock, on active leases only, and record each notice once), catch-up
safe (each does the day's work as of that day: a notice counts the days left from `day`, an
end is due the first day after `end_date`), and every write goes through the leasing services
(apps/leasing/lifecycle.py).
"""

import logging
from datetime import date, timedelta
from typing import Any

from django.conf import settings
from django.db.models import Exists, OuterRef

from apps.common.jobs import daily
from apps.leasing import lifecycle
from apps.leasing.models import Lease, LeaseNotice, LeaseStatus
from realtime.errors import ProtocolError

logger = logging.getLogger(__name__)

# Renewals of renewals within one run (a successor that has ended as of `day` too, after a
# long downtime) stop after this many rounds; the next run goes on where this one stopped.
MAX_END_ROUNDS = 100


@daily("leasing.lease_notices")
def send_lease_notices(day: date) -> int:
    """Send the ending notices due on `day`; returns how many leases were notified."""
    sent = 0
    for lease_id in _notice_candidates(day):
        if lifecycle.lease_notice_send(lease_id=lease_id, day=day) is not None:
            sent += 1
    logger.info("leasing.lease_notices %s: %d leases notified", day, sent)
    return sent


def _notice_candidates(day: date) -> list[Any]:
    """Active leases whose notice due on `day` has not gone out yet (nor a later one), by end date:
    for each period, the leases with more days left than the next shorter period and at most this
    many, without a notice of this period or a shorter one. The service checks again under the
    lease's lock; this only keeps a daily run from locking every lease of the notice window."""
    periods = sorted(settings.LEASE_NOTICE_DAYS)
    found: list[tuple[date, str, Any]] = []
    for index, period in enumerate(periods):
        fewest = periods[index - 1] + 1 if index else 0
        done = [lifecycle.ending_notice_key(days) for days in periods[: index + 1]]
        leases = (
            Lease.objects.filter(
                lease_status=LeaseStatus.ACTIVE,
                end_date__gte=day + timedelta(days=fewest),
                end_date__lte=day + timedelta(days=period),
            )
            .exclude(Exists(LeaseNotice.objects.filter(lease_id=OuterRef("pk"), notice__in=done)))
            .values_list("end_date", "pk")
        )
        found += [(end_date, str(pk), pk) for end_date, pk in leases]
    return [pk for _, _, pk in sorted(found)]


@daily("leasing.lease_ends")
def end_leases(day: date) -> int:
    """End the active leases whose end date is before `day` (expired or renewed); returns how many ended.

    A lease the services refuse to end (a domain conflict) is logged and left active: a later
    run tries it again.
    """
    ended = 0
    refused: set[str] = set()
    for _ in range(MAX_END_ROUNDS):
        due = Lease.objects.filter(lease_status=LeaseStatus.ACTIVE, end_date__lt=day).exclude(pk__in=refused)
        lease_ids = list(due.order_by("end_date", "pk").values_list("pk", flat=True))
        if not lease_ids:
            break
        for lease_id in lease_ids:
            try:
                if lifecycle.lease_end(lease_id=lease_id, day=day) is not None:
                    ended += 1
            except ProtocolError as error:
                refused.add(str(lease_id))
                logger.warning("leasing.lease_ends %s: lease %s not ended: %s", day, lease_id, error)
    logger.info("leasing.lease_ends %s: %d leases ended", day, ended)
    return ended
