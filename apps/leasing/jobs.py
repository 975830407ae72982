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

from django.conf import settings

from apps.common.jobs import daily
from apps.leasing import lifecycle
from apps.leasing.models import Lease, LeaseStatus
from realtime.errors import ProtocolError

logger = logging.getLogger(__name__)

# Renewals of renewals within one run (a successor that has ended as of `day` too, after a
# long downtime) stop after this many rounds; the next run goes on where this one stopped.
MAX_END_ROUNDS = 100


@daily("leasing.lease_notices")
def send_lease_notices(day: date) -> int:
    """Send the ending notices due on `day`; returns how many leases were notified."""
    horizon = day + timedelta(days=max(settings.LEASE_NOTICE_DAYS))
    candidates = Lease.objects.filter(
        lease_status=LeaseStatus.ACTIVE, end_date__gte=day, end_date__lte=horizon
    ).order_by("end_date", "pk")
    sent = 0
    for lease_id in candidates.values_list("pk", flat=True):
        if lifecycle.lease_notice_send(lease_id=lease_id, day=day) is not None:
            sent += 1
    logger.info("leasing.lease_notices %s: %d leases notified", day, sent)
    return sent


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
