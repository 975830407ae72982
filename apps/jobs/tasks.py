"""The worker's tasks (procrastinate, discovered by `procrastinate.contrib.django` in every app's
`tasks` module). Run them with `python manage.py procrastinate worker` (README: "What runs on its own").

`run_daily_jobs` is deferred by the workers' periodic deferrer on `PMS_JOBS_CRON` (default hourly
at :05): procrastinate records each cron tick once (`procrastinate_periodic_defers`), so however
many workers run, one job is deferred per tick; the queueing lock keeps at most one waiting and
the lock runs at most one at a time. Whatever runs it, apps/jobs/runner.py does each (job, day) once.
"""

import logging

from django.conf import settings
from django.db import close_old_connections
from procrastinate.contrib.django import app

from apps.jobs.runner import run_daily_jobs as run_all

logger = logging.getLogger(__name__)

DAILY_JOBS_TASK = "pms.jobs.run_daily_jobs"
DAILY_JOBS_LOCK = "pms.jobs.daily"


@app.periodic(cron=settings.JOBS_CRON, periodic_id="daily-jobs")
@app.task(name=DAILY_JOBS_TASK, queueing_lock=DAILY_JOBS_LOCK, lock=DAILY_JOBS_LOCK)
def run_daily_jobs(timestamp: int) -> int:
    """Run every daily job for the days it has due (the cron tick `timestamp` is only logged)."""
    close_old_connections()
    try:
        outcomes = run_all()
    finally:
        close_old_connections()
    done = sum(outcome.count or 0 for outcome in outcomes)
    failed = [f"{outcome.job} {outcome.day}" for outcome in outcomes if outcome.error]
    logger.info(
        "daily jobs (tick %s): %d job-days run, %d things done, failed: %s",
        timestamp,
        len(outcomes),
        done,
        failed or "none",
    )
    return done
