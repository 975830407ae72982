"""Where a server's memory per idle socket goes: tracemalloc snapshots around N sockets.

    python -m loadtests.bench.memtrace [--sockets 5000] [--frames 12] [--top 30]

Starts the bench stack (own Redis, throwaway database, MongoDB stand-in, seeded users),
runs our uvicorn under tracemalloc (`serve` below), opens and closes a few warm-up sockets,
takes a snapshot, opens `--sockets` authenticated sockets each subscribed to its
notifications topic (the idle scenario's sockets), takes a second snapshot and prints the
growth per socket grouped by the allocating line and by traceback. RSS per socket is
printed too, to show how much of it tracemalloc sees (the rest is the allocator's slack
and memory allocated outside Python's allocator, e.g. by uvloop).

`python -m loadtests.bench.memtrace serve <uvicorn args>` is the server side: uvicorn with
tracemalloc on; SIGUSR1 writes a snapshot to `$BENCH_MEMTRACE_OUT`.<n>.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import sys
import time
import tracemalloc
from pathlib import Path

FRAMES_ENV = "BENCH_MEMTRACE_FRAMES"
OUT_ENV = "BENCH_MEMTRACE_OUT"


def serve(argv: list[str]) -> None:
    tracemalloc.start(int(os.environ.get(FRAMES_ENV, "12")))
    taken = [0]

    def dump(signum: int, frame: object) -> None:
        taken[0] += 1
        tracemalloc.take_snapshot().dump(f"{os.environ[OUT_ENV]}.{taken[0]}")

    signal.signal(signal.SIGUSR1, dump)
    import uvicorn.main

    sys.argv = ["uvicorn", *argv]
    uvicorn.main.main()


def snapshot(pid: int, out: Path, n: int, timeout: float = 60) -> tracemalloc.Snapshot:
    path = Path(f"{out}.{n}")
    os.kill(pid, signal.SIGUSR1)
    deadline = time.monotonic() + timeout
    size = -1
    while time.monotonic() < deadline:
        if path.exists() and path.stat().st_size == size and size > 0:
            break
        size = path.stat().st_size if path.exists() else -1
        time.sleep(0.5)
    return tracemalloc.Snapshot.load(str(path))


def report(before: tracemalloc.Snapshot, after: tracemalloc.Snapshot, sockets: int, top: int) -> str:
    ignore = [tracemalloc.Filter(False, tracemalloc.__file__), tracemalloc.Filter(False, "<frozen *>")]
    before, after = before.filter_traces(ignore), after.filter_traces(ignore)
    lines = []
    total = sum(s.size_diff for s in after.compare_to(before, "filename"))
    lines.append(f"traced growth: {total / 1024 / sockets:.2f} KiB per socket ({sockets} sockets)")
    lines.append("\nby line (bytes per socket, blocks per socket):")
    for stat in after.compare_to(before, "lineno")[:top]:
        frame = stat.traceback[0]
        lines.append(
            f"  {stat.size_diff / sockets:8.0f} B  {stat.count_diff / sockets:5.1f}  "
            f"{_short(frame.filename)}:{frame.lineno}"
        )
    lines.append("\nby traceback (innermost project/library frames last):")
    for stat in after.compare_to(before, "traceback")[: top // 2]:
        lines.append(f"  {stat.size_diff / sockets:8.0f} B  {stat.count_diff / sockets:5.1f} blocks")
        for frame in list(stat.traceback)[-6:]:
            lines.append(f"        {_short(frame.filename)}:{frame.lineno}")
    return "\n".join(lines)


def _short(filename: str) -> str:
    for marker in ("site-packages/", "/work/main/", "lib/python3.11/"):
        if marker in filename:
            return filename.split(marker, 1)[1]
    return filename


async def drive(args: argparse.Namespace) -> None:
    from loadtests.bench.pool import Pool
    from loadtests.bench.servers import Stack, make_workdir

    workdir = make_workdir()
    stack = Stack(workdir)
    pool = Pool(args.workers)
    out = workdir / "snap"
    try:
        stack.start_redis()
        seed = stack.prepare_ours(users=args.sockets + 20, watchers=20, pairs=1)
        os.environ[OUT_ENV] = str(out)
        os.environ[FRAMES_ENV] = str(args.frames)
        server = stack.start_ours(module=["loadtests.bench.memtrace", "serve"])
        await pool.all("setup", kind="ours", base=server.base)
        await pool.open([{"token": w["token"]} for w in seed["watchers"]])
        await pool.all("close")
        await asyncio.sleep(1)
        rss0 = server.rss()
        first = snapshot(server.proc.pid, out, 1)
        specs = [{"token": u["token"], "topic": f"notifications:{u['id']}"} for u in seed["users"][: args.sockets]]
        opened = await pool.open(specs)
        await asyncio.sleep(3)
        rss1 = server.rss()
        second = snapshot(server.proc.pid, out, 2)
        n = opened["opened"]
        print(f"sockets open: {n}; RSS growth {(rss1 - rss0) / 1024 / n:.2f} KiB per socket (under tracemalloc)")
        print(report(first, second, n, args.top))
        await pool.all("close")
    finally:
        await pool.close()
        stack.close()


def main() -> int:
    if len(sys.argv) > 1 and sys.argv[1] == "serve":
        serve(sys.argv[2:])
        return 0
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sockets", type=int, default=5000)
    parser.add_argument("--frames", type=int, default=12)
    parser.add_argument("--top", type=int, default=30)
    parser.add_argument("--workers", type=int, default=4)
    asyncio.run(drive(parser.parse_args()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
