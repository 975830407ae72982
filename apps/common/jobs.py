"""The daily domain jobs: what each app does on its own once per day, and the register the job runner reads.

Each app keeps its daily work in `apps/<app>/jobs.py` as plain functions decorated with
`@daily("<name>")`. A daily job `job(day)` does the work that falls due on `day` (a
`datetime.date` in UTC) and returns how many things it did (charges made, leases ended, ...).

The contract every daily job keeps, so the runner may call it freely:
- idempotent per day: calling it twice for the same `day`, or from two workers at once,
  does the work once (a unique key per object and period, or a row lock; never "check then
  write" without one);
- catch-up safe: the runner calls it for every day it missed, oldest first, so a job must
  do `day`'s work as of `day` (a charge due on `day`, not today), and calling it for a past
  day after a later one did nothing wrong;
- every write goes through the app's services (events and notifications leave with them).

The job runner (procrastinate, `apps/jobs`) imports every installed app's `jobs` module with
`load_all()` and schedules each registered job once per day.
"""

from collections.abc import Callable
from datetime import date

from django.utils.module_loading import autodiscover_modules

DailyJob = Callable[[date], int]

DAILY: dict[str, DailyJob] = {}


def daily(name: str) -> Callable[[DailyJob], DailyJob]:
    """Register `job` as the daily job `name` (unique across apps)."""

    def register(job: DailyJob) -> DailyJob:
        if DAILY.get(name, job) is not job:
            raise ValueError(f"daily job {name!r} is registered twice")
        DAILY[name] = job
        return job

    return register


def load_all() -> dict[str, DailyJob]:
    """Import every installed app's `jobs` module (registering its daily jobs); the register, by name."""
    autodiscover_modules("jobs")
    return dict(sorted(DAILY.items()))
