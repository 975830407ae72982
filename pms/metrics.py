"""`/metrics`: this process's realtime figures in the Prometheus text exposition format 0.0.4.

Written by hand (the format is a few lines of text; no client library needed). Gauges
come from the running loop's realtime core (`realtime.runtime.current()`: under uvicorn,
HTTP requests and sockets share one event loop), counters and the latency histogram from
`realtime.metrics`. A process whose core never started (no socket yet) answers zeros.
Each process is scraped on its own; Prometheus sums across processes.
"""

from collections.abc import Iterable

from django.http import HttpRequest, HttpResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_safe

from consumers.commands import COMMANDS
from realtime import metrics, topics
from realtime.runtime import current

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

# Every family a topic name can have (`other`: a channel no family matches), so each series exists from the start.
EVENT_FAMILIES = (*topics.FAMILIES, topics.SYSTEM, "other")

# Plain counters: exposition name, help text, name in `realtime.metrics`.
COUNTERS = (
    ("pms_sockets_opened_total", "Sockets authenticated since the process started.", "sockets.opened"),
    ("pms_sockets_closed_total", "Authenticated sockets closed since the process started.", "sockets.closed"),
    (
        "pms_slow_consumer_closes_total",
        "Sockets closed with 4008 because they read too slowly.",
        "hub.slow_closed",
    ),
    (
        "pms_slow_consumer_dropped_total",
        "Queued messages dropped when slow sockets were closed.",
        "hub.backlog_dropped",
    ),
    ("pms_send_failures_total", "Socket writes that failed (the socket was gone).", "hub.send_failed"),
    (
        "pms_batched_writes_total",
        "Socket writes that carried several frames (a command's reply with the events held for it).",
        "hub.batched_writes",
    ),
    ("pms_batched_frames_total", "Frames written by those batched writes.", "hub.batched_frames"),
    ("pms_commands_failed_total", "Socket commands that failed with an internal error.", "commands.failed"),
    ("pms_broker_reconnects_total", "Reconnections of the Redis pub/sub reader.", "broker.reconnects"),
    (
        "pms_broker_connection_errors_total",
        "Failures of the Redis pub/sub connection.",
        "broker.connection_errors",
    ),
    ("pms_broker_messages_total", "Messages received from Redis pub/sub.", "broker.messages"),
    (
        "pms_presence_opens_settled_total",
        "Socket opens whose presence registration and announcement finished (written, or failed and logged).",
        "presence.opens_settled",
    ),
    ("pms_presence_failures_total", "Presence writes or announcements that failed (one per batch).", "presence.failed"),
    ("pms_housekeeping_failures_total", "Failed rounds or jobs of periodic housekeeping.", "housekeeping.failed"),
)


def escape_label(value: str) -> str:
    """A label value as the exposition format quotes it (backslash, double quote and newline escaped)."""
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def format_float(value: float) -> str:
    """A float as Prometheus writes one (`+Inf`, `0.005`, `1.0`)."""
    if value == float("inf"):
        return "+Inf"
    return repr(float(value))


def _family(name: str, kind: str, help_text: str) -> list[str]:
    return [f"# HELP {name} {help_text}", f"# TYPE {name} {kind}"]


def _labelled(name: str, kind: str, help_text: str, label: str, values: Iterable[tuple[str, int]]) -> list[str]:
    lines = _family(name, kind, help_text)
    lines.extend(f'{name}{{{label}="{escape_label(key)}"}} {count}' for key, count in values)
    return lines


def _by_suffix(counts: dict[str, int], prefix: str, known: Iterable[str]) -> list[tuple[str, int]]:
    """Counters named `<prefix><suffix>`, keyed by suffix, every known suffix present (zero when unseen)."""
    found = {name[len(prefix) :]: count for name, count in counts.items() if name.startswith(prefix)}
    for key in known:
        found.setdefault(key, 0)
    return sorted(found.items())


def render() -> str:
    """The whole exposition text of this process (callable from the running loop or without one)."""
    core = current()
    sockets = len(core.sessions) if core is not None else 0
    subscriptions = core.hub.subscription_count() if core is not None else 0
    local_topics = core.hub.topic_count() if core is not None else 0
    counts = metrics.snapshot()

    lines: list[str] = []
    lines += _family("pms_open_sockets", "gauge", "Authenticated sockets open in this process.")
    lines.append(f"pms_open_sockets {sockets}")
    lines += _family("pms_subscriptions", "gauge", "Topic subscriptions of the sockets of this process.")
    lines.append(f"pms_subscriptions {subscriptions}")
    lines += _family("pms_local_topics", "gauge", "Topics with at least one subscriber in this process.")
    lines.append(f"pms_local_topics {local_topics}")

    lines += _labelled(
        "pms_events_in_total",
        "counter",
        "Events received from Redis pub/sub, per topic family.",
        "family",
        _by_suffix(counts, "events.in.", EVENT_FAMILIES),
    )
    lines += _labelled(
        "pms_events_out_total",
        "counter",
        "Event frames handed to local sockets, per topic family.",
        "family",
        _by_suffix(counts, "events.out.", EVENT_FAMILIES),
    )
    commands = [(kind, count) for kind, count in _by_suffix(counts, "commands.", COMMANDS) if kind != "failed"]
    lines += _labelled("pms_commands_total", "counter", "Socket commands run, per type.", "type", commands)

    for name, help_text, key in COUNTERS:
        lines += _family(name, "counter", help_text)
        lines.append(f"{name} {counts.get(key, 0)}")

    latency = metrics.delivery_latency.snapshot()
    name = "pms_delivery_latency_seconds"
    lines += _family(name, "histogram", "Seconds from an event's publish time (ts) to its fan-out in this process.")
    for bound, cumulative in zip(latency.bounds, latency.cumulative, strict=True):
        lines.append(f'{name}_bucket{{le="{format_float(bound)}"}} {cumulative}')
    lines.append(f'{name}_bucket{{le="+Inf"}} {latency.count}')
    lines.append(f"{name}_sum {format_float(latency.sum)}")
    lines.append(f"{name}_count {latency.count}")
    return "\n".join(lines) + "\n"


@never_cache
@require_safe
async def prometheus_metrics(request: HttpRequest) -> HttpResponse:
    """GET `/metrics`: the exposition text; answers zeros where nothing ran yet."""
    return HttpResponse(render(), content_type=CONTENT_TYPE)
