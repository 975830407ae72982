"""Past one process: scenarios 7 (processes) and 8 (balancer), ours only.

7. **Processes**: fan-out (scenario 2) and chat (scenario 3) against `python -m pms.launch
   --workers N` for N = 1 and 2 on the machine's cores, against one Redis (the bench's, or
   `BENCH_REDIS_URL`). The N processes share one port through `SO_REUSEPORT` (a listening
   socket each, the kernel hashes every new connection to one of them), as `scripts/serve` and
   the image run them, so the clients are not told which process they reach; the spread the
   kernel made is sampled from the processes' own sockets while the fan-out's subscribers are
   connected. The CPU columns add up every process of the group (the launcher included: a
   parent that polls its children 5 times a second). Fan-out runs 10 and 40 events/s always
   (the per-delivery cost at the same offered load for every N), then raises the rate until a
   step does not hold; chat runs fixed steps (`BENCH_SCALE_CHAT_RATES`, default 200,400,400:
   the first pays the caches of 400 new sockets), each measured whether or not it holds.
8. **Balancer**: bursts of `notifications` connects (scenario 6's cheapest phase) straight to
   one process and through HAProxy (`deploy/haproxy.cfg` unchanged, Debian's `/usr/sbin/haproxy`)
   in front of two processes on ports of their own, alternating, twice each. CPU per connect
   is split into the app processes', HAProxy's and Redis's; HAProxy's health checks of
   `/readyz` (one per second per process) are billed to the processes, as in production.

Nothing here imports the project: the servers are subprocesses, as in `servers.py`.
"""

from __future__ import annotations

import asyncio
import contextlib
import csv
import io
import os
import shutil
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import replace
from typing import Any

import psutil

from loadtests.bench import scenarios
from loadtests.bench.pool import Pool, percentiles
from loadtests.bench.servers import PYTHON, ROOT, Server, Stack, free_port, ours_options, wait_port

PROCESS_COUNTS = (1, 2)
FANOUT_FIXED = [10, 40]  # events/s measured for every N, held or not
FANOUT_RAISED = [100, 200, 400, 800]
CHAT_RATES = "200,400,400"
HAPROXY_CONFIG = ROOT / "deploy" / "haproxy.cfg"
BURST_ROUNDS = 2


def haproxy_binary() -> str | None:
    return shutil.which("haproxy") or shutil.which("haproxy", path="/usr/sbin")


def _cpu(process: psutil.Process, *, system_only: bool = False) -> float:
    try:
        t = process.cpu_times()
    except psutil.NoSuchProcess:
        return 0.0
    return float(t.system if system_only else t.user + t.system)


class Group(Server):
    """Server processes counted as one server: `proc` is the parent (`pms.launch`, or HAProxy),
    `members` every process whose CPU and memory belong to the group."""

    extra: list[psutil.Process]

    def __post_init__(self) -> None:
        super().__post_init__()
        self.extra = []

    def members(self) -> list[psutil.Process]:
        try:
            children = self.ps.children(recursive=True)
        except psutil.NoSuchProcess:
            children = []
        return [self.ps, *children, *self.extra]

    def cpu(self) -> float:
        return sum(_cpu(p) for p in self.members())

    def cpu_system(self) -> float:
        return sum(_cpu(p, system_only=True) for p in self.members())

    def rss(self) -> int:
        total = 0
        for p in self.members():
            with contextlib.suppress(psutil.NoSuchProcess):
                total += int(p.memory_info().rss)
        return total

    def workers(self) -> list[psutil.Process]:
        """The uvicorn processes (the parent itself when it runs uvicorn alone)."""
        try:
            children = self.ps.children()
        except psutil.NoSuchProcess:
            return []
        return children or [self.ps]

    def spread(self) -> list[int]:
        """Established client sockets on the group's port, per uvicorn process."""
        counts = []
        for p in self.workers():
            try:
                conns = p.net_connections(kind="tcp")
            except psutil.NoSuchProcess:
                conns = []
            counts.append(
                sum(1 for c in conns if c.status == psutil.CONN_ESTABLISHED and c.laddr and c.laddr.port == self.port)
            )
        return counts


def http_status(url: str) -> int:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:  # noqa: S310 - loopback
            return int(response.status)
    except urllib.error.HTTPError as error:
        with error:
            return int(error.code)
    except (OSError, urllib.error.URLError):
        return 0


def start_launch(stack: Stack, workers: int) -> Group:
    """`python -m pms.launch --workers N` on a free port with ours' flags; ready when N processes
    run and `/readyz` answered 200 on fresh connections (each hashed to some process)."""
    port = free_port()
    env = {**stack.ours_env(), "PMS_DRAIN_SECONDS": "0"}
    launch = [PYTHON, "-m", "pms.launch", "--workers", str(workers), "--host", "127.0.0.1", "--port", str(port)]
    proc = stack._spawn(
        [*launch, *ours_options()],
        f"launch{workers}-{port}.log",
        env=env,
    )
    wait_port(port, proc, f"pms.launch --workers {workers}")
    group = Group("ours", port, proc, label=f"ours x{workers}")
    deadline = time.monotonic() + 90
    while len(group.workers()) < workers or any(
        http_status(f"http://127.0.0.1:{port}/readyz") != 200 for _ in range(4 * workers)
    ):
        if proc.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(f"pms.launch --workers {workers} not ready on {port}")
        time.sleep(0.5)
    return stack._track(group)  # type: ignore[return-value]


@contextlib.contextmanager
def chat_rates(rates: str) -> Iterator[None]:
    """Scenario 3 runs `BENCH_CHAT_RATES` as fixed steps: set for the duration of one call."""
    before = os.environ.get("BENCH_CHAT_RATES")
    os.environ["BENCH_CHAT_RATES"] = before or rates
    try:
        yield
    finally:
        if before is None:
            del os.environ["BENCH_CHAT_RATES"]


async def _sample_spread(group: Group, samples: list[list[int]]) -> None:
    while True:
        samples.append(await asyncio.to_thread(group.spread))
        await asyncio.sleep(1)


async def processes(stack: Stack, pool: Pool, seed: dict[str, Any] | None, sizes: scenarios.Sizes) -> dict[str, Any]:
    """Scenario 7: fan-out and chat with 1 and 2 processes of ours on one port."""
    fan_sizes = replace(
        sizes,
        fanout_first=FANOUT_FIXED,
        fanout_first_seconds=sizes.fanout_step_seconds,
        fanout_steps=FANOUT_RAISED,
    )
    rates = os.environ.get("BENCH_SCALE_CHAT_RATES", CHAT_RATES)
    rows = []
    for count in PROCESS_COUNTS:
        load_before = os.getloadavg()
        group = start_launch(stack, count)
        try:
            samples: list[list[int]] = []
            sampler = asyncio.create_task(_sample_spread(group, samples))
            try:
                fan = await scenarios.fanout(stack, pool, [group], seed, fan_sizes, step_base=700 + 20 * count)
            finally:
                sampler.cancel()
            with chat_rates(rates):
                chat = await scenarios.chat(stack, pool, group, seed, sizes)
        finally:
            stack.stop(group)
        spread = max(samples, key=sum, default=[])
        rows.append(
            {
                "processes": count,
                "load_before": [round(x, 2) for x in load_before],
                "load_after": [round(x, 2) for x in os.getloadavg()],
                "fanout_spread": spread,
                "fanout": fan,
                "chat": chat,
            }
        )
        scenarios.say(f"  processes x{count}: fan-out subscribers per process {spread}")
    return {"redis": "cluster" if "cluster" in stack.redis_url else "single", "rows": rows}


# --- scenario 8: connects through HAProxy --------------------------------------------------


class Balancer(Group):
    """HAProxy running deploy/haproxy.cfg on loopback, in front of two app processes (`extra`)."""

    stats_port: int = 0

    def backends(self) -> dict[str, dict[str, str]]:
        with urllib.request.urlopen(f"http://127.0.0.1:{self.stats_port}/stats;csv", timeout=5) as response:  # noqa: S310
            text = response.read().decode()
        rows = csv.DictReader(io.StringIO(text.lstrip("# ")))
        return {r["svname"]: r for r in rows if r["pxname"] == "app" and r["svname"] in ("app1", "app2")}

    def parts(self) -> dict[str, float]:
        return {"haproxy": _cpu(self.ps), "app": sum(_cpu(p) for p in self.extra)}


def start_balancer(stack: Stack, apps: list[Server]) -> Balancer:
    binary = haproxy_binary()
    if binary is None:
        raise RuntimeError("haproxy not installed (apt-get install haproxy)")
    port, stats_port = free_port(), free_port()
    env = {
        **os.environ,
        "PMS_LB_BIND": f"127.0.0.1:{port}",
        "PMS_LB_STATS": f"127.0.0.1:{stats_port}",
        "PMS_APP1": f"127.0.0.1:{apps[0].port}",
        "PMS_APP2": f"127.0.0.1:{apps[1].port}",
        "PMS_LB_MAXCONN": "8000",  # 2 files per socket; this machine allows 20,000 per process
    }
    proc = stack._spawn([binary, "-db", "-f", str(HAPROXY_CONFIG)], f"haproxy-{port}.log", env=env)
    wait_port(port, proc, "haproxy")
    balancer = Balancer("ours", port, proc, label="haproxy x2")
    balancer.stats_port = stats_port
    balancer.extra = [a.ps for a in apps]
    deadline = time.monotonic() + 30
    while True:
        try:
            if all(r["status"].startswith("UP") for r in balancer.backends().values()):
                break
        except (OSError, urllib.error.URLError):
            pass
        if proc.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError("haproxy did not see both app processes UP")
        time.sleep(0.2)
    return stack._track(balancer)  # type: ignore[return-value]


def established(server: Server) -> int:
    try:
        conns = server.ps.net_connections(kind="tcp")
    except psutil.NoSuchProcess:
        return 0
    return sum(1 for c in conns if c.status == psutil.CONN_ESTABLISHED and c.laddr and c.laddr.port == server.port)


async def burst(
    stack: Stack, pool: Pool, target: Server, apps: list[Server], specs: list[dict[str, Any]], route: str
) -> dict[str, Any]:
    """One burst of connects to `target`, held until every subscribe was answered, then closed."""
    await pool.all("setup", kind="ours", base=target.base)
    await scenarios.settle(target)
    haproxy0 = _cpu(target.ps) if isinstance(target, Balancer) else 0.0
    meter = scenarios.Meter([target], stack, pool)
    opened = await pool.open(specs)
    usage = meter.read()
    haproxy_s = (_cpu(target.ps) - haproxy0) if isinstance(target, Balancer) else 0.0
    spread = [established(a) for a in apps]
    await pool.all("close")
    done = max(1, opened["opened"])
    row = {
        "route": route,
        "clients": len(specs),
        "opened": opened["opened"],
        "failed": opened["failed"],
        "failures": opened["failures"],
        "connect_rate": round(len(specs) / opened["elapsed"], 1) if opened["elapsed"] else None,
        "connect_ms": percentiles(opened["connect_hist"]),
        "usage": usage,
        "spread": spread,
        "app_us_per_connect": round((usage["server_cpu_s"] - haproxy_s) / done * 1e6),
        "haproxy_us_per_connect": round(haproxy_s / done * 1e6),
        "total_us_per_connect": round(usage["server_cpu_s"] / done * 1e6),
        "redis_us_per_connect": round(usage["redis_cpu_s"] / done * 1e6),
        "load": [round(x, 2) for x in os.getloadavg()],
    }
    scenarios.say(
        f"  connects {route}: {row['opened']}/{row['clients']} at {row['connect_rate']}/s, p99 "
        f"{row['connect_ms']['p99']} ms, app {row['app_us_per_connect']} + haproxy "
        f"{row['haproxy_us_per_connect']} us CPU per connect, spread {spread}"
    )
    return row


async def balancer(stack: Stack, pool: Pool, seed: dict[str, Any] | None, sizes: scenarios.Sizes) -> dict[str, Any]:
    """Scenario 8: notifications connects straight to one process vs through HAProxy to two."""
    assert seed is not None
    n = min(sizes.connect_clients, len(seed["users"]))
    specs = scenarios.connect_specs("ours", seed, "notifications", n)
    warm = [{"token": seed["users"][-1 - i]["token"]} for i in range(20)]
    direct = stack.start("ours")
    apps = [stack.start("ours"), stack.start("ours")]
    front = start_balancer(stack, apps)
    rows = []
    try:
        for target in (direct, front):  # the same warm-up for both routes
            await pool.all("setup", kind="ours", base=target.base)
            await pool.open(warm)
            await pool.all("close")
        for _ in range(BURST_ROUNDS):
            rows.append(await burst(stack, pool, direct, [direct], specs, "direct, 1 process"))
            rows.append(await burst(stack, pool, front, apps, specs, "HAProxy, 2 processes"))
    finally:
        for server in (front, direct, *apps):
            stack.stop(server)
    return {"config": str(HAPROXY_CONFIG.relative_to(ROOT)), "haproxy": haproxy_version(), "bursts": rows}


def haproxy_version() -> str:
    binary = haproxy_binary()
    if binary is None:
        return ""
    out = subprocess.run([binary, "-v"], capture_output=True, text=True, check=False).stdout
    return out.split("\n", 1)[0].split(" - ")[0]
