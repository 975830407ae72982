"""The section of docs/benchmarks.md on scenarios 7 (processes) and 8 (balancer), and its chart.

    python -m loadtests.bench.scale_report loadtests/results/bench-*.json

`report.write` puts `section()` into the whole document; this command replaces only the
section (between its two marker lines) in the existing docs/benchmarks.md and redraws
`docs/benchmarks/processes.png`, leaving the rest of the document as it is. The hand-written
part (the measurements' reading and the paper plan for 100 nodes) is
`loadtests/results/SCALE.md`, appended to the section.
"""

from __future__ import annotations

import json
import statistics
import sys
from pathlib import Path
from typing import Any

from loadtests.bench.servers import ROOT

DOC = ROOT / "docs" / "benchmarks.md"
CHARTS = ROOT / "docs" / "benchmarks"
CHART = "processes.png"
NOTES = ROOT / "loadtests" / "results" / "SCALE.md"
BEGIN = "<!-- scale section: written by python -m loadtests.bench.scale_report; edit loadtests/results/SCALE.md -->"
END = "<!-- end of the scale section -->"


def _fmt(value: Any) -> str:
    if value is None:
        return "–"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:,.0f}" if abs(value) >= 100 else f"{value:.1f}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)


def _per(cpu_s: float, count: int) -> float | None:
    return round(cpu_s * 1e6 / count, 1) if count else None


def _runs(
    results: list[dict[str, Any]], scenario: str, redis: str | None = None
) -> list[tuple[dict[str, Any], dict[str, Any]]]:
    """(run, the meta of its file) for every valid run of the scenario, in file order; `redis`
    ("single" or "cluster", scenario 7's `BENCH_REDIS_URL` kind) keeps only the runs against it."""
    return [
        (r, res["meta"])
        for res in results
        for r in res["runs"]
        if r["scenario"] == scenario
        and "error" not in r
        and "invalid" not in r
        and (redis is None or r.get("redis", "single") == redis)
    ]


def _load(row: dict[str, Any]) -> str:
    before, after = row.get("load_before"), row.get("load_after")
    return f"{before[0]:.1f} → {after[0]:.1f}" if before and after else "–"


def _step(steps: list[dict[str, Any]], rate: int) -> dict[str, Any] | None:
    return next((s for s in steps if s["rate"] == rate), None)


def processes_table(results: list[dict[str, Any]], redis: str = "single") -> list[str]:
    lines = [
        (
            "| file | processes | workload | step | delivered | deliveries/s | p50 / p99 ms | lost | dup "
            "| server µs CPU / delivery | Redis µs CPU / delivery | MongoDB stand-in µs / msg | load-gen CPU s "
            "| held | load avg (1 min) |"
        ),
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for run, meta in _runs(results, "processes", redis):
        for row in run["rows"]:
            for s in row["fanout"]["steps"]:
                u = s["usage"]
                lines.append(
                    f"| {meta['started'][11:16]} | {row['processes']} | fan-out, {s['subscribers']:,} subscribers "
                    f"| {s['rate']} events/s | {s['delivered']:,} | {_fmt(s['deliveries_per_s'])} "
                    f"| {_fmt(s['latency_ms']['p50'])} / {_fmt(s['latency_ms']['p99'])} | {s['lost']:,} "
                    f"| {s['duplicated']:,} | {_fmt(s['server_us_per_delivery'])} "
                    f"| {_fmt(_per(u['redis_cpu_s'], s['delivered']))} | – | {_fmt(u['loadgen_cpu_s'])} "
                    f"| {_fmt(s['held'])} | {_load(row)} |"
                )
            for s in row["chat"]["steps"]:
                u = s["usage"]
                lines.append(
                    f"| {meta['started'][11:16]} | {row['processes']} | chat, {row['chat']['pairs']} × 2 "
                    f"| {s['rate']} msg/s | {s['delivered']:,} (acked {_fmt(s['acked'])}) "
                    f"| {_fmt(s['messages_per_s'])} | {_fmt(s['latency_ms']['p50'])} / {_fmt(s['latency_ms']['p99'])} "
                    f"| {s['lost']:,} | {s['duplicated']:,} | {_fmt(s['server_us_per_message'])} "
                    f"| {_fmt(_per(u['redis_cpu_s'], s['delivered']))} | {_fmt(s.get('mongo_us_per_message'))} "
                    f"| {_fmt(u['loadgen_cpu_s'])} | {_fmt(s['held'])} | {_load(row)} |"
                )
    return lines


def spread_lines(results: list[dict[str, Any]], redis: str = "single") -> list[str]:
    out = []
    for run, meta in _runs(results, "processes", redis):
        for row in run["rows"]:
            if row["processes"] > 1 and row.get("fanout_spread"):
                out.append(
                    f"{meta['started'][11:16]}: {' / '.join(str(n) for n in row['fanout_spread'])} "
                    f"of {sum(row['fanout_spread']):,}"
                )
    return out


def per_count(results: list[dict[str, Any]], redis: str = "single") -> dict[int, dict[str, list[float]]]:
    """Per process count, the figures of the chart, one value per run (against one Redis, or `redis`)."""
    out: dict[int, dict[str, list[float]]] = {}
    for run, _meta in _runs(results, "processes", redis):
        for row in run["rows"]:
            figures = out.setdefault(row["processes"], {})

            def add(name: str, value: float | None, figures: dict[str, list[float]] = figures) -> None:
                if value is not None:
                    figures.setdefault(name, []).append(value)

            steps = row["fanout"]["steps"]
            add("fan-out held deliveries/s", row["fanout"]["best_deliveries_per_s"] or None)
            for rate in (10, 40):
                s = _step(steps, rate)
                if s:
                    add(f"fan-out µs/delivery at {rate} events/s", s["server_us_per_delivery"])
                    add(f"fan-out deliveries/s at {rate} events/s", s["deliveries_per_s"])
            # Chat: every step at the highest rate (the first, lower step pays the new sockets' caches).
            top = max((s["rate"] for s in row["chat"]["steps"]), default=0)
            for chat in (s for s in row["chat"]["steps"] if s["rate"] == top):
                add(f"chat µs/msg at {top} msg/s", chat["server_us_per_message"])
                add(f"chat msg/s at {top} msg/s", chat["messages_per_s"])
                add(f"chat Redis µs/msg at {top} msg/s", _per(chat["usage"]["redis_cpu_s"], chat["delivered"]))
                add(f"chat MongoDB stand-in µs/msg at {top} msg/s", chat.get("mongo_us_per_message"))
            for rate in (10, 40):
                s = _step(steps, rate)
                if s:
                    add(f"fan-out Redis µs/event at {rate} events/s", _per(s["usage"]["redis_cpu_s"], s["published"]))
    return out


def summary_table(results: list[dict[str, Any]], redis: str = "single") -> list[str]:
    data = per_count(results, redis)
    if not data:
        return []
    counts = sorted(data)
    names = sorted({name for figures in data.values() for name in figures})
    lines = [
        "| figure (median of runs; runs in brackets) | "
        + " | ".join(f"{c} process{'es' if c > 1 else ''}" for c in counts)
        + (f" | {counts[-1]} ÷ {counts[0]} |" if len(counts) > 1 else " |"),
        "|---|" + "---|" * len(counts) + ("---|" if len(counts) > 1 else ""),
    ]
    for name in names:
        cells = []
        medians = []
        for c in counts:
            vals = data[c].get(name, [])
            medians.append(statistics.median(vals) if vals else None)
            cells.append(f"{_fmt(medians[-1])} ({', '.join(_fmt(v) for v in vals)})" if vals else "–")
        ratio = ""
        if len(counts) > 1:
            a, b = medians[0], medians[-1]
            ratio = f" {b / a:.2f}× |" if a and b else " – |"
        lines.append(f"| {name} | " + " | ".join(cells) + " |" + ratio)
    return lines


def cluster_table(results: list[dict[str, Any]]) -> list[str]:
    """Per process count and figure: the median against one Redis, against the cluster, and their ratio.
    Only files of the days that have a cluster run count on either side: the same code, the same machine."""
    days = {res["meta"]["started"][:10] for res in results if _runs([res], "processes", "cluster")}
    same_days = [res for res in results if res["meta"]["started"][:10] in days]
    single, cluster = per_count(same_days, "single"), per_count(same_days, "cluster")
    counts = sorted(set(single) & set(cluster))
    if not counts:
        return []
    lines = [
        "| figure (median of runs) | " + " | ".join(f"{c} proc.: one Redis → cluster" for c in counts) + " |",
        "|---|" + "---|" * len(counts),
    ]
    names = sorted({n for c in counts for n in cluster[c]} & {n for c in counts for n in single[c]})
    for name in names:
        cells = []
        for c in counts:
            a, b = single[c].get(name), cluster[c].get(name)
            if not a or not b:
                cells.append("–")
                continue
            ma, mb = statistics.median(a), statistics.median(b)
            cells.append(f"{_fmt(ma)} → {_fmt(mb)} ({mb / ma:.2f}×)" if ma else f"{_fmt(ma)} → {_fmt(mb)}")
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return lines


def summary_rows(results: list[dict[str, Any]]) -> list[tuple[str, dict[str, list[Any]], str]]:
    """Rows for the document's summary table (ours only): one value per run, "1 process → 2"."""

    def change(run: dict[str, Any], fn: Any) -> str:
        values = [fn(row) for row in run["rows"]]
        return " → ".join(_fmt(v) for v in values)

    def fan_us(row: dict[str, Any]) -> Any:
        return (_step(row["fanout"]["steps"], 10) or {}).get("server_us_per_delivery")

    def chat_us(row: dict[str, Any]) -> Any:
        steps = row["chat"]["steps"]
        top = [s["server_us_per_message"] for s in steps if s["rate"] == max(x["rate"] for x in steps)]
        return statistics.median(top) if top else None

    def lost(row: dict[str, Any]) -> int:
        return sum(s["lost"] + s["duplicated"] for s in row["fanout"]["steps"] + row["chat"]["steps"])

    def via(run: dict[str, Any]) -> str:
        direct = [b["total_us_per_connect"] for b in run["bursts"] if b["route"].startswith("direct")]
        balanced = [b["total_us_per_connect"] for b in run["bursts"] if not b["route"].startswith("direct")]
        refused = sum(b["clients"] - b["opened"] for b in run["bursts"] if not b["route"].startswith("direct"))
        return (
            f"{_fmt(statistics.median(direct))} → {_fmt(statistics.median(balanced))} ({refused:,} refused)"
            if direct and balanced
            else "–"
        )

    procs = [run for run, _meta in _runs(results, "processes", "single")]
    sharded = [run for run, _meta in _runs(results, "processes", "cluster")]
    bursts = [run for run, _meta in _runs(results, "balancer")]
    rows: list[tuple[str, dict[str, list[Any]], str]] = []
    if procs:
        rows += [
            (
                "1 → 2 processes (pms.launch): fan-out server µs CPU per delivery at 10 events/s",
                {"ours": [change(r, fan_us) for r in procs]},
                "flat",
            ),
            (
                "1 → 2 processes: chat server µs CPU per message (steps at the highest rate)",
                {"ours": [change(r, chat_us) for r in procs]},
                "flat",
            ),
            ("1 → 2 processes: deliveries lost or duplicated", {"ours": [change(r, lost) for r in procs]}, "0"),
        ]
    if sharded:
        rows += [
            (
                "1 → 2 processes on a 3-shard Redis Cluster: fan-out server µs CPU per delivery at 10 events/s",
                {"ours": [change(r, fan_us) for r in sharded]},
                "flat",
            ),
            (
                "1 → 2 processes on a 3-shard Redis Cluster: chat server µs CPU per message",
                {"ours": [change(r, chat_us) for r in sharded]},
                "flat",
            ),
            (
                "1 → 2 processes on a 3-shard Redis Cluster: deliveries lost or duplicated",
                {"ours": [change(r, lost) for r in sharded]},
                "0",
            ),
        ]
    if bursts:
        rows.append(
            (
                "connects straight → through HAProxy to 2 processes: µs CPU per connect (app + HAProxy)",
                {"ours": [via(r) for r in bursts]},
                "",
            )
        )
    return rows


def balancer_table(results: list[dict[str, Any]]) -> list[str]:
    lines = [
        (
            "| file | route | clients | opened | connects/s | connect p50 / p99 ms | app µs CPU / connect "
            "| HAProxy µs CPU / connect | app + HAProxy | Redis µs CPU / connect | sockets per process | load avg (1 min) |"
        ),
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for run, meta in _runs(results, "balancer"):
        for b in run["bursts"]:
            lines.append(
                f"| {meta['started'][11:16]} | {b['route']} | {b['clients']:,} | {b['opened']:,} "
                f"| {_fmt(b['connect_rate'])} | {_fmt(b['connect_ms']['p50'])} / {_fmt(b['connect_ms']['p99'])} "
                f"| {b['app_us_per_connect']:,} | {b['haproxy_us_per_connect']:,} | {b['total_us_per_connect']:,} "
                f"| {b['redis_us_per_connect']:,} | {' / '.join(str(n) for n in b['spread'])} | {b['load'][0]:.1f} |"
            )
    return lines


def chart(results: list[dict[str, Any]]) -> str | None:
    data = per_count(results)
    if not data:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    counts = sorted(data)
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(12, 4.5))
    series = [
        (ax1, "fan-out held deliveries/s", "tab:green", "D"),
        (ax1, "fan-out deliveries/s at 10 events/s", "tab:blue", "o"),
        (ax1, "fan-out deliveries/s at 40 events/s", "tab:cyan", "s"),
        (ax2, "fan-out µs/delivery at 10 events/s", "tab:blue", "o"),
        (ax2, "fan-out µs/delivery at 40 events/s", "tab:cyan", "s"),
    ]
    for name in sorted({n for figures in data.values() for n in figures}):
        if name.startswith("chat µs/msg"):
            series.append((ax2, name, "tab:orange", "^"))
        elif name.startswith("chat msg/s"):
            series.append((ax1, name.replace("chat msg/s", "chat deliveries/s"), "tab:orange", "^"))
    for ax, name, color, mark in series:
        key = name.replace("chat deliveries/s", "chat msg/s")
        xs, ys = [], []
        for c in counts:
            for v in data[c].get(key, []):
                xs.append(c)
                ys.append(v)
        if not xs:
            continue
        medians = [statistics.median(data[c][key]) for c in counts if data[c].get(key)]
        ax.plot([c for c in counts if data[c].get(key)], medians, "-", color=color, marker=mark, label=name)
        ax.scatter(xs, ys, color=color, alpha=0.35, s=18)
    ax1.set(
        xlabel="server processes (pms.launch, SO_REUSEPORT)",
        ylabel="deliveries/s",
        title="Deliveries/s achieved (offered-bound; load-bound here)",
        xticks=counts,
        yscale="log",
    )
    ax2.set(
        xlabel=ax1.get_xlabel(),
        ylabel="server µs CPU per delivery (all processes)",
        title="Server CPU per delivery (flat = processes add capacity)",
        xticks=counts,
        yscale="log",
    )
    ax1.legend(fontsize=7)
    ax2.legend(fontsize=7)
    fig.tight_layout()
    CHARTS.mkdir(parents=True, exist_ok=True)
    fig.savefig(CHARTS / CHART, dpi=90)
    plt.close(fig)
    return CHART


def section(results: list[dict[str, Any]], made: str | None = None) -> list[str]:
    """The section, or nothing when no run of scenario 7 or 8 is in the results."""
    if not _runs(results, "processes") and not _runs(results, "balancer"):
        return []
    files = sorted({meta["started"] for res in results for meta in [res["meta"]] if _runs([res], "processes")})
    files += sorted({res["meta"]["started"] for res in results if _runs([res], "balancer")} - set(files))
    commands = sorted(
        {res["meta"]["command"] for res in results if _runs([res], "processes") or _runs([res], "balancer")}
    )
    spread = spread_lines(results)
    lines = [
        BEGIN,
        "## 7–8. Past one process: every core, a balancer, and the plan for 100 nodes",
        "",
        "Ours only (scenarios 7 and 8, `loadtests/bench/scale.py`); every run on the shared 2-core machine, "
        "the load generators on the same cores. Absolute rates here are bound by the machine's load (the "
        "load average is in each row); **CPU per delivery and per connect** are the figures to read. "
        "Commands: " + "; ".join(f"`{c}`" for c in commands) + ". Runs started (UTC): " + ", ".join(files) + ".",
        "",
    ]
    if _runs(results, "processes"):
        lines += [
            "### 7. Fan-out and chat with 1 and 2 processes against one Redis",
            "",
            (
                "`python -m pms.launch --workers N` with ours' uvicorn flags: N processes on one port, each on a "
                "`SO_REUSEPORT` socket of its own, the kernel hashing each new connection to one of them. Chosen over "
                "N processes on N ports because it is what `scripts/serve` and the image run (the clients are not "
                "told which process they reach, so the bench measures the production spread, not one it arranged). "
                "Server CPU adds up every process (and the launcher). Redis CPU per delivery is the bench's one "
                "`redis-server` (`BENCH_REDIS_URL` points the bench at another Redis; the 3-shard cluster's runs "
                "are in 7b)."
            ),
            "",
            *(
                ["Fan-out subscribers per process as the kernel spread them: " + "; ".join(spread) + ".", ""]
                if spread
                else []
            ),
            *summary_table(results),
            "",
            *([f"![processes](benchmarks/{made})", ""] if made else []),
            "Every step:",
            "",
            *processes_table(results),
            "",
        ]
    if _runs(results, "processes", "cluster"):
        lines += [
            "### 7b. The same against a 3-shard Redis Cluster",
            "",
            (
                "`BENCH_REDIS_URL=redis+cluster://...` naming the six nodes of `python -m pms.rediscluster` (three "
                "masters, three replicas, Debian's `redis-server`) on the same cores: events go out with SPUBLISH, "
                "each process holds one SSUBSCRIBE connection per master. Redis CPU adds up all six nodes "
                "(replicas included: each applies its master's writes)."
            ),
            "",
            *(
                [
                    "Fan-out subscribers per process: " + "; ".join(spread_lines(results, "cluster")) + ".",
                    "",
                ]
                if spread_lines(results, "cluster")
                else []
            ),
            *summary_table(results, "cluster"),
            "",
            *(
                [
                    "One Redis against the cluster, same figures, runs of the same days only (alternated):",
                    "",
                    *cluster_table(results),
                    "",
                ]
                if cluster_table(results)
                else []
            ),
            "Every step:",
            "",
            *processes_table(results, "cluster"),
            "",
        ]
    if _runs(results, "balancer"):
        lines += [
            "### 8. Connects through HAProxy",
            "",
            (
                "Bursts of `notifications` connects (bearer token, one `subscribe`; scenario 6's cheapest, so the "
                "balancer's share is at its largest), alternating: straight to one process, then through HAProxy "
                "running `deploy/haproxy.cfg` unchanged (leastconn, `/readyz` checked every second) in front of two "
                "processes on ports of their own. App CPU includes the health checks, as in production."
            ),
            "",
            *balancer_table(results),
            "",
        ]
    if NOTES.exists():
        lines += [NOTES.read_text().strip(), ""]
    lines.append(END)
    return lines


def summary_into(text: str, rows: list[tuple[str, dict[str, list[Any]], str]]) -> str:
    """The document with this section's rows of the summary table replaced (or added at its end)."""
    from loadtests.bench.report import summary_line  # report imports this module

    lines = text.split("\n")
    names = [f"| {name} |" for name, _vals, _target in rows]
    kept = [line for line in lines if not any(line.startswith(n) for n in names)]
    if "## Summary" not in kept:
        return "\n".join(kept)
    start = kept.index("## Summary")
    end = start + 1
    while end < len(kept) and not kept[end].startswith("|"):
        end += 1
    while end < len(kept) and kept[end].startswith("|"):
        end += 1
    kept[end:end] = [summary_line(*row) for row in rows]
    return "\n".join(kept)


def replace_section(paths: list[Path]) -> Path:
    results = [json.loads(Path(p).read_text()) for p in paths]
    made = chart(results)
    new = section(results, made)
    text = summary_into(DOC.read_text() if DOC.exists() else "", summary_rows(results))
    if BEGIN in text and END in text:
        head, rest = text.split(BEGIN, 1)
        tail = rest.split(END, 1)[1]
        text = head + "\n".join(new) + tail
    else:
        marker = "\n## Analysis\n"
        head, sep, tail = text.partition(marker)
        text = head.rstrip("\n") + "\n\n" + "\n".join(new) + "\n" + (sep + tail if sep else "\n")
    DOC.write_text(text)
    print(f"[bench] wrote the scale section of {DOC} and {made}", flush=True)
    return DOC


if __name__ == "__main__":
    replace_section([Path(a) for a in sys.argv[1:]])
