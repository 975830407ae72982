"""Process-wide counters and fixed-bucket histograms of the realtime core (no dependencies; `/metrics` reads them)."""

import time
from bisect import bisect_left
from collections import Counter
from datetime import UTC, datetime
from typing import NamedTuple

# Names in use: hub.slow_closed, hub.backlog_dropped, hub.send_failed, hub.writer_started,
# hub.close_failed, hub.codec_missing, hub.batched_writes, hub.batched_frames,
# broker.reconnects, broker.connection_errors,
# broker.callback_errors, broker.messages, sockets.opened, sockets.closed,
# events.in.<family>, events.out.<family>, commands.<type>, commands.failed,
# recovery.late_duplicates_skipped, presence.opens_settled, presence.failed.
_counts: Counter[str] = Counter()


def incr(name: str, amount: int = 1) -> None:
    """Adds `amount` to the counter `name` (created at zero on first use)."""
    _counts[name] += amount


def value(name: str) -> int:
    """The current value of one counter; zero if it was never incremented."""
    return _counts[name]


def snapshot() -> dict[str, int]:
    """A copy of every counter, safe to serialize."""
    return dict(_counts)


class HistogramSnapshot(NamedTuple):
    """A histogram at one moment: cumulative counts per upper bound (`le`), then the total count and sum."""

    bounds: tuple[float, ...]
    cumulative: tuple[int, ...]  # one per bound: observations <= that bound
    count: int  # type: ignore[assignment]  # shadows tuple.count on purpose: Prometheus' name; every observation (`+Inf`)
    sum: float


class Histogram:
    """Observations counted in fixed buckets (Prometheus `le` semantics); `observe` is O(log buckets), no allocation."""

    __slots__ = ("bounds", "_buckets", "_count", "_sum")

    def __init__(self, bounds: tuple[float, ...]) -> None:
        if not bounds or list(bounds) != sorted(set(bounds)):
            raise ValueError("histogram bounds must be increasing and distinct")
        self.bounds = tuple(float(b) for b in bounds)
        self._buckets = [0] * (len(bounds) + 1)  # the last one holds values above every bound
        self._count = 0
        self._sum = 0.0

    def observe(self, value: float) -> None:
        """Counts `value` in the first bucket whose bound is >= it."""
        self._buckets[bisect_left(self.bounds, value)] += 1
        self._count += 1
        self._sum += value

    def snapshot(self) -> HistogramSnapshot:
        """Cumulative bucket counts, count and sum, consistent with each other."""
        cumulative: list[int] = []
        running = 0
        for count in self._buckets[:-1]:
            running += count
            cumulative.append(running)
        return HistogramSnapshot(self.bounds, tuple(cumulative), running + self._buckets[-1], self._sum)


DELIVERY_LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
# Seconds from an event's `ts` (set when it was published) to its fan-out in this process.
delivery_latency = Histogram(DELIVERY_LATENCY_BUCKETS)


_last_ts: tuple[str, float] = ("", 0.0)  # the last `ts` parsed: events of one burst share their millisecond


def observe_delivery(ts: object) -> None:
    """Observes the age of an event whose `ts` is an ISO 8601 string; anything else is skipped.

    A `ts` without a zone is read as UTC (the protocol's times are UTC). A negative age
    (clocks of two hosts apart) counts as zero.
    """
    global _last_ts
    if not isinstance(ts, str):
        return
    if ts == _last_ts[0]:
        sent = _last_ts[1]
    else:
        try:
            parsed = datetime.fromisoformat(ts[:-1] + "+00:00" if ts.endswith("Z") else ts)
        except ValueError:
            return
        if parsed.tzinfo is None:
            parsed = parsed.replace(tzinfo=UTC)
        sent = parsed.timestamp()
        _last_ts = (ts, sent)
    age = time.time() - sent
    delivery_latency.observe(age if age > 0.0 else 0.0)
