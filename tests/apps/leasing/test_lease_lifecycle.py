"""The lease lifecycle driven by the clock: the daily jobs send the ending notices once, end a
lease on the first day after its end date (expired, or renewed into one successor, also when two
workers run at once), and catch up after downtime; the notices land in MongoDB `notifications`."""

import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from typing import Any

import pytest
import time_machine
from django.db import connection

from apps.accounts.models import User
from apps.common.jobs import load_all
from apps.leasing import jobs, lifecycle, services
from apps.leasing.models import Lease, LeaseNotice, LeaseStatus, LeaseTenant
from apps.properties.models import Property, Unit
from tests.apps.leasing.test_invitations_realtime import stored_notifications
from tests.factories import make_property, make_unit, make_user

pytestmark = pytest.mark.django_db(transaction=True)

START, END = date(2027, 1, 1), date(2027, 12, 31)


@dataclass
class Place:
    landlord: User
    manager: User
    tenant: User
    co_tenant: User
    prop: Property
    unit: Unit

    @property
    def people(self) -> list[User]:
        return [self.tenant, self.co_tenant, self.landlord, self.manager]


@pytest.fixture
def place() -> Place:
    landlord = make_user(user_type="landlord")
    manager = make_user(user_type="property_manager")
    prop = make_property(owner=landlord, managers=(manager,))
    return Place(landlord, manager, make_user(), make_user(), prop, make_unit(property=prop))


def lease_on(place: Place, *, start: date = START, end: date = END, unit: Unit | None = None, **fields: Any) -> Lease:
    """An active lease made through the services, the co-tenant first and the tenant the primary."""
    lease = services.lease_create(
        unit=unit or place.unit,
        start_date=start,
        end_date=end,
        monthly_rent=Decimal("1450.00"),
        security_deposit=Decimal("900.00"),
        lease_status=LeaseStatus.ACTIVE,
        special_terms="No pets.",
        **fields,
    )
    for user, primary in ((place.co_tenant, False), (place.tenant, True)):
        services.tenant_create(
            user_id=str(user.pk), lease=lease, is_primary=primary, date_of_birth=date(1990, 5, 17), ssn_last_four="1234"
        )
    return lease


def on(day: date, job: Callable[[date], int]) -> int:
    """Run `job` for `day` the way the runner does, a few minutes into that day (the clock moved there)."""
    with time_machine.travel(datetime.combine(day, time(0, 5), tzinfo=UTC)):
        return job(day)


def days(first: date, last: date) -> Iterator[date]:
    day = first
    while day <= last:
        yield day
        day += timedelta(days=1)


def drive(first: date, last: date, *, runs: int = 2) -> dict[str, int]:
    """Every day from `first` to `last`, every leasing job `runs` times; the work done, by job."""
    done = {"notices": 0, "ends": 0}
    for day in days(first, last):
        for _ in range(runs):
            done["notices"] += on(day, jobs.send_lease_notices)
            done["ends"] += on(day, jobs.end_leases)
    return done


def sent(lease: Lease) -> list[tuple[str, date]]:
    return list(LeaseNotice.objects.filter(lease=lease).order_by("due_on", "notice").values_list("notice", "due_on"))


def notified(user: User) -> list[tuple[str, str | None]]:
    return [(n["type"], n.get("referenceId")) for n in stored_notifications(user.pk)]


def occupancy(unit: Unit) -> tuple[bool, bool]:
    unit.refresh_from_db()
    return unit.is_occupied, unit.is_available


def test_the_leasing_jobs_are_registered_for_the_runner() -> None:
    registered = load_all()
    assert registered["leasing.lease_notices"] is jobs.send_lease_notices
    assert registered["leasing.lease_ends"] is jobs.end_leases


def test_a_lease_gets_its_60_and_30_day_notices_once_and_expires_the_day_after_its_end(place: Place) -> None:
    lease = lease_on(place)
    assert occupancy(place.unit) == (True, False)

    done = drive(date(2027, 10, 1), END)  # every job twice a day
    assert done == {"notices": 2, "ends": 0}
    assert sent(lease) == [("ending:60", date(2027, 11, 1)), ("ending:30", date(2027, 12, 1))]
    lease.refresh_from_db()
    assert lease.lease_status == LeaseStatus.ACTIVE  # it runs through its end date
    assert occupancy(place.unit) == (True, False)

    assert drive(END + timedelta(days=1), END + timedelta(days=3)) == {"notices": 0, "ends": 1}
    lease.refresh_from_db()
    assert lease.lease_status == LeaseStatus.EXPIRED
    assert sent(lease)[-1] == ("expired", date(2028, 1, 1))
    assert occupancy(place.unit) == (False, True)
    assert Lease.objects.filter(unit=place.unit).count() == 1  # no successor

    expected = [
        (lifecycle.NOTICE_ENDING, str(lease.pk)),
        (lifecycle.NOTICE_ENDING, str(lease.pk)),
        (lifecycle.NOTICE_EXPIRED, str(lease.pk)),
    ]
    for person in place.people:
        assert notified(person) == expected, person.user_type
    first, second, _ = stored_notifications(place.tenant.pk)
    assert "in 60 days" in first["message"] and first["priority"] == "medium"
    assert "in 30 days" in second["message"] and second["priority"] == "high"
    assert first["actions"] == [{"label": "View lease", "url": f"/api/v1/leases/{lease.pk}", "type": "link"}]


def test_a_lease_made_inside_the_notice_window_gets_only_the_notice_due(place: Place) -> None:
    lease = lease_on(place, start=date(2027, 6, 1), end=date(2027, 7, 15))  # 44 days left on June 1
    assert on(date(2027, 6, 1), jobs.send_lease_notices) == 1
    assert sent(lease) == [("ending:60", date(2027, 6, 1))]
    assert "in 44 days" in stored_notifications(place.tenant.pk)[0]["message"]
    drive(date(2027, 6, 2), date(2027, 7, 15))
    assert [notice for notice, _ in sent(lease)] == ["ending:60", "ending:30"]


def test_a_past_day_run_after_a_later_one_sends_no_stale_notice(place: Place) -> None:
    lease = lease_on(place)
    assert on(date(2027, 12, 5), jobs.send_lease_notices) == 1  # the 30-day notice (26 days left)
    assert on(date(2027, 11, 5), jobs.send_lease_notices) == 0  # the 60-day one is no longer news
    assert sent(lease) == [("ending:30", date(2027, 12, 5))]


def test_notice_days_are_a_setting(place: Place, settings: Any) -> None:
    settings.LEASE_NOTICE_DAYS = [90, 14]
    lease = lease_on(place)
    drive(date(2027, 9, 1), END, runs=1)
    assert sent(lease) == [("ending:90", date(2027, 10, 2)), ("ending:14", date(2027, 12, 17))]


def test_auto_renewal_renews_once_into_a_successor_with_the_same_unit_tenants_and_terms(
    place: Place, settings: Any
) -> None:
    settings.LEASE_RENEWAL_RENT_CHANGE_PERCENT = Decimal("3")
    lease = lease_on(place, auto_renewal=True, is_signed=True)

    assert on(END, jobs.end_leases) == 0
    assert on(END + timedelta(days=1), jobs.end_leases) == 1
    assert on(END + timedelta(days=1), jobs.end_leases) == 0
    assert on(END + timedelta(days=2), jobs.end_leases) == 0

    lease.refresh_from_db()
    assert lease.lease_status == LeaseStatus.RENEWED
    successor = Lease.objects.exclude(pk=lease.pk).get(unit=place.unit)
    assert successor.lease_status == LeaseStatus.ACTIVE
    assert (successor.start_date, successor.end_date) == (date(2028, 1, 1), date(2028, 12, 31))
    assert successor.monthly_rent == Decimal("1493.50")  # 1450.00 + 3%
    assert successor.security_deposit == Decimal("900.00") and successor.special_terms == "No pets."
    assert successor.auto_renewal is True and successor.is_signed is True
    links = {(str(link.tenant.user_id), link.is_primary) for link in LeaseTenant.objects.filter(lease=successor)}
    assert links == {(str(place.tenant.pk), True), (str(place.co_tenant.pk), False)}
    assert occupancy(place.unit) == (True, False)
    assert sent(lease) == [("renewed", date(2028, 1, 1))]
    for person in place.people:
        assert notified(person) == [(lifecycle.NOTICE_RENEWED, str(successor.pk))]
    assert "1493.50" in stored_notifications(place.tenant.pk)[0]["message"]

    # The successor lives its own life: its 60-day notice, then its own renewal.
    assert on(date(2028, 11, 1), jobs.send_lease_notices) == 1
    assert on(date(2029, 1, 1), jobs.end_leases) == 1
    assert Lease.objects.filter(unit=place.unit, lease_status=LeaseStatus.ACTIVE).get().start_date == date(2029, 1, 1)


@pytest.mark.parametrize(
    ("start", "end", "successor"),
    [
        (date(2027, 2, 1), date(2028, 1, 31), (date(2028, 2, 1), date(2029, 1, 31))),
        (date(2027, 1, 31), date(2027, 2, 27), (date(2027, 2, 28), date(2027, 3, 27))),  # a month, clamped
        (date(2027, 3, 10), date(2027, 3, 24), (date(2027, 3, 25), date(2027, 4, 8))),  # 15 days
        (date(2028, 2, 29), date(2029, 2, 27), (date(2029, 2, 28), date(2030, 2, 27))),
    ],
)
def test_a_successor_runs_for_the_same_length(start: date, end: date, successor: tuple[date, date]) -> None:
    assert lifecycle.successor_dates(Lease(start_date=start, end_date=end)) == successor


@pytest.mark.parametrize("auto_renewal", [True, False])
def test_two_workers_ending_the_same_day_at_once_end_it_once(place: Place, auto_renewal: bool) -> None:
    lease = lease_on(place, auto_renewal=auto_renewal)
    day = END + timedelta(days=1)
    barrier = threading.Barrier(2)
    results: list[int] = []
    failures: list[BaseException] = []

    def worker() -> None:
        try:
            barrier.wait(timeout=5)
            results.append(jobs.end_leases(day))
            results.append(jobs.send_lease_notices(day))
        except BaseException as error:  # reported below
            failures.append(error)
        finally:
            connection.close()

    threads = [threading.Thread(target=worker) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert not failures, failures
    assert sorted(results) == [0, 0, 0, 1]
    if auto_renewal:
        assert Lease.objects.filter(unit=place.unit).count() == 2
        assert Lease.objects.filter(unit=place.unit, lease_status=LeaseStatus.ACTIVE).exclude(pk=lease.pk).count() == 1
        assert [kind for kind, _ in notified(place.tenant)] == [lifecycle.NOTICE_RENEWED]
    else:
        assert Lease.objects.filter(unit=place.unit).count() == 1
        assert [kind for kind, _ in notified(place.tenant)] == [lifecycle.NOTICE_EXPIRED]


def test_two_workers_sending_notices_at_once_send_each_once(place: Place) -> None:
    lease = lease_on(place)
    day = date(2027, 11, 1)
    barrier = threading.Barrier(2)
    results: list[int] = []

    def worker() -> None:
        try:
            barrier.wait(timeout=5)
            results.append(jobs.send_lease_notices(day))
        finally:
            connection.close()

    threads = [threading.Thread(target=worker) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert sorted(results) == [0, 1]
    assert sent(lease) == [("ending:60", day)]
    assert len(stored_notifications(place.manager.pk)) == 1


def test_catch_up_runs_the_missed_days_in_order_and_does_each_days_work_once(place: Place) -> None:
    units = [place.unit, make_unit(property=place.prop), make_unit(property=place.prop)]
    leases = [lease_on(place, unit=unit, end=date(2027, 3, 1) + timedelta(days=i)) for i, unit in enumerate(units)]
    missed = [date(2027, 3, 2), date(2027, 3, 3), date(2027, 3, 4)]  # the worker was down these three days

    assert [on(day, jobs.end_leases) for day in missed] == [1, 1, 1]
    for lease, day in zip(leases, missed, strict=True):
        lease.refresh_from_db()
        assert lease.lease_status == LeaseStatus.EXPIRED
        assert sent(lease)[-1] == ("expired", day)  # each on its own day's run
    assert [on(day, jobs.end_leases) for day in missed] == [0, 0, 0]
    assert [occupancy(unit) for unit in units] == [(False, True)] * 3
    assert [kind for kind, _ in notified(place.tenant)].count(lifecycle.NOTICE_EXPIRED) == 3


def test_a_long_downtime_renews_an_auto_renewing_lease_up_to_the_day(place: Place) -> None:
    first = lease_on(place, start=date(2027, 1, 1), end=date(2027, 1, 31), auto_renewal=True)
    assert on(date(2027, 4, 10), jobs.end_leases) == 3  # February and March ended as of April 10 too
    chain = list(Lease.objects.filter(unit=place.unit).order_by("start_date").values_list("start_date", "lease_status"))
    assert chain == [
        (date(2027, 1, 1), LeaseStatus.RENEWED),
        (date(2027, 2, 1), LeaseStatus.RENEWED),
        (date(2027, 3, 1), LeaseStatus.RENEWED),
        (date(2027, 4, 1), LeaseStatus.ACTIVE),
    ]
    assert Lease.objects.get(unit=place.unit, lease_status=LeaseStatus.ACTIVE).end_date == date(2027, 4, 30)
    assert sent(first) == [("renewed", date(2027, 4, 10))]
