"""How fast this machine's CPU is right now: one fixed piece of pure-Python work, timed in thread CPU.

    python -m loadtests.bench.speed          # prints the probe's CPU ms, five times

The bench records it before every scenario run (`speed_ms` in each run, `meta.speed_ms` at the
start). CPU seconds are what the bench bills each server for, and on this shared virtual
machine the same work does not always cost the same: on 2026-12-03 the probe took 341, 363
and 459 ms in three runs a second apart on an idle machine, and the load generators' CPU per
chat message at 300 msg/s doubled from one bench run to the next with nothing of ours changed.
A server's figures from runs whose `speed_ms` differ by more than ~10 % are not comparable as
they are; divide by `speed_ms` (or compare with a server measured in the same run) first.
"""

from __future__ import annotations

import time

#: The work: sums over a range, the interpreter's plainest loop (no allocation beyond ints, no I/O).
ROUNDS = 30
SIZE = 10**6


def probe() -> float:
    """Thread CPU milliseconds the fixed work took (lower is faster)."""
    started = time.thread_time()
    for _ in range(ROUNDS):
        sum(range(SIZE))
    return round((time.thread_time() - started) * 1000, 1)


def main() -> int:
    for _ in range(5):
        print(f"{probe()} ms")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
