"""Real job worker processes (`manage.py procrastinate worker`, started exactly as `scripts/serve`
starts them) pick up the periodic task and run the daily jobs against the test database: a lease's
rent charges appear, once, however many workers run."""

import subprocess
import time
from datetime import date, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings
from django.utils import timezone
from pymongo import MongoClient

from apps.accounts.models import UserType
from apps.finance.models import RecurringTransaction, Transaction
from apps.jobs.models import DailyJobRun
from apps.leasing.models import Lease
from pms.devstack import ROOT, worker_command
from tests.e2e.conftest import START_TIMEOUT, STOP_TIMEOUT
from tests.factories import make_lease, make_property, make_unit, make_user

EVERY_SECOND = "* * * * * *"  # procrastinate's cron takes a sixth field, seconds


def months_back(day: date, months: int) -> date:
    index = day.year * 12 + day.month - 1 - months
    return date(index // 12, index % 12 + 1, 1)


def year_lease_with_rent(today: date) -> Lease:
    """A one-year lease that started on the 1st eleven months ago: twelve rents due by today."""
    start = months_back(today, 11)
    end = months_back(today, -1) - timedelta(days=1)  # the end of this month
    unit = make_unit(property=make_property(owner=make_user(user_type=UserType.LANDLORD)))
    lease = make_lease(unit=unit, tenants=(make_user(),), start_date=start, end_date=end)
    RecurringTransaction.objects.create(
        lease=lease,
        transaction_type="rent",
        amount=Decimal("1450.00"),
        frequency="monthly",
        day_of_month=1,
        start_date=start,
        end_date=end,
    )
    return lease


def start_workers(count: int, env: dict[str, str], tmp_path: Path) -> list[tuple[subprocess.Popen[bytes], Path]]:
    started = []
    for index in range(1, count + 1):
        log_path = tmp_path / f"worker-{index}.log"
        with log_path.open("wb") as log:
            process = subprocess.Popen(  # noqa: S603
                worker_command(f"test-worker-{index}"),
                cwd=ROOT,
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        started.append((process, log_path))
    return started


def stored_notifications(user_id: str, kind: str) -> list[dict[str, Any]]:
    client: MongoClient[dict[str, Any]] = MongoClient(settings.MONGO_URL)
    try:
        return list(client[settings.MONGO_DATABASE]["notifications"].find({"userId": user_id, "type": kind}))
    finally:
        client.close()


def stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(STOP_TIMEOUT)


@pytest.mark.timeout(120)
@pytest.mark.parametrize("workers", [1, 2])
def test_worker_processes_run_the_daily_jobs_once(workers: int, server_env: dict[str, str], tmp_path: Path) -> None:
    today = timezone.now().date()
    lease = year_lease_with_rent(today)
    env = {**server_env, "PMS_JOBS_CRON": EVERY_SECOND}
    started = start_workers(workers, env, tmp_path)
    try:
        deadline = time.monotonic() + START_TIMEOUT
        names = {"finance.recurring_charges", "finance.late_payments", "finance.due_reminders"}
        while not names <= set(DailyJobRun.objects.filter(day=today).values_list("job", flat=True)):
            for process, log_path in started:
                assert process.poll() is None, f"worker exited:\n{log_path.read_text(errors='replace')}"
            assert time.monotonic() < deadline, "\n".join(log.read_text(errors="replace") for _, log in started)
            time.sleep(0.2)
        # More ticks (every second) run the task again while the workers stay up: nothing is made twice.
        while sum(log.read_text(errors="replace").count("daily jobs (tick") for _, log in started) < 4:
            assert time.monotonic() < deadline, "the periodic task did not run again"
            time.sleep(0.2)
    finally:
        for process, _ in started:
            stop(process)
    logs = "\n".join(log.read_text(errors="replace") for _, log in started)
    dues = list(
        Transaction.objects.filter(lease=lease, is_recurring=True)
        .order_by("due_date")
        .values_list("due_date", flat=True)
    )
    assert len(dues) == 12 and len(set(dues)) == 12, logs
    assert DailyJobRun.objects.filter(job="finance.recurring_charges", day=today).count() == 1
    assert "daily job finance.recurring_charges for" in logs
    tenant = lease.tenant_links.get().tenant.user
    assert tenant is not None
    created = stored_notifications(str(tenant.pk), "charge_created")
    assert len(created) == 12, "each charge told once, by the worker process, after its commit"
    for process, _ in started:
        assert process.returncode == 0, logs  # SIGTERM: a graceful stop
