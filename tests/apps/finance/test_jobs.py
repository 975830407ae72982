"""Finance's daily jobs driven through months of a clock (time-machine): recurring charges once per
period (a rerun, a direct second call, two runners at once), short months, late charges with one
fee and a growing `days_late`, due reminders, and the tenants' notifications."""

import threading
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
import time_machine
from django.conf import settings
from django.db import connection
from django.utils import timezone
from pymongo import MongoClient

from apps.accounts.models import User, UserType
from apps.accounts.services import Principal
from apps.finance import jobs as finance_jobs
from apps.finance import notices, services
from apps.finance.models import LateFee, RecurringChargeRun, RecurringTransaction, Transaction
from apps.finance.schedule import due_dates
from apps.jobs.runner import run_daily_jobs
from apps.leasing.models import Lease
from tests.factories import make_lease, make_property, make_unit, make_user

FINANCE = {
    "finance.recurring_charges": finance_jobs.recurring_charges,
    "finance.late_payments": finance_jobs.late_payments,
    "finance.due_reminders": finance_jobs.due_reminders,
}
YEAR_START, YEAR_END = date(2027, 1, 1), date(2027, 12, 31)


def at(day: date, hour: int = 0, minute: int = 5) -> datetime:
    return datetime(day.year, day.month, day.day, hour, minute, tzinfo=UTC)


def lease_with_rent(*, day_of_month: int = 1, start: date = YEAR_START, end: date = YEAR_END) -> tuple[Lease, User]:
    landlord = make_user(user_type=UserType.LANDLORD)
    tenant = make_user()
    unit = make_unit(property=make_property(owner=landlord))
    lease = make_lease(unit=unit, tenants=(tenant,), start_date=start, end_date=end)
    RecurringTransaction.objects.create(
        lease=lease,
        transaction_type="rent",
        amount=Decimal("1450.00"),
        frequency="monthly",
        day_of_month=day_of_month,
        start_date=start,
        end_date=end,
    )
    return lease, tenant


def run_weekly(first: date, last: date, jobs: dict[str, Any] = FINANCE, *, every: int = 7) -> None:
    """The runner once a week (each run catches up the days since the last), then on `last`."""
    day = first
    while day < last:
        with time_machine.travel(at(day), tick=False):
            run_daily_jobs(jobs=jobs)
        day += timedelta(days=every)
    with time_machine.travel(at(last), tick=False):
        run_daily_jobs(jobs=jobs)


def rent_charges(lease: Lease) -> list[Transaction]:
    return list(Transaction.objects.filter(lease=lease, is_recurring=True).order_by("due_date"))


# --- schedule arithmetic ------------------------------------------------------------------------


def test_day_31_clamps_to_the_end_of_short_months() -> None:
    dues = list(
        due_dates(frequency="monthly", day_of_month=31, start=date(2027, 1, 1), end=None, until=date(2028, 4, 30))
    )
    assert dues[:4] == [date(2027, 1, 31), date(2027, 2, 28), date(2027, 3, 31), date(2027, 4, 30)]
    assert date(2028, 2, 29) in dues and len(dues) == 16


def test_quarterly_and_annual_step_from_the_start_month_within_the_dates() -> None:
    quarterly = due_dates(
        frequency="quarterly", day_of_month=15, start=date(2027, 1, 20), end=date(2027, 12, 31), until=date(2030, 1, 1)
    )
    assert list(quarterly) == [date(2027, 4, 15), date(2027, 7, 15), date(2027, 10, 15)]
    annually = due_dates(
        frequency="annually", day_of_month=29, start=date(2027, 2, 1), end=None, until=date(2029, 3, 1)
    )
    assert list(annually) == [date(2027, 2, 28), date(2028, 2, 29), date(2029, 2, 28)]


# --- recurring charges --------------------------------------------------------------------------


@pytest.mark.django_db
@pytest.mark.timeout(240)  # 24-40 s alone (427 days run twice, then the job 427 times); over 60 s beside a second suite
def test_a_one_year_lease_yields_exactly_twelve_charges_even_when_the_job_runs_twice() -> None:
    lease, _ = lease_with_rent()
    run_weekly(date(2026, 12, 1), date(2028, 1, 31))
    charges = rent_charges(lease)
    assert [c.due_date for c in charges] == [date(2027, month, 1) for month in range(1, 13)]
    assert all(c.amount == Decimal("1450.00") and c.transaction_type == "rent" for c in charges)
    assert all(c.property_id == lease.unit.property_id for c in charges)  # type: ignore[union-attr]
    # The runner again over the whole period (every day done: nothing runs), then the job itself
    # for every day of the year, bypassing the runner's table: the period key still holds.
    run_weekly(date(2026, 12, 1), date(2028, 1, 31))
    day = date(2026, 12, 1)
    while day <= date(2028, 1, 31):
        assert finance_jobs.recurring_charges(day) == 0
        day += timedelta(days=1)
    assert len(rent_charges(lease)) == 12
    assert RecurringChargeRun.objects.filter(recurring__lease=lease).count() == 12


@pytest.mark.django_db
def test_a_charge_is_made_lead_days_before_it_is_due_and_a_deleted_one_is_not_made_again() -> None:
    lease, _ = lease_with_rent(day_of_month=10)
    assert settings.CHARGE_LEAD_DAYS == 7
    assert finance_jobs.recurring_charges(date(2027, 1, 2)) == 0
    assert finance_jobs.recurring_charges(date(2027, 1, 3)) == 1
    charge = rent_charges(lease)[0]
    assert (charge.due_date, charge.payment_status, charge.is_recurring) == (date(2027, 1, 10), "pending", True)
    charge.delete()
    assert finance_jobs.recurring_charges(date(2027, 1, 4)) == 0
    assert rent_charges(lease) == []


@pytest.mark.django_db
def test_day_31_rent_is_due_on_the_last_day_of_short_months() -> None:
    lease, _ = lease_with_rent(day_of_month=31, start=date(2027, 1, 1), end=date(2028, 12, 31))
    finance_jobs.recurring_charges(date(2028, 12, 31))
    dues = [c.due_date for c in rent_charges(lease)]
    assert len(dues) == 24
    assert {date(2027, 2, 28), date(2027, 4, 30), date(2028, 2, 29), date(2028, 6, 30)} <= set(dues)


@pytest.mark.django_db
def test_inactive_or_ended_schedules_make_nothing_more() -> None:
    lease, _ = lease_with_rent()
    schedule = RecurringTransaction.objects.get(lease=lease)
    finance_jobs.recurring_charges(date(2027, 3, 1))
    assert len(rent_charges(lease)) == 3
    schedule.is_active = False
    schedule.save()
    assert finance_jobs.recurring_charges(date(2027, 6, 1)) == 0
    schedule.is_active = True
    schedule.end_date = date(2027, 4, 30)
    schedule.save()
    assert finance_jobs.recurring_charges(date(2027, 12, 1)) == 1  # April's, then the schedule ends
    assert len(rent_charges(lease)) == 4


@pytest.mark.django_db
def test_a_worker_down_for_three_days_over_a_due_date_catches_up_once() -> None:
    lease, _ = lease_with_rent(day_of_month=10)
    run_weekly(date(2027, 1, 1), date(2027, 1, 2))  # done through Jan 2: Jan 10's rent not made yet
    assert rent_charges(lease) == []
    # Down Jan 3-5 (Jan 3 is when Jan 10's rent is made, 7 days ahead); back on the 5th.
    with time_machine.travel(at(date(2027, 1, 5), 12, 0), tick=False):
        outcomes = run_daily_jobs(jobs=FINANCE)
        assert run_daily_jobs(jobs=FINANCE) == []
    days = sorted({(o.job, o.day) for o in outcomes})
    assert days == [(job, date(2027, 1, d)) for job in sorted(FINANCE) for d in (3, 4, 5)]
    made = [o for o in outcomes if o.job == "finance.recurring_charges"]
    assert [(o.day, o.count) for o in made] == [(date(2027, 1, 3), 1), (date(2027, 1, 4), 0), (date(2027, 1, 5), 0)]
    assert [c.due_date for c in rent_charges(lease)] == [date(2027, 1, 10)]


@pytest.mark.django_db(transaction=True)
def test_two_workers_at_once_make_each_charge_once() -> None:
    lease, _ = lease_with_rent()
    start = threading.Barrier(2)
    errors: list[BaseException] = []
    made: list[int] = []

    def worker() -> None:
        try:
            start.wait(5)
            made.append(finance_jobs.recurring_charges(YEAR_END))
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=worker) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert not errors, errors
    assert sum(made) == 12
    assert [c.due_date for c in rent_charges(lease)] == [date(2027, month, 1) for month in range(1, 13)]


# --- late payments ------------------------------------------------------------------------------


def staff(user: User) -> Principal:
    return Principal(
        user_id=str(user.pk),
        session_id="s",
        email=user.email,
        first_name="",
        last_name="",
        user_type=user.user_type,
        roles=(),
        expires_at=timezone.now(),
    )


def a_charge(*, amount: str = "1450.00", due: date = date(2027, 3, 1)) -> Transaction:
    lease, _ = lease_with_rent(start=date(2030, 1, 1), end=date(2030, 12, 31))  # its rent is years away
    return Transaction.objects.create(
        lease=lease,
        property_id=lease.unit.property_id,  # type: ignore[union-attr]
        transaction_type="rent",
        amount=Decimal(amount),
        due_date=due,
        payment_status="pending",
    )


def late_fee_of(charge: Transaction) -> LateFee:
    (fee,) = LateFee.objects.filter(transaction=charge)
    return fee


def test_the_late_fee_policy_is_flat_plus_percent_capped(settings: Any) -> None:
    assert services.late_fee_amount(Decimal("1450.00")) == Decimal("97.50")  # 25 + 5 % = 97.50
    assert services.late_fee_amount(Decimal("3000.00")) == Decimal("100.00")  # capped
    settings.LATE_FEE_MAX = Decimal(0)
    assert services.late_fee_amount(Decimal("3000.00")) == Decimal("175.00")  # no cap
    settings.LATE_FEE_FLAT, settings.LATE_FEE_PERCENT = Decimal(0), Decimal("2.5")
    assert services.late_fee_amount(Decimal("99.99")) == Decimal("2.50")


@pytest.mark.django_db
def test_a_late_charge_gets_exactly_one_fee_and_days_late_moves_until_paid() -> None:
    charge = a_charge()
    run_weekly(date(2027, 3, 1), date(2027, 3, 6))  # due the 1st, 5 days' grace: not late yet
    charge.refresh_from_db()
    assert charge.payment_status == "pending" and not LateFee.objects.filter(transaction=charge).exists()

    run_weekly(date(2027, 3, 7), date(2027, 3, 7))
    charge.refresh_from_db()
    fee = late_fee_of(charge)
    assert charge.payment_status == "late"
    assert (fee.amount, fee.days_late) == (Decimal("97.50"), 6)

    run_weekly(date(2027, 3, 8), date(2027, 3, 20))
    assert late_fee_of(charge).days_late == 19
    assert finance_jobs.late_payments(date(2027, 3, 20)) == 0  # rerun of a done day: nothing changes
    assert finance_jobs.late_payments(date(2027, 3, 12)) == 0  # an older day never lowers it

    landlord = charge.property.owner  # type: ignore[union-attr]
    assert landlord is not None
    services.transaction_update(caller=staff(landlord), transaction_id=charge.pk, changes={"payment_status": "paid"})
    run_weekly(date(2027, 3, 21), date(2027, 4, 30))
    assert late_fee_of(charge).days_late == 19, "paying stops the clock"


@pytest.mark.django_db
def test_a_partial_payment_past_grace_is_late_too_and_waiving_keeps_working() -> None:
    charge = a_charge(amount="3000.00")
    charge.payment_status = "partial"
    charge.save()
    assert finance_jobs.late_payments(date(2027, 3, 10)) == 1
    fee = late_fee_of(charge)
    assert (fee.amount, fee.days_late) == (Decimal("100.00"), 9)

    landlord = charge.property.owner  # type: ignore[union-attr]
    assert landlord is not None
    waived = services.late_fee_waive(caller=staff(landlord), late_fee_id=fee.pk, reason="first time")
    assert waived.is_waived and waived.days_late == 9
    finance_jobs.late_payments(date(2027, 3, 15))
    fee.refresh_from_db()
    assert fee.is_waived and fee.days_late == 9
    assert LateFee.objects.filter(transaction=charge).count() == 1, "a waived fee is the charge's one fee"


@pytest.mark.django_db
def test_charges_without_a_due_date_or_already_paid_are_left_alone() -> None:
    charge = a_charge()
    Transaction.objects.filter(pk=charge.pk).update(payment_status="paid")
    assert finance_jobs.late_payments(date(2027, 6, 1)) == 0
    assert not LateFee.objects.exists()


# --- notifications ------------------------------------------------------------------------------


def stored_notifications(user: User) -> list[dict[str, Any]]:
    client: MongoClient[dict[str, Any]] = MongoClient(settings.MONGO_URL)
    try:
        return list(client[settings.MONGO_DATABASE]["notifications"].find({"userId": str(user.pk)}).sort("_id", 1))
    finally:
        client.close()


@pytest.mark.django_db
def test_finance_notices_go_to_the_lease_tenants_and_payments_to_the_landlord_too() -> None:
    lease, tenant = lease_with_rent()
    finance_jobs.recurring_charges(date(2027, 1, 1))
    charge = rent_charges(lease)[0]
    (created,) = notices.charge_created(charge)
    assert (created.user_id, created.type, created.reference_id) == (str(tenant.pk), "charge_created", str(charge.pk))
    assert created.actions[0]["url"] == f"/api/v1/transactions/{charge.pk}"
    (soon,) = notices.charge_due_soon(charge, 3)
    assert soon.expires_at == datetime(2027, 1, 2, tzinfo=UTC)
    paid = notices.payment_recorded(charge)
    landlord_id = str(lease.unit.property.owner_id)  # type: ignore[union-attr]
    assert [n.user_id for n in paid] == [str(tenant.pk), landlord_id]


@pytest.mark.django_db(transaction=True)
def test_the_tenant_is_notified_of_the_charge_the_reminder_the_lateness_and_the_fee() -> None:
    lease, tenant = lease_with_rent(start=date(2027, 1, 1), end=date(2027, 1, 31))
    run_weekly(date(2026, 12, 20), date(2027, 1, 10), every=1)
    types = [n["type"] for n in stored_notifications(tenant)]
    assert types == ["charge_created", "charge_due_soon", "charge_late", "late_fee_applied"]
    charge = rent_charges(lease)[0]
    late = stored_notifications(tenant)[2]
    assert (late["referenceId"], late["referenceType"], late["priority"]) == (str(charge.pk), "transaction", "high")
    landlord = lease.unit.property.owner  # type: ignore[union-attr]
    assert landlord is not None
    assert stored_notifications(landlord) == []

    services.transaction_update(caller=staff(landlord), transaction_id=charge.pk, changes={"payment_status": "paid"})
    for user in (tenant, landlord):
        recorded = [n["referenceId"] for n in stored_notifications(user) if n["type"] == "payment_recorded"]
        assert recorded == [str(charge.pk)]


@pytest.mark.django_db
def test_a_reminder_caught_up_after_the_due_date_is_not_sent() -> None:
    lease_with_rent()
    finance_jobs.recurring_charges(date(2027, 1, 1))
    with time_machine.travel(at(date(2026, 12, 29)), tick=False):
        assert finance_jobs.due_reminders(date(2026, 12, 29)) == 1
    with time_machine.travel(at(date(2027, 1, 2)), tick=False):
        assert finance_jobs.due_reminders(date(2026, 12, 29)) == 0
