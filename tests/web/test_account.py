"""A tenant's "My lease and charges" in a real browser against a real uvicorn process and a real job
worker (`manage.py procrastinate worker`, as `scripts/serve` starts it): the lease (unit, property,
dates, rent) and the charges (due, paid, late; amounts, due dates) are shown, and they change
without a reload when the daily job makes this month's rent, when a payment is recorded and when
the lease changes."""

import asyncio
import os
from dataclasses import dataclass
from datetime import date, timedelta
from decimal import Decimal
from pathlib import Path

import pytest
from django.utils import timezone
from playwright.async_api import expect

from apps.accounts.models import User, UserType
from apps.finance.models import LateFee, RecurringTransaction, Transaction
from apps.leasing.models import Lease
from apps.properties.models import Property, Unit
from tests.e2e.conftest import ServerFactory, ServerProcess, login
from tests.e2e.test_notifications import call
from tests.e2e.test_worker import EVERY_SECOND, start_workers, stop
from tests.factories import make_lease, make_property, make_unit, make_user
from tests.web.conftest import PHONE, PageFactory, screenshot_path
from tests.web.test_bell import new_page, patient_expect  # noqa: F401  (fixtures)
from tests.web.test_pages import sign_in

pytestmark = pytest.mark.django_db(transaction=True)

KEEP_SCREENSHOTS = os.environ.get("PMS_SCREENSHOTS") == "1"
DUE_IN_DAYS = 5  # inside the charge lead days (7): the worker's first tick makes the charge


@dataclass
class Scene:
    tenant: User
    manager: User
    prop: Property
    unit: Unit
    lease: Lease
    paid: Transaction
    late: Transaction
    due: date
    server: ServerProcess


@pytest.fixture
def scene(start_servers: ServerFactory) -> Scene:
    """A tenant on an active lease with one paid and one late charge, and a monthly rent whose next
    charge falls due in DUE_IN_DAYS days (made by the daily job once a worker runs); one uvicorn."""
    today = timezone.now().date()
    manager = make_user(user_type=UserType.PROPERTY_MANAGER)
    tenant = make_user(first_name="Ana", last_name="Souza")
    prop = make_property(
        owner=make_user(user_type=UserType.LANDLORD), managers=(manager,), property_name="Oakwood Apartments"
    )
    unit = make_unit(property=prop, unit_number="101")
    lease = make_lease(
        unit=unit,
        tenants=(tenant,),
        start_date=today - timedelta(days=40),
        end_date=today + timedelta(days=400),
        monthly_rent=Decimal("1450.00"),
    )
    paid = Transaction.objects.create(
        lease=lease,
        property=prop,
        transaction_type="deposit",
        amount=Decimal("1450.00"),
        due_date=today - timedelta(days=40),
        payment_status="paid",
        payment_date=timezone.now() - timedelta(days=41),
    )
    late = Transaction.objects.create(
        lease=lease,
        property=prop,
        transaction_type="utility",
        amount=Decimal("82.40"),
        due_date=today - timedelta(days=12),
        payment_status="late",
        description="Water",
    )
    # Its late fee is applied already, so the worker's late-payment job has nothing to tell.
    LateFee.objects.create(transaction=late, amount=Decimal("25.00"), days_late=7, applied_at=timezone.now())
    due = today + timedelta(days=DUE_IN_DAYS)
    RecurringTransaction.objects.create(
        lease=lease,
        transaction_type="rent",
        amount=Decimal("1450.00"),
        frequency="monthly",
        day_of_month=due.day,
        start_date=due,
        end_date=lease.end_date,
    )
    [server] = start_servers(1)
    return Scene(tenant, manager, prop, unit, lease, paid, late, due, server)


@pytest.mark.timeout(180)  # a job worker process starts inside it
async def test_the_tenant_sees_lease_and_charges_and_they_change_live(
    scene: Scene,
    new_page: PageFactory,  # noqa: F811  (the fixture imported from test_bell)
    server_env: dict[str, str],
    tmp_path: Path,
) -> None:
    server = scene.server
    page = await new_page(PHONE)
    await sign_in(page, server, scene.tenant.email)
    await expect(page).to_have_url(f"{server.http_url}/requests/")
    await page.get_by_role("link", name="My lease and charges").click()
    await expect(page).to_have_url(f"{server.http_url}/account/")
    await expect(page.get_by_role("link", name="My lease and charges")).to_have_attribute("aria-current", "page")
    await expect(page.locator("#conn")).to_have_text("Live")

    lease = page.locator(f'.lease[data-id="{scene.lease.pk}"]')
    await expect(lease.get_by_role("heading")).to_have_text("Unit 101 · Oakwood Apartments")
    await expect(lease.locator("[data-field=rent]")).to_have_text("$1,450.00 a month")
    await expect(lease.locator(".lease-status")).to_have_text("active")
    rows = page.locator("#charges tbody tr")
    await expect(rows).to_have_count(2)
    await expect(page.locator(f'tr[data-id="{scene.late.pk}"]')).to_contain_text("Utility: Water")
    await expect(page.locator(f'tr[data-id="{scene.late.pk}"]')).to_contain_text("$82.40")
    await expect(page.locator(f'tr[data-id="{scene.late.pk}"] .status')).to_have_text("Late")
    await expect(page.locator(f'tr[data-id="{scene.paid.pk}"] .status')).to_have_text("Paid")
    await expect(page.locator("#balance")).to_have_text("Open charges: $82.40")
    await expect(page.get_by_role("list", name="Late fees")).to_contain_text("$25.00 late fee on Utility due")

    # The daily job (a real worker process) makes the rent due in DUE_IN_DAYS days: it appears.
    workers = start_workers(1, {**server_env, "PMS_JOBS_CRON": EVERY_SECOND}, tmp_path)
    try:
        rent = page.locator("#charges tbody tr", has_text="Rent")
        await expect(rent).to_have_count(1, timeout=30000)
    finally:
        for process, _ in workers:
            stop(process)
    await expect(rent.locator(".status")).to_have_text("Due")
    await expect(rent).to_contain_text("$1,450.00")
    await expect(rows).to_have_count(3)
    await expect(page.locator("#balance")).to_have_text("Open charges: $1,532.40")
    await expect(page.locator("#unread")).to_have_text("1")  # the bell heard the charge too

    # The manager records the late charge's payment: it turns Paid, no reload.
    token = (await asyncio.to_thread(login, server, scene.manager.email))["token"]
    await asyncio.to_thread(call, server, "PATCH", f"/transactions/{scene.late.pk}", token, {"paymentStatus": "paid"})
    await expect(page.locator(f'tr[data-id="{scene.late.pk}"] .status')).to_have_text("Paid")
    await expect(page.locator("#balance")).to_have_text("Open charges: $1,450.00")

    # The lease changes (`lease.updated` on `lease:changes:{id}`): the new rent shows, no reload.
    await asyncio.to_thread(call, server, "PATCH", f"/leases/{scene.lease.pk}", token, {"monthlyRent": "1495.00"})
    await expect(lease.locator("[data-field=rent]")).to_have_text("$1,495.00 a month")
    assert page.url == f"{server.http_url}/account/"
    await page.screenshot(path=str(screenshot_path("tenant-account.png", tmp_path, KEEP_SCREENSHOTS)), full_page=True)


async def test_the_account_page_is_for_tenants(
    scene: Scene,
    new_page: PageFactory,  # noqa: F811  (the fixture imported from test_bell)
) -> None:
    page = await new_page()
    await sign_in(page, scene.server, scene.manager.email)
    await expect(page).to_have_url(f"{scene.server.http_url}/board/")
    await page.goto(f"{scene.server.http_url}/account/")
    await expect(page).to_have_url(f"{scene.server.http_url}/board/")


def test_the_charge_rows_come_from_the_api_in_due_date_order(scene: Scene) -> None:
    """What the page lists is `GET /transactions` as the tenant sees it (latest due date first)."""
    token = login(scene.server, scene.tenant.email)["token"]
    listed = call(scene.server, "GET", "/transactions", token)["items"]
    assert [item["id"] for item in listed] == [str(scene.late.pk), str(scene.paid.pk)]
