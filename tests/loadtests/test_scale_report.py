"""The scale section of docs/benchmarks.md (loadtests/bench/scale_report.py) and BENCH_REDIS_URL's ports."""

from pathlib import Path
from typing import Any

import pytest

from loadtests.bench import scale_report
from loadtests.bench.servers import redis_ports


def test_redis_ports_of_one_node_and_of_a_cluster() -> None:
    assert redis_ports("redis://127.0.0.1:6390/0") == [6390]
    assert redis_ports("redis://:secret@127.0.0.1/0") == [6379]
    assert redis_ports("redis+cluster://127.0.0.1:7000,127.0.0.1:7001,127.0.0.1:7002") == [7000, 7001, 7002]


def fanout_step(rate: int, us: float, redis_s: float) -> dict[str, Any]:
    delivered = rate * 5 * 1000
    return {
        "rate": rate,
        "published": rate * 5,
        "subscribers": 1000,
        "delivered": delivered,
        "deliveries_per_s": delivered / 5,
        "latency_ms": {"p50": 10.0, "p99": 40.0},
        "lost": 0,
        "duplicated": 0,
        "server_us_per_delivery": us,
        "usage": {"redis_cpu_s": redis_s, "loadgen_cpu_s": 1.0},
        "held": True,
    }


def chat_step(rate: int, us: float) -> dict[str, Any]:
    return {
        "rate": rate,
        "sent": rate * 5,
        "acked": rate * 5,
        "delivered": rate * 5,
        "messages_per_s": float(rate),
        "latency_ms": {"p50": 5.0, "p99": 50.0},
        "lost": 0,
        "duplicated": 0,
        "server_us_per_message": us,
        "mongo_us_per_message": 300.0,
        "usage": {"redis_cpu_s": 0.2, "loadgen_cpu_s": 1.0},
        "held": True,
    }


def row(count: int, fan_us: float, chat_us: list[float]) -> dict[str, Any]:
    return {
        "processes": count,
        "load_before": [3.0, 3.0, 3.0],
        "load_after": [4.0, 4.0, 4.0],
        "fanout_spread": [500, 500][:count] if count > 1 else [1000],
        "fanout": {"best_deliveries_per_s": 40000.0, "steps": [fanout_step(10, fan_us, 0.01)]},
        "chat": {"pairs": 200, "steps": [chat_step(200, 3000.0), *(chat_step(400, us) for us in chat_us)]},
    }


RESULTS = [
    {
        "meta": {"started": "2026-12-02T18:00:00+00:00", "command": "python -m loadtests.bench --scenarios 7"},
        "runs": [
            {"scenario": "processes", "rows": [row(1, 20.0, [1000.0, 1200.0]), row(2, 22.0, [1100.0, 1300.0])]},
        ],
    }
]


def test_summary_gives_the_median_of_the_warm_chat_steps_and_the_ratio_per_process_count() -> None:
    figures = scale_report.per_count(RESULTS)
    assert figures[1]["chat µs/msg at 400 msg/s"] == [1000.0, 1200.0]  # the 200 msg/s warm-up step is left out
    lines = scale_report.summary_table(RESULTS)
    chat = next(line for line in lines if line.startswith("| chat µs/msg at 400 msg/s"))
    assert "| 1,100 (1,000, 1,200) | 1,200 (1,100, 1,300) | 1.09× |" in chat
    fan = next(line for line in lines if line.startswith("| fan-out µs/delivery at 10 events/s"))
    assert fan.endswith("| 1.10× |")
    redis = next(line for line in lines if line.startswith("| fan-out Redis µs/event at 10 events/s"))
    assert "| 200 (200) |" in redis  # 0.01 s of Redis CPU over 50 published events


def test_the_section_is_replaced_in_place(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    doc = tmp_path / "benchmarks.md"
    doc.write_text(
        "# Benchmarks\n\n## Summary\n\n| figure | ours |\n|---|---|\n| idle | 1 |\n\nbefore\n\n## Analysis\n\nhand-written\n"
    )
    results = tmp_path / "bench.json"
    import json

    results.write_text(json.dumps(RESULTS[0]))
    monkeypatch.setattr(scale_report, "DOC", doc)
    monkeypatch.setattr(scale_report, "CHARTS", tmp_path / "charts")
    monkeypatch.setattr(scale_report, "NOTES", tmp_path / "absent.md")
    scale_report.replace_section([results])
    first = doc.read_text()
    assert first.index("before") < first.index(scale_report.BEGIN) < first.index("## Analysis")
    assert "500 / 500 of 1,000" in first
    summary = first.split("\n\n")[2].split("\n")
    assert summary[2] == "| idle | 1 |"
    assert summary[5].startswith("| 1 → 2 processes: deliveries lost or duplicated | 0 → 0 |")
    assert (tmp_path / "charts" / scale_report.CHART).exists()
    scale_report.replace_section([results])
    assert doc.read_text() == first  # a second run replaces the section, adds no second one


def test_cluster_runs_get_their_own_table_and_a_same_day_comparison() -> None:
    cluster_run = {
        "scenario": "processes",
        "redis": "cluster",
        "rows": [row(1, 30.0, [1500.0]), row(2, 33.0, [1600.0])],
    }
    older = {
        "meta": {"started": "2026-11-30T10:00:00+00:00", "command": "python -m loadtests.bench --scenarios 7"},
        "runs": [
            {"scenario": "processes", "redis": "single", "rows": [row(1, 90.0, [9000.0]), row(2, 90.0, [9000.0])]}
        ],
    }
    results = [
        older,
        *RESULTS,
        {"meta": {"started": "2026-12-02T18:10:00+00:00", "command": "same, BENCH_REDIS_URL"}, "runs": [cluster_run]},
    ]
    assert scale_report.per_count(results, "cluster")[2]["fan-out µs/delivery at 10 events/s"] == [33.0]
    assert scale_report.per_count(results)[2]["fan-out µs/delivery at 10 events/s"] == [90.0, 22.0]  # one Redis only
    compared = scale_report.cluster_table(results)
    fan = next(line for line in compared if line.startswith("| fan-out µs/delivery at 10 events/s"))
    assert (
        fan == "| fan-out µs/delivery at 10 events/s | 20.0 → 30.0 (1.50×) | 22.0 → 33.0 (1.50×) |"
    )  # not the 11-30 run
    text = "\n".join(scale_report.section(results))
    assert text.index("### 7. ") < text.index("### 7b. The same against a 3-shard Redis Cluster")
    assert "| 18:10 | 2 | fan-out, 1,000 subscribers |" in text
    assert "on a 3-shard Redis Cluster: fan-out" in scale_report.summary_rows(results)[3][0]
