"""`manage.py seed_loadtest_users --leases N` gives the job worker work during a locust run: after the
day's jobs already ran, the seed's leases are charged and their overdue charges made late by the
next run of the daily jobs, once, however often the seed and the jobs run again."""

import json
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pytest
import time_machine
from django.core.management import call_command

from apps.finance.models import LateFee, PaymentStatus, Transaction
from apps.jobs.runner import run_daily_jobs
from apps.leasing.models import Lease, LeaseStatus
from apps.maintenance.models import MaintenanceRequest
from apps.properties.models import PropertyManager

pytestmark = pytest.mark.django_db

TODAY = date(2026, 12, 2)  # leases begin 2026-10-01; rent on the 1st and the 2nd: Oct, Nov, Dec each


def seed(out: Path) -> dict[str, Any]:
    call_command(
        "seed_loadtest_users",
        users=0,
        watchers=0,
        pairs=3,
        leases=2,
        publishers=0,
        prefix="seedtest",
        out=str(out),
    )
    data: dict[str, Any] = json.loads(out.read_text())
    return data


@time_machine.travel(datetime(2026, 12, 2, 10, 0, tzinfo=UTC), tick=False)
def test_leases_seed_gives_the_daily_jobs_work_once(tmp_path: Path) -> None:
    assert run_daily_jobs()  # the worker's start-up run of the day, before the seed
    data = seed(tmp_path / "first.json")
    pairs = data["pairs"]
    assert len(pairs) == 3
    assert "leaseId" not in pairs[2]  # only the first --leases pairs
    leases = [Lease.objects.get(pk=pair["leaseId"]) for pair in pairs[:2]]
    for pair, lease in zip(pairs, leases, strict=False):
        assert lease.lease_status == LeaseStatus.ACTIVE and lease.start_date == date(2026, 10, 1)
        assert lease.tenant_links.get().tenant.user_id is not None
        assert str(lease.tenant_links.get().tenant.user_id) == pair["a"]["id"]
        assert MaintenanceRequest.objects.get(pk=pair["requestId"]).unit_id == lease.unit_id
        assert PropertyManager.objects.filter(property__units__leases=lease, user_id=pair["b"]["id"]).exists()

    run_daily_jobs()  # the worker's next tick: the seed forgot today's runs of the two finance jobs
    for lease in leases:
        rents = Transaction.objects.filter(lease=lease, is_recurring=True).order_by("due_date")
        assert [charge.due_date.month for charge in rents if charge.due_date] == [10, 11, 12]
        overdue = Transaction.objects.get(lease=lease, is_recurring=False)
        assert overdue.payment_status == PaymentStatus.LATE
        assert LateFee.objects.filter(transaction=overdue).count() == 1

    # The seed again (same prefix) and the jobs again: the same leases, no charge or fee made twice.
    # (This run's late payments, now after the rent charges exist, makes October's and November's late.)
    again = seed(tmp_path / "second.json")
    assert [p.get("leaseId") for p in again["pairs"]] == [p.get("leaseId") for p in pairs]
    run_daily_jobs()
    for lease in leases:
        assert Transaction.objects.filter(lease=lease).count() == 4
        late = Transaction.objects.filter(lease=lease, payment_status=PaymentStatus.LATE)
        assert sorted(charge.due_date.month for charge in late if charge.due_date) == [10, 11, 11]
        for charge in late:
            assert LateFee.objects.filter(transaction=charge).count() == 1
