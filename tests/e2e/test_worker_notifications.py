"""End-to-end, every part a real process: a job worker (`manage.py procrastinate worker`, the command
`scripts/serve` starts, on a per-second cron) runs beside a uvicorn server (the production command
line). A tenant's socket, connected to uvicorn, is told live when

(a) the worker's daily job makes their rent charge (a recurring transaction due within
    `PMS_CHARGE_LEAD_DAYS`), the notice leaving the worker's process after its commit; and
(b) a manager changes their maintenance request over HTTP on uvicorn;

and the unread count over HTTP matches each time. While the worker keeps ticking, nothing is made or
told twice.
"""

import asyncio
import subprocess
import time
from dataclasses import dataclass
from datetime import date, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from django.db import connections
from django.utils import timezone

from apps.accounts.models import User, UserType
from apps.finance import notices as finance_notices
from apps.finance.models import RecurringTransaction, Transaction
from apps.leasing.models import Lease, Tenant
from apps.maintenance import notices as maintenance_notices
from apps.maintenance.models import MaintenanceRequest
from realtime import topics
from tests.e2e.conftest import START_TIMEOUT, WAIT, Client, ClientFactory, ServerFactory, ServerProcess, alogin
from tests.e2e.test_notifications import call
from tests.e2e.test_worker import EVERY_SECOND, start_workers, stop
from tests.factories import make_lease, make_property, make_unit, make_user

pytestmark = pytest.mark.django_db(transaction=True)

DUE_IN_DAYS = 5  # inside the charge lead days (7), outside the due reminder days (3): one notice, the charge's


@dataclass
class Scene:
    """A tenant with an active lease (ending in over a year: no lease notice falls due), a recurring
    rent due in `DUE_IN_DAYS` days, and a request the tenant filed (written directly: no notice)."""

    tenant: User
    manager: User
    request: MaintenanceRequest
    lease: Lease
    recurring: RecurringTransaction
    due: date


@pytest.fixture
def scene() -> Scene:
    today = timezone.now().date()
    manager = make_user(user_type=UserType.PROPERTY_MANAGER)
    tenant = make_user()
    prop = make_property(owner=make_user(user_type=UserType.LANDLORD), managers=(manager,))
    unit = make_unit(property=prop)
    lease = make_lease(
        unit=unit,
        tenants=(tenant,),
        start_date=today - timedelta(days=30),
        end_date=today + timedelta(days=400),
    )
    due = today + timedelta(days=DUE_IN_DAYS)
    recurring = RecurringTransaction.objects.create(
        lease=lease,
        transaction_type="rent",
        amount=Decimal("1450.00"),
        frequency="monthly",
        day_of_month=due.day,
        start_date=due,
        end_date=lease.end_date,
    )
    request = MaintenanceRequest.objects.create(
        unit=unit, tenant=Tenant.objects.get(user=tenant), category="plumbing", description="The sink leaks"
    )
    return Scene(tenant, manager, request, lease, recurring, due)


def charges_of(scene: Scene) -> list[Transaction]:
    """The lease's charges, read in a worker thread whose connection is closed again (the test
    database is dropped at teardown and must have no session left)."""
    try:
        return list(Transaction.objects.filter(lease=scene.lease))
    finally:
        connections.close_all()


def logs_of(workers: list[tuple[subprocess.Popen[bytes], Path]]) -> str:
    return "\n".join(path.read_text(errors="replace") for _, path in workers)


async def notification_within(
    socket: Client, workers: list[tuple[subprocess.Popen[bytes], Path]], seconds: float
) -> dict[str, Any]:
    """The next `notification` event on `socket` within `seconds` (polled in short bounded waits, so
    a worker that died is reported with its log instead of a bare timeout)."""
    deadline = time.monotonic() + seconds
    while True:
        for process, _ in workers:
            assert process.poll() is None, f"worker exited:\n{logs_of(workers)}"
        try:
            return await socket.next_event(lambda frame: frame["event"] == "notification")
        except TimeoutError:
            assert time.monotonic() < deadline, f"no notification within {seconds:.0f} s:\n{logs_of(workers)}"


async def logged(workers: list[tuple[subprocess.Popen[bytes], Path]], line: str, seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while line not in logs_of(workers):
        assert time.monotonic() < deadline, f"{line!r} not logged:\n{logs_of(workers)}"
        await asyncio.sleep(0.1)


async def ticks_at_least(workers: list[tuple[subprocess.Popen[bytes], Path]], count: int, seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while logs_of(workers).count("daily jobs (tick") < count:
        assert time.monotonic() < deadline, f"the periodic task did not run {count} times:\n{logs_of(workers)}"
        await asyncio.sleep(0.2)


@pytest.mark.timeout(120)
async def test_a_tenant_socket_hears_the_worker_charge_and_the_manager_change_live(
    scene: Scene,
    start_servers: ServerFactory,
    open_client: ClientFactory,
    server_env: dict[str, str],
    tmp_path: Path,
) -> None:
    [server] = start_servers(1)
    tenant_id = str(scene.tenant.pk)
    tenant_token = await alogin(server, scene.tenant.email)
    socket = await open_client(server, tenant_token)
    await socket.ok({"type": "subscribe", "topic": topics.notifications(tenant_id)})
    assert await unread(server, tenant_token) == 0

    # (a) The worker (started as scripts/serve starts it) runs today's daily jobs: the rent due in
    # DUE_IN_DAYS days is charged, and the tenant's socket on uvicorn is told.
    workers = start_workers(1, {**server_env, "PMS_JOBS_CRON": EVERY_SECOND}, tmp_path)
    try:
        charged = await notification_within(socket, workers, START_TIMEOUT + 10)
        [charge] = await asyncio.to_thread(charges_of, scene)
        assert charge.due_date == scene.due and charge.is_recurring
        assert charged["topic"] == topics.notifications(tenant_id)
        data = charged["data"]
        assert data["type"] == finance_notices.CHARGE_CREATED, data
        assert data["referenceId"] == str(charge.pk) and data["referenceType"] == "transaction"
        assert data["userId"] == tenant_id and data["isRead"] is False
        assert await unread(server, tenant_token) == 1
        # The worker logs the job after its commit has sent the notice: wait (bounded) for the line.
        await logged(workers, f"daily job finance.recurring_charges for {timezone.now().date()}: 1 done", WAIT)

        # (b) A manager changes the tenant's request over HTTP on uvicorn, the worker still running.
        manager_token = await alogin(server, scene.manager.email)
        changed = await asyncio.to_thread(
            call,
            server,
            "PATCH",
            f"/maintenance-requests/{scene.request.pk}",
            manager_token,
            {"status": "in_progress"},
        )
        assert changed["status"] == "in_progress"
        status = await notification_within(socket, workers, START_TIMEOUT)
        assert status["data"]["type"] == maintenance_notices.NOTICE_REQUEST_STATUS, status
        assert status["data"]["referenceId"] == str(scene.request.pk)
        assert await unread(server, tenant_token) == 2
        listed = await asyncio.to_thread(call, server, "GET", "/notifications", tenant_token)
        # Both listed (newest first by ObjectId: two processes' ids of the same second may list either way).
        assert sorted(n["id"] for n in listed["notifications"]) == sorted([status["data"]["id"], data["id"]])
        assert all(n["isRead"] is False for n in listed["notifications"])

        # The worker keeps ticking every second: the day is done, so no second charge and no second notice.
        ticks = logs_of(workers).count("daily jobs (tick")
        await ticks_at_least(workers, ticks + 2, START_TIMEOUT)
        await socket.assert_no_more_stored_events()
    finally:
        for process, _ in workers:
            stop(process)
    logs = logs_of(workers)
    assert len(await asyncio.to_thread(charges_of, scene)) == 1, logs
    assert await unread(server, tenant_token) == 2
    for process, _ in workers:
        assert process.returncode == 0, logs  # SIGTERM: a graceful stop


async def unread(server: ServerProcess, token: str) -> int:
    """The unread count over HTTP (`GET /api/v1/notifications/unread-count`)."""
    body = await asyncio.to_thread(call, server, "GET", "/notifications/unread-count", token)
    assert set(body) == {"unread"}, body
    return int(body["unread"])
