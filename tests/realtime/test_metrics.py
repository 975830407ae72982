"""Counters' companions: the fixed-bucket histogram, event age from `ts`, and the hub's subscription counts."""

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from realtime import metrics
from realtime.events import utc_now_iso
from realtime.hub import Connection, Hub


def test_histogram_counts_each_value_in_the_first_bucket_whose_bound_is_not_below_it() -> None:
    histogram = metrics.Histogram((0.1, 1.0, 10.0))
    for value in (0.05, 0.1, 0.5, 1.0, 3.0, 11.0, 99.0):
        histogram.observe(value)
    snap = histogram.snapshot()
    assert snap.bounds == (0.1, 1.0, 10.0)
    assert snap.cumulative == (2, 4, 5)  # `le` is inclusive: 0.1 and 1.0 sit in their own buckets
    assert snap.count == 7
    assert snap.sum == pytest.approx(114.65)


@pytest.mark.parametrize("bounds", [(), (1.0, 0.5), (0.5, 0.5)])
def test_histogram_refuses_bounds_that_are_not_increasing(bounds: tuple[float, ...]) -> None:
    with pytest.raises(ValueError):
        metrics.Histogram(bounds)


def test_observe_delivery_measures_the_age_of_a_ts_in_every_iso_spelling() -> None:
    before = metrics.delivery_latency.snapshot()
    two_seconds_ago = datetime.now(UTC) - timedelta(seconds=2)
    spellings = [
        two_seconds_ago.isoformat(timespec="milliseconds").replace("+00:00", "Z"),
        two_seconds_ago.isoformat(),
        two_seconds_ago.replace(tzinfo=None).isoformat(),  # no zone: read as UTC
    ]
    for ts in spellings:
        metrics.observe_delivery(ts)
    after = metrics.delivery_latency.snapshot()
    assert after.count == before.count + 3
    assert 6.0 <= after.sum - before.sum < 7.5
    # Two seconds lands in the 2.5 s bucket, not in the 1 s one.
    index_1s, index_2_5s = after.bounds.index(1.0), after.bounds.index(2.5)
    assert after.cumulative[index_1s] == before.cumulative[index_1s]
    assert after.cumulative[index_2_5s] == before.cumulative[index_2_5s] + 3


@pytest.mark.parametrize("ts", [None, 12, "", "yesterday", "2026-13-45T00:00:00Z", b"2026-01-01T00:00:00Z"])
def test_observe_delivery_skips_a_missing_or_unparseable_ts(ts: Any) -> None:
    before = metrics.delivery_latency.snapshot().count
    metrics.observe_delivery(ts)
    assert metrics.delivery_latency.snapshot().count == before


def test_observe_delivery_counts_a_ts_from_a_clock_ahead_as_zero() -> None:
    before = metrics.delivery_latency.snapshot()
    metrics.observe_delivery((datetime.now(UTC) + timedelta(seconds=30)).isoformat())
    after = metrics.delivery_latency.snapshot()
    assert after.cumulative[0] == before.cumulative[0] + 1
    assert after.sum == before.sum


def test_observe_delivery_of_a_fresh_event_is_fast() -> None:
    before = metrics.delivery_latency.snapshot()
    metrics.observe_delivery(utc_now_iso())
    after = metrics.delivery_latency.snapshot()
    assert after.cumulative[after.bounds.index(0.1)] == before.cumulative[before.bounds.index(0.1)] + 1


def _conn(name: str) -> Connection:
    async def send(message: dict[str, Any]) -> None:
        return None

    async def close(code: int) -> None:
        return None

    return Connection(name, "pms.v1.json", send, close)


def test_hub_counts_subscriptions_and_topics_through_subscribe_unsubscribe_and_drop() -> None:
    hub = Hub(lambda frame, names: {})
    a, b = _conn("a"), _conn("b")

    def total() -> int:
        return sum(len(hub.topics_of(conn)) for conn in (a, b))

    hub.subscribe("t1", a)
    hub.subscribe("t2", a)
    hub.subscribe("t1", a)  # idempotent
    hub.subscribe("t1", b)
    assert hub.subscription_count() == total() == 3
    assert hub.topic_count() == 2

    hub.unsubscribe("t2", a)
    hub.unsubscribe("t2", a)  # not subscribed any more: nothing changes
    hub.unsubscribe("nowhere", b)
    assert hub.subscription_count() == total() == 2
    assert hub.topic_count() == 1

    hub.subscribe("t3", b)
    hub.drop(b)
    hub.drop(b)
    assert hub.subscription_count() == 1 and hub.topic_count() == 1
    hub.drop(a)
    assert hub.subscription_count() == 0 and hub.topic_count() == 0
