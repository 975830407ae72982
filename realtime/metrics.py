"""Process-wide event counters of the realtime core (no dependencies; a scraper or the health view reads them)."""

from collections import Counter

# Names in use: hub.slow_closed, hub.backlog_dropped, hub.send_failed, hub.writer_started,
# hub.close_failed, hub.codec_missing, broker.reconnects, broker.connection_errors,
# broker.callback_errors, broker.messages.
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
