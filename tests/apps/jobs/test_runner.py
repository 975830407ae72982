"""The job runner (apps/jobs/runner.py): each registered daily job runs once per day, missed days
are caught up oldest first, a failed day is retried before later ones, and two runners at once
never run a (job, day) twice. The clock is driven with time-machine; nothing sleeps."""

import threading
from datetime import UTC, date, datetime, timedelta

import pytest
import time_machine
from django.db import connection

from apps.common.jobs import load_all
from apps.jobs.models import DailyJobRun
from apps.jobs.runner import Outcome, current_day, run_daily_jobs


def at(day: date, hour: int = 0, minute: int = 5) -> datetime:
    return datetime(day.year, day.month, day.day, hour, minute, tzinfo=UTC)


class Recorder:
    """A daily job that records the days it did (in order) and can be told to fail on a day."""

    def __init__(self, *, fail_on: date | None = None) -> None:
        self.days: list[date] = []
        self.fail_on = fail_on
        self.lock = threading.Lock()

    def __call__(self, day: date) -> int:
        if day == self.fail_on:
            raise RuntimeError(f"cannot do {day}")
        with self.lock:
            self.days.append(day)
        return day.day


def done_days(job: str) -> list[date]:
    return list(DailyJobRun.objects.filter(job=job).order_by("day").values_list("day", flat=True))


@pytest.mark.django_db
def test_today_comes_from_the_clock() -> None:
    with time_machine.travel(at(date(2027, 2, 28), 23, 59), tick=False):
        assert current_day() == date(2027, 2, 28)
    with time_machine.travel(at(date(2027, 3, 1), 0, 0), tick=False):
        assert current_day() == date(2027, 3, 1)


@pytest.mark.django_db
def test_a_day_runs_once_however_often_the_runner_runs_that_day() -> None:
    job = Recorder()
    with time_machine.travel(at(date(2027, 5, 10)), tick=False):
        first = run_daily_jobs(jobs={"test.recorder": job})
        again = run_daily_jobs(jobs={"test.recorder": job})
    with time_machine.travel(at(date(2027, 5, 10), 23, 0), tick=False):
        later_that_day = run_daily_jobs(jobs={"test.recorder": job})
    assert first == [Outcome("test.recorder", date(2027, 5, 10), count=10)]
    assert again == later_that_day == []
    assert job.days == [date(2027, 5, 10)]
    run = DailyJobRun.objects.get(job="test.recorder")
    assert (run.day, run.count) == (date(2027, 5, 10), 10)


@pytest.mark.django_db
def test_a_worker_down_for_three_days_catches_up_each_day_once_oldest_first() -> None:
    job = Recorder()
    with time_machine.travel(at(date(2027, 5, 10)), tick=False):
        run_daily_jobs(jobs={"test.recorder": job})
    # Down on the 11th, 12th and 13th: back on the 13th in the afternoon.
    with time_machine.travel(at(date(2027, 5, 13), 15, 0), tick=False):
        caught_up = run_daily_jobs(jobs={"test.recorder": job})
        rerun = run_daily_jobs(jobs={"test.recorder": job})
    assert [outcome.day for outcome in caught_up] == [date(2027, 5, 11), date(2027, 5, 12), date(2027, 5, 13)]
    assert rerun == []
    assert job.days == [date(2027, 5, day) for day in (10, 11, 12, 13)]
    assert done_days("test.recorder") == job.days


@pytest.mark.django_db
def test_catch_up_is_bounded_by_the_setting(settings: pytest.FixtureRequest) -> None:
    settings.JOBS_MAX_CATCH_UP_DAYS = 2  # type: ignore[attr-defined]
    job = Recorder()
    with time_machine.travel(at(date(2027, 5, 1)), tick=False):
        run_daily_jobs(jobs={"test.recorder": job})
    with time_machine.travel(at(date(2027, 5, 20)), tick=False):
        run_daily_jobs(jobs={"test.recorder": job})
    assert job.days == [date(2027, 5, 1), date(2027, 5, 19), date(2027, 5, 20)]


@pytest.mark.django_db
def test_a_failed_day_rolls_back_and_is_retried_before_the_later_days() -> None:
    job = Recorder(fail_on=date(2027, 5, 11))
    other = Recorder()
    jobs = {"test.failing": job, "test.other": other}
    with time_machine.travel(at(date(2027, 5, 10)), tick=False):
        run_daily_jobs(jobs=jobs)
    with time_machine.travel(at(date(2027, 5, 12)), tick=False):
        outcomes = run_daily_jobs(jobs=jobs)
    failed = [outcome for outcome in outcomes if outcome.error]
    assert [(o.job, o.day) for o in failed] == [("test.failing", date(2027, 5, 11))]
    assert "cannot do 2027-05-11" in (failed[0].error or "")
    assert done_days("test.failing") == [date(2027, 5, 10)], "the 12th waits for the 11th"
    assert done_days("test.other") == [date(2027, 5, day) for day in (10, 11, 12)], "other jobs go on"

    job.fail_on = None  # fixed: the next tick does the 11th, then the 12th
    with time_machine.travel(at(date(2027, 5, 12), 1, 5), tick=False):
        retried = run_daily_jobs(jobs=jobs)
    assert [(o.job, o.day) for o in retried] == [
        ("test.failing", date(2027, 5, 11)),
        ("test.failing", date(2027, 5, 12)),
    ]
    assert job.days == [date(2027, 5, day) for day in (10, 11, 12)]


@pytest.mark.django_db
def test_the_register_holds_the_finance_jobs() -> None:
    names = set(load_all())
    assert {"finance.recurring_charges", "finance.late_payments", "finance.due_reminders"} <= names


@pytest.mark.django_db(transaction=True)
def test_two_runners_at_once_on_separate_connections_run_each_day_once(settings: pytest.FixtureRequest) -> None:
    settings.JOBS_MAX_CATCH_UP_DAYS = 60  # type: ignore[attr-defined]
    first_day = date(2027, 3, 1)
    DailyJobRun.objects.create(job="test.recorder", day=first_day)
    job = Recorder()
    start = threading.Barrier(2)
    results: list[list[Outcome]] = []
    errors: list[BaseException] = []

    def runner() -> None:
        try:
            start.wait(5)
            results.append(run_daily_jobs(jobs={"test.recorder": job}))
        except BaseException as exc:  # noqa: BLE001 - reported by the test below
            errors.append(exc)
        finally:
            connection.close()  # this thread's own connection

    with time_machine.travel(at(first_day + timedelta(days=40)), tick=False):
        threads = [threading.Thread(target=runner) for _ in range(2)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(30)
    assert not errors, errors
    expected = [first_day + timedelta(days=n) for n in range(1, 41)]
    assert sorted(job.days) == expected, "every day once, none twice"
    assert done_days("test.recorder") == [first_day, *expected]
    ran = sorted(o.day for result in results for o in result if o.count is not None)
    assert ran == expected
