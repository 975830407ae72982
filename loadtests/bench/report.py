"""Write docs/benchmarks.md and its PNG charts from raw bench results.

    python -m loadtests.bench.report loadtests/results/bench-*.json

Several files (or several repeats in one file) are all reported: each table has one row
per run, so the noise between runs is visible.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from loadtests.bench import scale_report
from loadtests.bench.servers import ROOT

DOC = ROOT / "docs" / "benchmarks.md"
CHARTS = ROOT / "docs" / "benchmarks"
KINDS = ("ours", "peer", "bare")
DRAIN_MAX = 6.0  # set from the results' meta in write()
LABEL = {"ours": "ours (uvicorn)", "peer": "tutorial peer (daphne)", "bare": "bare websockets"}


def _fmt(value: Any, digits: int = 1) -> str:
    if value is None:
        return "–"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        if value >= 100:
            return f"{value:,.0f}"
        return f"{value:.{digits}f}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)


def _ratio(ours: Any, other: Any, higher_better: bool = True) -> str:
    if not ours or not other:
        return "–"
    r = ours / other
    if r < 0.1:
        return f"1/{1 / r:,.0f}"
    return f"{r:.2f}×"


def sustained(step: dict[str, Any], drain_max: float) -> float | None:
    """Deliveries/s over the publish window plus the time it took to deliver the rest."""
    got = step.get("delivered")
    if not got:
        return None
    drain = step.get("drain_s") or 0.0
    if step.get("lost"):
        drain = max(0.0, drain - drain_max)  # the drain ended by waiting drain_max for nothing
    return round(got / (step["seconds"] + drain), 1)


def _runs(results: list[dict[str, Any]], scenario: str, kind: str) -> list[dict[str, Any]]:
    return [
        r
        for res in results
        for r in res["runs"]
        if r["scenario"] == scenario and r["server"] == kind and "error" not in r and "invalid" not in r
    ]


def _first(results: list[dict[str, Any]], scenario: str, kind: str) -> dict[str, Any] | None:
    runs = _runs(results, scenario, kind)
    return runs[0] if runs else None


def _step_at(run: dict[str, Any] | None, rate: int) -> dict[str, Any] | None:
    if not run:
        return None
    return next((s for s in run.get("steps", []) if s["rate"] == rate), None)


def summary(results: list[dict[str, Any]]) -> list[str]:
    def each(scenario: str, fn: Any) -> dict[str, list[Any]]:
        return {k: [fn(r) for r in _runs(results, scenario, k)] for k in KINDS}

    def idle_top(r: dict[str, Any], key: str) -> Any:
        return r["levels"][-1][key] if r.get("levels") else None

    rows: list[tuple[str, dict[str, list[Any]], str]] = [
        ("idle: sockets held open (highest level)", each("idle", lambda r: idle_top(r, "held_open")), "15,000"),
        ("idle: of those, answering a ping", each("idle", lambda r: idle_top(r, "answered_ping")), "all"),
        (
            "idle: KiB per socket (highest level)",
            each("idle", lambda r: idle_top(r, "kib_per_socket")),
            "≤ 24 (issue: ≤ 20)",
        ),
        ("idle: connects/s (highest level)", each("idle", lambda r: idle_top(r, "connect_rate")), "≥ 1,500"),
        (
            "fan-out: highest deliveries/s held (p99 ≤ 100 ms, no loss)",
            each("fanout", lambda r: r.get("best_deliveries_per_s")),
            "≥ 45,000; ≥ 15× peer",
        ),
        (
            "fan-out: deliveries/s achieved at 10 events/s (incl. catching up)",
            each("fanout", lambda r: sustained(_step_at(r, 10) or {"seconds": 1}, DRAIN_MAX)),
            "10,000 offered",
        ),
        (
            "fan-out: p99 ms at 1,000 subs × 10 events/s",
            each("fanout", lambda r: (_step_at(r, 10) or {}).get("latency_ms", {}).get("p99")),
            "≤ 50",
        ),
        (
            "fan-out: server µs CPU per delivery at 10 events/s",
            each("fanout", lambda r: (_step_at(r, 10) or {}).get("server_us_per_delivery")),
            "≤ 1/15 of peer",
        ),
        ("chat rooms: highest msg/s held (200 × 2)", each("chat", lambda r: r.get("best_rate")), "≥ 5× peer"),
        (
            "two processes: highest deliveries/s held",
            each("two_processes", lambda r: r.get("best_deliveries_per_s")),
            "",
        ),
        ("reconnect storm: seconds until all 1,000 back", each("storm", lambda r: r.get("recovered_after_s")), ""),
        ("reconnect storm: events lost", each("storm", lambda r: r.get("lost")), "0"),
        *scale_report.summary_rows(results),
    ]
    lines = [
        "| figure | ours | peer | ours / peer | bare websockets | ours / bare | target |",
        "|---|---|---|---|---|---|---|",
    ]
    lines += [summary_line(name, vals, target) for name, vals, target in rows]
    return lines


def summary_line(name: str, vals: dict[str, list[Any]], target: str) -> str:
    """One row of the summary table: each server's value per run, and the ratios."""
    o, p, b = vals["ours"], vals.get("peer", []), vals.get("bare", [])
    ratio_p = " / ".join(_ratio(x, y) for x, y in zip(o, p, strict=False)) or "–"
    ratio_b = " / ".join(_ratio(x, y) for x, y in zip(o, b, strict=False)) or "–"
    return (
        f"| {name} | {' / '.join(_fmt(x) for x in o) or '–'} | {' / '.join(_fmt(x) for x in p) or '–'} "
        f"| {ratio_p} | {' / '.join(_fmt(x) for x in b) or '–'} | {ratio_b} | {target} |"
    )


def idle_table(results: list[dict[str, Any]]) -> list[str]:
    lines = [
        "| server | run | level | held open | answered ping | ping p99 ms | connects/s | connect p99 ms "
        "| server RSS MiB | KiB / socket | connect failures |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for kind in KINDS:
        for run in _runs(results, "idle", kind):
            for lv in run["levels"]:
                lines.append(
                    f"| {kind} | {run['repeat'] + 1} | {lv['level']:,} | {lv['held_open']:,} | "
                    f"{lv['answered_ping']:,} | {_fmt(lv['ping_rtt_ms']['p99'])} | {_fmt(lv['connect_rate'])} | "
                    f"{_fmt(lv['connect_ms']['p99'])} | {_fmt(lv['rss_mib'])} | {_fmt(lv['kib_per_socket'])} | "
                    f"{lv['failed']} |"
                )
    return lines


def fanout_table(results: list[dict[str, Any]], scenario: str) -> list[str]:
    lines = [
        "| server | run | events/s | offered deliveries/s | achieved incl. catch-up | p50 | p95 | p99 | max ms | lost | dup | server µs/delivery "
        "| server CPU s | Redis CPU s | load-gen CPU s | held |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for kind in KINDS:
        for run in _runs(results, scenario, kind):
            for s in run["steps"]:
                lat = s["latency_ms"]
                lines.append(
                    f"| {kind} | {run['repeat'] + 1} | {s['rate']} | {_fmt(s['deliveries_per_s'])} | "
                    f"{_fmt(sustained(s, DRAIN_MAX))} | "
                    f"{_fmt(lat['p50'])} | {_fmt(lat['p95'])} | {_fmt(lat['p99'])} | {_fmt(lat['max'])} | "
                    f"{s['lost']:,} | {s['duplicated']:,} | {_fmt(s['server_us_per_delivery'])} | "
                    f"{_fmt(s['usage']['server_cpu_s'])} | {_fmt(s['usage']['redis_cpu_s'])} | "
                    f"{_fmt(s['usage']['loadgen_cpu_s'])} | {_fmt(s['held'])} |"
                )
    return lines


def chat_table(results: list[dict[str, Any]]) -> list[str]:
    lines = [
        "| server | run | msg/s offered | sent | stored (acked) | delivered | lost | p50 | p99 | max ms "
        "| ack p99 ms | server µs/msg | MongoDB stand-in µs/msg | errors | held |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for kind in KINDS:
        for run in _runs(results, "chat", kind):
            for s in run["steps"]:
                lat = s["latency_ms"]
                errors = ", ".join(f"{k} {v}" for k, v in s["errors"].items()) or "–"
                lines.append(
                    f"| {kind} | {run['repeat'] + 1} | {s['rate']} | {s['sent']:,} | {_fmt(s['acked'])} | "
                    f"{s['delivered']:,} | {s['lost']:,} | {_fmt(lat['p50'])} | {_fmt(lat['p99'])} | "
                    f"{_fmt(lat['max'])} | {_fmt((s['ack_ms'] or {}).get('p99'))} | "
                    f"{_fmt(s['server_us_per_message'])} | {_fmt(s.get('mongo_us_per_message'))} | "
                    f"{errors} | {_fmt(s['held'])} |"
                )
    return lines


def storm_table(results: list[dict[str, Any]]) -> list[str]:
    lines = [
        "| server | run | subscribers | recovers with `since` | published | expected deliveries | delivered | lost "
        "| dup | all back after s | not recovered |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for kind in KINDS:
        for r in _runs(results, "storm", kind):
            lines.append(
                f"| {kind} | {r['repeat'] + 1} | {r['subscribers']:,} | {_fmt(r['uses_since'])} | "
                f"{r['published']:,} | {r['expected']:,} | {r['delivered']:,} | {r['lost']:,} | "
                f"{r['duplicated']:,} | {_fmt(r['recovered_after_s'])} | {r['not_recovered']} |"
            )
    return lines


def connects_table(results: list[dict[str, Any]]) -> list[str]:
    lines = [
        "| server | run | phase | clients | subscribes | opened | connects/s | connect p50 / p99 ms "
        "| server µs CPU per connect | Redis µs CPU per connect | server CPU ÷ load generators' CPU |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for kind in ("base", *KINDS):
        for r in _runs(results, "connects", kind):
            for p in r["phases"]:
                lines.append(
                    f"| {kind} | {r['repeat'] + 1} | {p['phase']} | {p['clients']:,} | {p['subscribes']:,} | "
                    f"{p['opened']:,} | {_fmt(p['connect_rate'])} | {_fmt(p['connect_ms']['p50'])} / "
                    f"{_fmt(p['connect_ms']['p99'])} | {p['server_us_per_connect']:,} | {p['redis_us_per_connect']:,} | "
                    f"{_fmt(p.get('server_per_loadgen_cpu'), 2)} |"
                )
    return lines


def charts(results: list[dict[str, Any]]) -> list[str]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    CHARTS.mkdir(parents=True, exist_ok=True)
    made = []
    colors = {"ours": "tab:blue", "peer": "tab:red", "bare": "tab:green"}
    for scenario, title in (
        ("fanout", "Fan-out, 1,000 subscribers, one process"),
        ("two_processes", "Fan-out across two server processes"),
        ("chat", "Chat rooms, 200 conversations × 2 users"),
    ):
        if not any(_runs(results, scenario, k) for k in KINDS):
            continue
        fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(12, 4.5))
        for kind in KINDS:
            for run in _runs(results, scenario, kind):
                steps = run["steps"]
                x = [s["rate"] for s in steps]
                ls = "-" if run["repeat"] == 0 else "--"
                for pct, marker_ in (("p50", "o"), ("p99", "^")):
                    y = [s["latency_ms"][pct] or float("nan") for s in steps]
                    ax1.plot(
                        x, y, ls, marker=marker_, color=colors[kind], label=f"{kind} {pct} (run {run['repeat'] + 1})"
                    )
                y2 = [sustained(s, DRAIN_MAX) if scenario != "chat" else s.get("messages_per_s") for s in steps]
                ax2.plot(x, y2, ls, marker="o", color=colors[kind], label=f"{kind} (run {run['repeat'] + 1})")
        ax1.axhline(100, color="grey", lw=0.8, ls=":")
        ax1.set(
            xscale="log",
            yscale="log",
            xlabel="offered events/s" if scenario != "chat" else "offered msg/s",
            ylabel="delivery latency, ms",
            title=f"{title}: latency",
        )
        ax2.set(
            xscale="log",
            yscale="log",
            xlabel=ax1.get_xlabel(),
            ylabel="deliveries/s" if scenario != "chat" else "messages delivered/s",
            title="throughput",
        )
        ax1.legend(fontsize=7)
        ax2.legend(fontsize=7)
        fig.tight_layout()
        path = CHARTS / f"{scenario}.png"
        fig.savefig(path, dpi=90)
        plt.close(fig)
        made.append(path.name)
    if any(_runs(results, "idle", k) for k in KINDS):
        fig, ax = plt.subplots(figsize=(7, 4))
        width = 0.25
        for i, kind in enumerate(KINDS):
            for run in _runs(results, "idle", kind)[:1]:
                levels = run["levels"]
                xs = [j + (i - 1) * width for j in range(len(levels))]
                ax.bar(xs, [lv["kib_per_socket"] for lv in levels], width, color=colors[kind], label=LABEL[kind])
                ax.set_xticks(range(len(levels)), [f"{lv['level']:,}" for lv in levels])
        ax.set(xlabel="idle sockets", ylabel="server KiB per socket", title="Memory per idle socket")
        ax.legend(fontsize=8)
        fig.tight_layout()
        fig.savefig(CHARTS / "idle.png", dpi=90)
        plt.close(fig)
        made.append("idle.png")
    return made


def write(paths: list[Path]) -> Path:
    results = [json.loads(Path(p).read_text()) for p in paths]
    # Number the runs of each (scenario, server) 0, 1, ... across all files, in file order.
    counters: dict[tuple[str, str], int] = {}
    excluded = [
        f"- {r['scenario']} on {r['server']} in `{Path(p).name}`: {r['invalid']}"
        for p, res in zip(paths, results, strict=True)
        for r in res["runs"]
        if "invalid" in r
    ]
    for res in results:
        for r in res["runs"]:
            if "invalid" in r:
                continue
            key = (r["scenario"], r["server"])
            r["repeat"] = counters.get(key, 0)
            counters[key] = r["repeat"] + 1
    meta = results[-1]["meta"]
    global DRAIN_MAX
    DRAIN_MAX = float(meta["sizes"]["drain_max"])
    made = charts(results)
    m = meta["machine"]
    versions = ", ".join(f"{k} {v}" for k, v in meta["versions"].items())
    lines = [
        "# Benchmarks: our server against the Channels tutorial peer",
        "",
        "Generated by `python -m loadtests.bench` (`loadtests/bench/report.py`) from the raw results in "
        + ", ".join(f"`{Path(p).resolve().relative_to(ROOT)}`" for p in paths)
        + ". How to run it and what each scenario "
        "does: [loadtests/README.md](../loadtests/README.md).",
        "",
        f"- Machine: {m['cpus']} CPUs ({m['cpu_model']}), {m['memory_gib']} GiB, open files {m['open_files_limit']:,} "
        f"per process, {m['platform']}.",
        f"- Versions: {versions}.",
        *[
            f"- Run {i + 1}: `{r['meta']['command']}` ({r['meta']['mode']} mode, {r['meta']['workers']} load-generator "
            f"processes, {r['meta'].get('duration_s', '?')} s in all), started {r['meta']['started']}."
            for i, r in enumerate(results)
        ],
        "- Every server is one process on 127.0.0.1; ours is uvicorn (`--ws pms.wsprotocol:LeanWebSocketsProtocol`, i.e. websockets-sansio with less per socket; uvloop; `--http pms.httpprotocol:UpgradeFirstProtocol`, httptools for all but plain handshakes) "
        "on the machine's PostgreSQL (throwaway database), the bench's own `redis-server` and the MongoDB "
        "stand-in (nx-27017); the peer is the Channels tutorial chat on daphne with channels-redis on the same "
        "Redis; bare is `loadtests/peers/bare_websockets.py`. The load generators share the same 2 cores, so "
        "their CPU (reported) caps what any server can show here.",
        f"- A step holds when p99 ≤ {meta['p99_limit_ms']:.0f} ms with nothing lost and nothing duplicated. "
        "Latency = receive time − send time written in the message (one clock). Ratios are ours ÷ theirs "
        "(for latency, CPU and memory lower is better). Runs are separated by ` / `.",
        "",
        "## Summary",
        "",
        *summary(results),
        "",
        "## 1. Idle capacity",
        "",
        "Authenticated sockets (ours: bearer token on the upgrade, then `subscribe` to the user's "
        "`notifications:{userId}`; the peers: one room per socket), opened by 4 processes, held, then "
        "every socket must answer a ping round trip (ours: JSON `ping`; the peers: an echo through their room). "
        "KiB per socket = (server RSS at the level − RSS before the first socket) ÷ sockets.",
        "",
        *idle_table(results),
        "",
        *(["![idle memory](benchmarks/idle.png)", ""] if "idle.png" in made else []),
        "## 2. Fan-out, one topic, 1,000 subscribers",
        "",
        'Ours: another service publishes `{"event": "broadcast", "data": {...}}` on the Redis channel '
        "`system:broadcasts`, which every subscriber subscribed to. The peers: one client sends into the room "
        "and the server broadcasts (the peer: `group_send` to the group of 1,000). Steps: 1 and 10 events/s, "
        "then raised until a step does not hold.",
        "",
        *fanout_table(results, "fanout"),
        "",
        *(["![fan-out](benchmarks/fanout.png)", ""] if "fanout.png" in made else []),
        "## 3. Chat rooms, 200 conversations × 2 users",
        "",
        "All 400 users send, the total rate raised step by step; a message counts when the *other* participant "
        "receives it. Ours: `chat.send` (stored in MongoDB before the reply, then published on "
        '`chat:messages:{id}`); the peers: `{"message": ...}` into the room.',
        "",
        *chat_table(results),
        "",
        *(["![chat](benchmarks/chat.png)", ""] if "chat.png" in made else []),
        "## 4. Two server processes sharing Redis",
        "",
        "The 1,000 subscribers alternate between two processes of the same server; one publish reaches both. "
        "CPU columns add up both processes. (bare websockets keeps rooms in memory: not applicable.)",
        "",
        *fanout_table(results, "two_processes"),
        "",
        *(["![two processes](benchmarks/two_processes.png)", ""] if "two_processes.png" in made else []),
        "## 5. Reconnect storm",
        "",
        "The 1,000 subscribers of scenario 2 (ours: subscribed to a conversation's `chat:messages:{id}` as "
        "admins, the events sent with `chat.send` so they enter the topic's history) all drop at once while "
        "publishing continues at 10 events/s, and reconnect; ours resubscribes with `since` = the last offset "
        "seen. The peers have no recovery: what is published while a socket is away is lost.",
        "",
        *storm_table(results),
        "",
        *(
            [
                "## 6. Connects",
                "",
                "Bursts of authenticated connects (loadtests/README.md, scenario 6): `notifications` subscribes "
                "to the user's own topic only; `realistic_*` to the notifications and 3 conversations (tenants "
                "who take part, staff who do not), with every topic decision made afresh (`cold`) or cached "
                "(`warm`). The peers join one room per socket. `base` is ours from another checkout "
                "(BENCH_BASE_ROOT), run side by side.",
                "",
                *connects_table(results),
                "",
            ]
            if any(_runs(results, "connects", k) for k in ("base", *KINDS))
            else []
        ),
        *scale_report.section(results, scale_report.chart(results)),
        *(
            ["Runs left out of the tables (kept in the raw JSON with the reason):", "", *excluded, ""]
            if excluded
            else []
        ),
    ]
    DOC.parent.mkdir(parents=True, exist_ok=True)
    extra = ROOT / "loadtests" / "results" / "ANALYSIS.md"
    if extra.exists():
        lines += ["## Analysis", "", extra.read_text().strip(), ""]
    DOC.write_text("\n".join(lines))
    print(f"[bench] wrote {DOC.relative_to(ROOT)} and {len(made)} charts in {CHARTS.relative_to(ROOT)}/", flush=True)
    return DOC


if __name__ == "__main__":
    args = [Path(a) for a in sys.argv[1:]]
    if not args:
        args = sorted((ROOT / "loadtests" / "results").glob("bench-*.json"))[-1:]
    write(args)
