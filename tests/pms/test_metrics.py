"""`/metrics` speaks the Prometheus text exposition format 0.0.4 and names every metric, zeros included."""

import math
import re

import pytest
from django.test import Client

from pms.metrics import CONTENT_TYPE, escape_label, format_float
from realtime import metrics

pytestmark = pytest.mark.django_db

EVERY_METRIC = {
    "pms_open_sockets": "gauge",
    "pms_subscriptions": "gauge",
    "pms_local_topics": "gauge",
    "pms_events_in_total": "counter",
    "pms_events_out_total": "counter",
    "pms_commands_total": "counter",
    "pms_commands_failed_total": "counter",
    "pms_sockets_opened_total": "counter",
    "pms_sockets_closed_total": "counter",
    "pms_slow_consumer_closes_total": "counter",
    "pms_broker_reconnects_total": "counter",
    "pms_presence_opens_settled_total": "counter",
    "pms_presence_failures_total": "counter",
    "pms_delivery_latency_seconds": "histogram",
}

_NAME = r"[a-zA-Z_:][a-zA-Z0-9_:]*"
_LABEL = r'[a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\\n]|\\[\\"n])*"'
_SAMPLE = re.compile(rf"^({_NAME})(?:\{{({_LABEL}(?:,{_LABEL})*)\}})? (\S+)$")
_COMMENT = re.compile(rf"^# (HELP|TYPE) ({_NAME}) (.+)$")

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def parse_exposition(text: str) -> tuple[dict[str, str], Samples]:
    """A strict reading of format 0.0.4: (type per family, value per sample); fails on any bad line."""
    assert text.endswith("\n")
    types: dict[str, str] = {}
    helped: set[str] = set()
    samples: Samples = {}
    for line in text.splitlines():
        comment = _COMMENT.match(line)
        if comment:
            kind, name, rest = comment.groups()
            if kind == "TYPE":
                assert rest in {"counter", "gauge", "histogram", "summary", "untyped"}, line
                assert name not in types, f"second TYPE for {name}"
                types[name] = rest
            else:
                helped.add(name)
            continue
        match = _SAMPLE.match(line)
        assert match, f"not a sample line: {line!r}"
        name, labels, value = match.groups()
        family = re.sub(r"_(bucket|sum|count)$", "", name) if name not in types else name
        assert family in types and family in helped, f"{name} has no TYPE/HELP before it"
        pairs = frozenset(re.findall(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"', labels or ""))
        key = (name, pairs)
        assert key not in samples, f"duplicate sample {line!r}"
        samples[key] = math.inf if value == "+Inf" else float(value)
    return types, samples


def value_of(samples: Samples, name: str, **labels: str) -> float:
    return samples[(name, frozenset(labels.items()))]


def check_histogram(samples: Samples, name: str) -> None:
    """Buckets are cumulative (never decreasing), end in `+Inf`, and `+Inf` equals `_count`."""
    buckets = sorted(
        (math.inf if dict(labels)["le"] == "+Inf" else float(dict(labels)["le"]), count)
        for (sample, labels), count in samples.items()
        if sample == f"{name}_bucket"
    )
    assert buckets[0][0] == 0.001 and buckets[-2][0] == 10.0 and buckets[-1][0] == math.inf
    counts = [count for _, count in buckets]
    assert counts == sorted(counts)
    assert counts[-1] == value_of(samples, f"{name}_count")
    assert value_of(samples, f"{name}_sum") >= 0


def scrape(client: Client) -> tuple[dict[str, str], Samples]:
    response = client.get("/metrics")
    assert response.status_code == 200
    assert response["Content-Type"] == CONTENT_TYPE == "text/plain; version=0.0.4; charset=utf-8"
    return parse_exposition(response.content.decode())


def test_metrics_answers_every_metric_in_exposition_format_with_zero_gauges_without_a_core(client: Client) -> None:
    types, samples = scrape(client)
    assert {name: types.get(name) for name in EVERY_METRIC} == EVERY_METRIC
    # The sync test client runs the view on a loop of its own, where no realtime core started.
    assert value_of(samples, "pms_open_sockets") == 0
    assert value_of(samples, "pms_subscriptions") == 0
    assert value_of(samples, "pms_local_topics") == 0
    for family in (
        "chat:messages",
        "notifications",
        "maintenance:updates",
        "property:changes",
        "unit:changes",
        "lease:changes",
        "system:broadcasts",
    ):
        assert value_of(samples, "pms_events_in_total", family=family) >= 0
        assert value_of(samples, "pms_events_out_total", family=family) >= 0
    for command in ("subscribe", "unsubscribe", "chat.send", "notifications.read", "presence.query"):
        assert value_of(samples, "pms_commands_total", type=command) >= 0
    check_histogram(samples, "pms_delivery_latency_seconds")


def test_metrics_follow_the_process_counters(client: Client) -> None:
    _, before = scrape(client)
    metrics.incr("hub.slow_closed")
    metrics.incr("broker.reconnects", 2)
    metrics.incr("commands.chat.typing", 3)
    metrics.delivery_latency.observe(0.003)
    _, after = scrape(client)

    def moved(name: str, **labels: str) -> float:
        return value_of(after, name, **labels) - value_of(before, name, **labels)

    assert moved("pms_slow_consumer_closes_total") == 1
    assert moved("pms_broker_reconnects_total") == 2
    assert moved("pms_commands_total", type="chat.typing") == 3
    assert moved("pms_delivery_latency_seconds_count") == 1
    assert moved("pms_delivery_latency_seconds_bucket", le="0.0025") == 0
    assert moved("pms_delivery_latency_seconds_bucket", le="0.005") == 1
    assert moved("pms_delivery_latency_seconds_sum") == pytest.approx(0.003)


def test_metrics_is_read_only_and_never_cached(client: Client) -> None:
    assert client.post("/metrics").status_code == 405
    assert "no-cache" in client.get("/metrics")["Cache-Control"]
    assert client.head("/metrics").status_code == 200


def test_label_values_and_numbers_are_written_as_prometheus_reads_them() -> None:
    assert escape_label('a\\b"c\nd') == 'a\\\\b\\"c\\nd'
    assert [format_float(v) for v in (0.001, 0.0025, 1, 10.0, math.inf)] == ["0.001", "0.0025", "1.0", "10.0", "+Inf"]
