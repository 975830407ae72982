"""The daily job `subscriptions.end`, run with a driven clock: past its end date a subscription expires, or
auto-renews for the same period at the plan's current price, once however often (or by however many workers)
the job runs; the owner's caches follow and the owner is told before, and when, it happens."""

import datetime
import threading
from collections.abc import Callable, Iterator
from decimal import Decimal
from typing import Any

import pytest
import redis
import time_machine
from django.db import connection, transaction
from django.test import Client

from apps.common.jobs import load_all
from apps.events.notices import Notice
from apps.subscriptions.jobs import subscriptions_end
from apps.subscriptions.models import Subscription, SubscriptionExpiryNotice
from apps.subscriptions.services import periods
from tests.apps.api_world import Api, World
from tests.apps.subscriptions.conftest import enable, make_feature, make_plan, subscribe
from tests.factories import make_user

D = datetime.date
UTC = datetime.UTC


@pytest.fixture
def sent(monkeypatch: pytest.MonkeyPatch) -> list[Notice]:
    """The notices the services hand to `notify_on_commit`, listed when their transaction commits (and still
    delivered by the real function)."""
    notices: list[Notice] = []
    real = periods.notify_on_commit

    def record(*given: Notice, **kwargs: Any) -> None:
        transaction.on_commit(lambda: notices.extend(given))
        real(*given, **kwargs)

    monkeypatch.setattr(periods, "notify_on_commit", record)
    return notices


@pytest.fixture
def clock() -> Iterator[Callable[[datetime.date], None]]:
    """Move the clock to 02:00 UTC of a day (the runner's time of day), as often as the test likes."""
    traveller: list[Any] = []

    def move(day: datetime.date) -> None:
        while traveller:
            traveller.pop().stop()
        travel = time_machine.travel(datetime.datetime.combine(day, datetime.time(2), UTC), tick=False)
        travel.start()
        traveller.append(travel)

    yield move
    while traveller:
        traveller.pop().stop()


@pytest.fixture
def job(django_capture_on_commit_callbacks: Any) -> Callable[[datetime.date], int]:
    """`subscriptions_end(day)`, its after-commit work (notices, cache drops) run as a worker's commit would."""

    def run(day: datetime.date) -> int:
        with django_capture_on_commit_callbacks(execute=True):
            return subscriptions_end(day)

    return run


@pytest.fixture
def run_days(
    job: Callable[[datetime.date], int], clock: Callable[[datetime.date], None]
) -> Callable[[datetime.date, datetime.date], int]:
    """The runner's part: each day from `first` to `last`, on that day, twice (a rerun does nothing more)."""

    def run(first: datetime.date, last: datetime.date) -> int:
        done, day = 0, first
        while day <= last:
            clock(day)
            done += job(day)
            assert job(day) == 0, f"a rerun on {day} did more work"
            day += datetime.timedelta(days=1)
        return done

    return run


def kinds(notices: list[Notice]) -> list[str]:
    return [notice.type for notice in notices]


def status_over_http(client: Client, user: Any) -> Any:
    """GET /subscriptions/status as `user`, logged in now (the driven clock decides the session's expiry)."""
    response = Api(client, user).get("/subscriptions/status")
    return response.json() if response.status_code == 200 else response.status_code


def test_the_job_is_registered_under_its_name() -> None:
    assert load_all()["subscriptions.end"] is subscriptions_end


@pytest.mark.parametrize(
    ("start", "end", "following"),
    [
        (D(2026, 1, 1), D(2026, 1, 31), (D(2026, 2, 1), D(2026, 2, 28))),  # a calendar month
        (D(2026, 1, 1), D(2026, 12, 31), (D(2027, 1, 1), D(2027, 12, 31))),  # a year
        (D(2026, 1, 15), D(2026, 2, 14), (D(2026, 2, 15), D(2026, 3, 14))),  # a month from mid-month
        (D(2027, 12, 1), D(2028, 2, 29), (D(2028, 3, 1), D(2028, 5, 31))),  # a quarter over a leap February
        (D(2026, 1, 1), D(2026, 1, 10), (D(2026, 1, 11), D(2026, 1, 20))),  # not whole months: the same days
    ],
)
def test_next_period_has_the_same_length(
    start: datetime.date, end: datetime.date, following: tuple[datetime.date, datetime.date]
) -> None:
    assert periods.next_period(start, end) == following


@pytest.mark.django_db
def test_a_subscription_without_auto_renewal_expires_the_day_after_its_end_date_once(
    world: World,
    client: Client,
    clean_redis: redis.Redis,
    sent: list[Notice],
    clock: Callable[[datetime.date], None],
    run_days: Callable[[datetime.date, datetime.date], int],
) -> None:
    plan = make_plan(plan_name="Basic")
    reports = make_feature()
    enable(plan, reports)
    sub = subscribe(world.landlord, plan, end_date=D(2026, 3, 31), is_auto_renew=False)
    other = subscribe(world.manager, plan, end_date=D(2026, 6, 30), is_auto_renew=False)
    clock(D(2026, 3, 20))
    assert status_over_http(client, world.landlord)["status"] == "active"  # the status hash is filled
    assert Api(client, world.landlord).get(f"/features/{reports.pk}/access").json()["isEnabled"] is True
    access_key = f"feature:access:{world.landlord.pk}:{reports.pk}"
    assert clean_redis.exists(f"subscription:status:{world.landlord.pk}") and clean_redis.exists(access_key)

    assert run_days(D(2026, 3, 20), D(2026, 3, 31)) == 1  # the notice, 7 days before
    assert kinds(sent) == [periods.NOTICE_EXPIRING]
    assert sent[0].user_id == str(world.landlord.pk) and "2026-03-31" in sent[0].message
    assert Subscription.objects.get(pk=sub.pk).status == "active"  # the end date is still covered

    assert run_days(D(2026, 4, 1), D(2026, 4, 3)) == 1
    stored = Subscription.objects.get(pk=sub.pk)
    assert (stored.status, stored.end_date, stored.current_price) == ("expired", D(2026, 3, 31), Decimal("25.00"))
    assert kinds(sent) == [periods.NOTICE_EXPIRING, periods.NOTICE_EXPIRED]
    expired = sent[1]
    assert (expired.reference_id, expired.reference_type, expired.priority) == (str(sub.pk), "subscription", "high")
    assert expired.actions == (
        {"label": "View subscription", "url": f"/api/v1/subscriptions/{sub.pk}", "type": "link"},
    )
    # The caches followed: no current subscription any more, and the feature is off.
    assert not clean_redis.exists(access_key)
    assert status_over_http(client, world.landlord) == 404
    assert Api(client, world.landlord).get(f"/features/{reports.pk}/access").json()["isEnabled"] is False
    assert Subscription.objects.get(pk=other.pk).status == "active"  # not its end yet


@pytest.mark.django_db
def test_an_auto_renewing_subscription_renews_once_for_the_same_period_at_the_current_price(
    world: World,
    client: Client,
    clean_redis: redis.Redis,
    sent: list[Notice],
    clock: Callable[[datetime.date], None],
    run_days: Callable[[datetime.date, datetime.date], int],
) -> None:
    plan = make_plan(plan_name="Pro", price_per_unit=Decimal("2.00"), minimum_price=Decimal("10.00"))
    sub = subscribe(
        world.landlord, plan, start_date=D(2026, 1, 1), end_date=D(2026, 1, 31), unit_count=10, status="trial"
    )
    plan.price_per_unit = Decimal("3.00")  # the price went up since they subscribed
    plan.save()
    clock(D(2026, 1, 31))
    assert status_over_http(client, world.landlord)["endDate"] == "2026-01-31"

    assert run_days(D(2026, 1, 20), D(2026, 2, 20)) == 2  # the notice on Jan 24, the renewal on Feb 1
    stored = Subscription.objects.get(pk=sub.pk)
    assert (stored.status, stored.start_date, stored.end_date) == ("active", D(2026, 2, 1), D(2026, 2, 28))
    assert stored.current_price == Decimal("30.00")  # 10 units at the plan's current 3.00
    assert kinds(sent) == [periods.NOTICE_EXPIRING, periods.NOTICE_RENEWED]
    assert "renews automatically" in sent[0].message
    assert "2026-02-01 to 2026-02-28" in sent[1].message and "30.00" in sent[1].message
    status = status_over_http(client, world.landlord)
    assert (status["status"], status["startDate"], status["endDate"]) == ("active", "2026-02-01", "2026-02-28")

    # The next period gets its own notice (Feb 21) and renewal (Mar 1).
    assert run_days(D(2026, 2, 21), D(2026, 3, 1)) == 2
    assert Subscription.objects.get(pk=sub.pk).end_date == D(2026, 3, 31)
    assert kinds(sent)[2:] == [periods.NOTICE_EXPIRING, periods.NOTICE_RENEWED]
    assert SubscriptionExpiryNotice.objects.filter(subscription=sub).count() == 2


@pytest.mark.django_db
def test_the_notice_period_is_a_setting_and_one_notice_goes_out_per_period(
    world: World, sent: list[Notice], run_days: Callable[[datetime.date, datetime.date], int], settings: Any
) -> None:
    settings.SUBSCRIPTION_EXPIRY_NOTICE_DAYS = 2
    subscribe(world.landlord, make_plan(), end_date=D(2026, 5, 10), is_auto_renew=False)
    assert run_days(D(2026, 5, 1), D(2026, 5, 7)) == 0
    assert run_days(D(2026, 5, 8), D(2026, 5, 10)) == 1
    assert kinds(sent) == [periods.NOTICE_EXPIRING] and "in 2 days" in sent[0].message


@pytest.mark.django_db
def test_catch_up_after_downtime_renews_up_to_the_day_and_a_past_day_does_nothing_more(
    world: World, sent: list[Notice], clock: Callable[[datetime.date], None], job: Callable[[datetime.date], int]
) -> None:
    plan = make_plan(price_per_unit=Decimal("1.00"), minimum_price=None)
    sub = subscribe(world.landlord, plan, start_date=D(2026, 1, 1), end_date=D(2026, 1, 31), unit_count=5)
    clock(D(2026, 4, 15))  # the worker was down since January
    assert job(D(2026, 4, 15)) == 1
    stored = Subscription.objects.get(pk=sub.pk)
    assert (stored.start_date, stored.end_date, stored.current_price) == (D(2026, 4, 1), D(2026, 4, 30), Decimal("5"))
    assert kinds(sent) == [periods.NOTICE_RENEWED]
    for missed in (D(2026, 2, 1), D(2026, 3, 1), D(2026, 4, 1)):  # the runner catching up afterwards, oldest first
        assert job(missed) == 0
    assert Subscription.objects.get(pk=sub.pk).end_date == D(2026, 4, 30)


@pytest.mark.django_db
def test_what_does_not_renew(
    world: World, sent: list[Notice], clock: Callable[[datetime.date], None], job: Callable[[datetime.date], int]
) -> None:
    inactive = make_plan(is_active=False)
    custom = make_plan(is_custom=True, price_per_unit=None, minimum_price=None)
    plan = make_plan()
    gone_plan = subscribe(world.landlord, inactive, end_date=D(2026, 3, 31))
    agreed = subscribe(world.manager, custom, end_date=D(2026, 3, 31), current_price=Decimal("99.00"))
    cancelled = subscribe(world.other_landlord, plan, end_date=D(2026, 3, 31), status="cancelled")
    open_ended = subscribe(world.other_manager, plan, end_date=None)
    backwards = subscribe(make_user(user_type="landlord"), plan, start_date=D(2026, 3, 31), end_date=D(2026, 3, 1))
    clock(D(2026, 4, 1))
    assert job(D(2026, 4, 1)) == 3
    assert Subscription.objects.get(pk=backwards.pk).status == "expired"  # no period to repeat
    assert Subscription.objects.get(pk=gone_plan.pk).status == "expired"  # an inactive plan takes no renewals
    renewed = Subscription.objects.get(pk=agreed.pk)  # a quarter again; a custom plan keeps its agreed price
    assert (renewed.status, renewed.end_date, renewed.current_price) == ("active", D(2026, 6, 30), Decimal("99.00"))
    assert Subscription.objects.get(pk=cancelled.pk).status == "cancelled"
    assert Subscription.objects.get(pk=open_ended.pk).status == "active"
    assert sorted(kinds(sent)) == [periods.NOTICE_EXPIRED, periods.NOTICE_EXPIRED, periods.NOTICE_RENEWED]


def _in_threads(count: int, work: Callable[[], Any]) -> list[Any]:
    """Run `work` in `count` threads at once, each on its own database connection."""
    barrier = threading.Barrier(count)
    results: list[Any] = []
    errors: list[BaseException] = []

    def run() -> None:
        try:
            barrier.wait(timeout=5)
            results.append(work())
        except BaseException as exc:  # reported by the test thread
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=run) for _ in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert not errors, errors
    return results


@pytest.mark.django_db(transaction=True)
def test_two_workers_at_once_renew_expire_and_notify_once(sent: list[Notice]) -> None:
    plan = make_plan(price_per_unit=Decimal("2.00"), minimum_price=None)
    renewing = [
        subscribe(
            make_user(user_type="landlord"), plan, start_date=D(2026, 6, 1), end_date=D(2026, 6, 30), unit_count=4
        )
        for _ in range(3)
    ]
    expiring = [
        subscribe(make_user(user_type="landlord"), plan, end_date=D(2026, 6, 30), is_auto_renew=False) for _ in range(3)
    ]
    noticed = [subscribe(make_user(user_type="landlord"), plan, end_date=D(2026, 7, 5)) for _ in range(3)]
    with time_machine.travel(datetime.datetime(2026, 7, 1, 2, tzinfo=UTC), tick=False):
        results = _in_threads(2, lambda: subscriptions_end(D(2026, 7, 1)))
        assert sum(results) == 9
        assert _in_threads(2, lambda: subscriptions_end(D(2026, 7, 1))) == [0, 0]
    for sub in renewing:
        stored = Subscription.objects.get(pk=sub.pk)
        assert (stored.status, stored.end_date, stored.current_price) == ("active", D(2026, 7, 31), Decimal("8.00"))
    assert {Subscription.objects.get(pk=sub.pk).status for sub in expiring} == {"expired"}
    assert SubscriptionExpiryNotice.objects.filter(subscription__in=noticed).count() == 3
    assert sorted(kinds(sent)) == sorted(
        [periods.NOTICE_RENEWED] * 3 + [periods.NOTICE_EXPIRED] * 3 + [periods.NOTICE_EXPIRING] * 3
    )
    assert len({(notice.type, notice.reference_id) for notice in sent}) == 9
