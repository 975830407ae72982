"""Benchmark: our server against the Channels tutorial peer and a bare `websockets` server.

    python -m loadtests.bench [--quick] [--scenarios 1,2,3,4,5,6,7,8] [--servers ours,peer,bare]
                              [--repeat N] [--workers 4] [--no-report]

Starts every server itself (one process each, loopback), seeds our users with
`manage.py seed_loadtest_users`, runs the scenarios with load generators in several
processes, writes the raw results to `loadtests/results/bench-<time>.json` and then
`docs/benchmarks.md` with charts in `docs/benchmarks/` (`python -m loadtests.bench.report`
redoes that part from saved JSON). See loadtests/README.md.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import shutil
import subprocess
import sys
import time
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

import psutil

from loadtests.bench import scale, scenarios, speed
from loadtests.bench.pool import Pool
from loadtests.bench.servers import ROOT, Stack, make_workdir

RESULTS = ROOT / "loadtests" / "results"
NAMES = {
    1: "idle",
    2: "fanout",
    3: "chat",
    4: "two_processes",
    5: "storm",
    6: "connects",
    7: "processes",
    8: "balancer",
}
SCALE = {7: scale.processes, 8: scale.balancer}  # ours only; they start their own servers


def versions() -> dict[str, str]:
    out = {"python": platform.python_version()}
    for dist in (
        "Django",
        "channels",
        "channels-redis",
        "daphne",
        "uvicorn",
        "websockets",
        "redis",
        "pymongo",
        "nx-27017",
    ):
        try:
            out[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            pass
    try:
        out["redis-server"] = subprocess.run(
            ["redis-server", "--version"], capture_output=True, text=True, check=False
        ).stdout.split()[2]
    except (OSError, IndexError):
        pass
    try:
        out["postgresql"] = (
            subprocess.run(["psql", "--version"], capture_output=True, text=True, check=False)
            .stdout.strip()
            .split()[-1]
        )
    except (OSError, IndexError):
        pass
    return out


def machine() -> dict[str, Any]:
    model = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    import resource

    return {
        "cpus": os.cpu_count(),
        "cpu_model": model,
        "memory_gib": round(psutil.virtual_memory().total / 2**30, 1),
        "open_files_limit": resource.getrlimit(resource.RLIMIT_NOFILE)[0],
        "kernel": platform.release(),
        "platform": platform.platform(),
    }


async def run(args: argparse.Namespace) -> Path:
    sizes = scenarios.QUICK if args.quick else scenarios.FULL
    chosen = [int(s) for s in args.scenarios.split(",")]
    kinds = [k for k in args.servers.split(",") if k]
    started = datetime.now(UTC)
    result: dict[str, Any] = {
        "meta": {
            "started": started.isoformat(timespec="seconds"),
            "mode": "quick" if args.quick else "full",
            "command": "python -m loadtests.bench " + " ".join(sys.argv[1:]),
            "machine": machine(),
            "versions": versions(),
            "workers": args.workers,
            "sizes": sizes.__dict__,
            "p99_limit_ms": scenarios.P99_LIMIT_MS,
            "speed_ms": speed.probe(),
        },
        "runs": [],
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    out = RESULTS / f"bench-{started.strftime('%Y%m%dT%H%M%SZ')}{'-quick' if args.quick else ''}.json"
    workdir = make_workdir()
    stack = Stack(workdir)
    pool = Pool(args.workers)
    seed = None
    t0 = time.perf_counter()
    try:
        stack.start_redis()
        if "ours" in kinds or "base" in kinds:
            scenarios.say(f"preparing our stack (throwaway database, MongoDB stand-in, seed) in {workdir}")
            staff = sizes.connect_clients // 2 if 6 in chosen else 0
            seed = stack.prepare_ours(
                users=max(max(sizes.idle_levels), sizes.connect_clients),
                watchers=max(sizes.fanout_subscribers, staff),
                pairs=sizes.chat_pairs,
                groups=staff,
            )
        for repeat in range(args.repeat):
            for number in chosen:
                for kind in kinds:
                    if number == 4 and kind == "bare":
                        continue  # one in-memory process: nothing to share across processes
                    if number in SCALE and kind != "ours":
                        continue
                    speed_ms = speed.probe()  # the machine's speed now: runs are comparable only at like speeds
                    scenarios.say(
                        f"scenario {number} ({NAMES[number]}) on {kind}, run {repeat + 1}"
                        f"  [{time.perf_counter() - t0:.0f} s, speed probe {speed_ms} ms]"
                    )
                    servers = [] if number in SCALE else [stack.start(kind) for _ in range(2 if number == 4 else 1)]
                    try:
                        if number in SCALE:
                            data = await SCALE[number](stack, pool, seed, sizes)
                        elif number == 1:
                            data = await scenarios.idle(stack, pool, servers[0], seed, sizes)
                        elif number in (2, 4):
                            data = await scenarios.fanout(stack, pool, servers, seed, sizes)
                        elif number == 3:
                            data = await scenarios.chat(stack, pool, servers[0], seed, sizes)
                        elif number == 6:
                            data = await scenarios.connects(stack, pool, servers[0], seed, sizes)
                        else:
                            data = await scenarios.storm(stack, pool, servers[0], seed, sizes)
                    except Exception as exc:  # noqa: BLE001 - record and go on with the next one
                        scenarios.say(f"  FAILED: {type(exc).__name__}: {exc}")
                        data = {"error": f"{type(exc).__name__}: {exc}"}
                        try:
                            await pool.all("close")
                        except Exception:  # noqa: BLE001
                            pass
                    finally:
                        for server in servers:
                            stack.stop(server)
                    result["runs"].append(
                        {
                            "scenario": NAMES[number],
                            "number": number,
                            "server": kind,
                            "repeat": repeat,
                            "speed_ms": speed_ms,
                            **data,
                        }
                    )
                    out.write_text(json.dumps(result, indent=1))
    finally:
        await pool.close()
        stack.close()
        keep = os.environ.get("BENCH_KEEP_LOGS")  # a folder: the servers' logs survive the run there
        if keep:
            shutil.copytree(workdir / "logs", Path(keep), dirs_exist_ok=True)
        shutil.rmtree(workdir, ignore_errors=True)
    result["meta"]["duration_s"] = round(time.perf_counter() - t0, 1)
    out.write_text(json.dumps(result, indent=1))
    scenarios.say(f"results: {out.relative_to(ROOT)} ({result['meta']['duration_s']} s)")
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="each scenario once, smaller sizes (< 10 min)")
    parser.add_argument("--scenarios", default="1,2,3,4,5,6,7,8")
    parser.add_argument("--servers", default="ours,peer,bare")
    parser.add_argument("--repeat", type=int, help="runs of each scenario (default: 1 quick, 2 full)")
    parser.add_argument("--workers", type=int, default=4, help="load-generator processes")
    parser.add_argument("--no-report", action="store_true", help="write the JSON only")
    args = parser.parse_args()
    if args.repeat is None:
        args.repeat = 1 if args.quick else 2
    out = asyncio.run(run(args))
    if not args.no_report:
        from loadtests.bench import report

        report.write([out])
    return 0


if __name__ == "__main__":
    sys.exit(main())
