"""Run every registered daily job (apps/common/jobs.py) for every day it has not done yet.

Guarantees, for each job name and day:
- at most once: the `(job, day)` row of `daily_job_runs` is inserted in the same transaction
  as the job's work, under a unique key; a second runner at the same time waits for the first
  one's transaction and then skips the day, and a rerun finds the row and skips it;
- at least once, in order: a job that raises rolls back its work and its row, is logged, and
  its later days wait, so the next run (the next periodic tick) retries that day first;
- catch-up: a job last done on day D runs D+1, D+2, ..., today, oldest first (at most
  `PMS_JOBS_MAX_CATCH_UP_DAYS` days back); a job never run before starts today.

"Today" is `django.utils.timezone.now()`'s date in UTC, so tests drive it with the clock.
"""

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, timedelta

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import Max
from django.utils import timezone

from apps.common.jobs import DailyJob, load_all
from apps.jobs.models import DailyJobRun

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Outcome:
    """What one (job, day) came to: `count` things done, or skipped (another run did the day), or failed."""

    job: str
    day: date
    count: int | None = None
    skipped: bool = False
    error: str | None = None


def current_day() -> date:
    """Today in UTC, from `timezone.now()` (the settings keep UTC)."""
    return timezone.now().date()


def days_due(job: str, today: date) -> list[date]:
    """The days `job` has still to do, oldest first: after its last done day up to `today`."""
    last = DailyJobRun.objects.filter(job=job).aggregate(last=Max("day"))["last"]
    earliest = today - timedelta(days=max(settings.JOBS_MAX_CATCH_UP_DAYS, 1) - 1)
    start = today if last is None else max(last + timedelta(days=1), earliest)
    return [start + timedelta(days=n) for n in range((today - start).days + 1)]


def run_day(name: str, job: DailyJob, day: date) -> int | None:
    """Do `job`'s work of `day` once: its count, or None when another run has done (or is doing) it."""
    with transaction.atomic():
        try:
            with transaction.atomic():
                run = DailyJobRun.objects.create(job=name, day=day)
        except IntegrityError:
            return None
        count = int(job(day))
        run.count = count
        run.finished_at = timezone.now()
        run.save(update_fields=["count", "finished_at"])
    return count


def run_daily_jobs(*, today: date | None = None, jobs: Mapping[str, DailyJob] | None = None) -> list[Outcome]:
    """Run every job (default: the whole register) for each day it has due; each outcome is logged."""
    today = today or current_day()
    outcomes: list[Outcome] = []
    for name, job in (load_all() if jobs is None else jobs).items():
        for day in days_due(name, today):
            try:
                count = run_day(name, job, day)
            except Exception as exc:
                logger.exception("daily job %s failed for %s; it is retried from that day on the next run", name, day)
                outcomes.append(Outcome(name, day, error=f"{type(exc).__name__}: {exc}"))
                break
            if count is None:
                logger.info("daily job %s for %s: already done by another run, skipped", name, day)
                outcomes.append(Outcome(name, day, skipped=True))
            else:
                logger.info("daily job %s for %s: %d done", name, day, count)
                outcomes.append(Outcome(name, day, count=count))
    return outcomes
