"""Where a server's CPU goes, phase by phase: uvicorn under cProfile with thread CPU time.

    BENCH_CPROFILE=<folder> python -m loadtests.bench --quick --scenarios 6 --servers ours

With `BENCH_CPROFILE` set, the bench starts our server as `python -m loadtests.bench.cpuprofile
serve <uvicorn args>` and brackets each connect phase: SIGUSR1 starts a fresh profile of the
event-loop thread, SIGUSR2 writes it to `<folder>/<n>.prof` (`python -m pstats`, or
`summary` below). The clock is `time.thread_time`: CPU of that thread only, so time the
loop spends waiting (for the kernel, for Redis, for a machine shared with others) is not
counted, unlike py-spy's wall-clock samples. cProfile itself slows every Python call, so
compare shares within one profile, not its totals with an unprofiled run.
"""

from __future__ import annotations

import cProfile
import os
import pstats
import signal
import sys
import time
from pathlib import Path

OUT_ENV = "BENCH_CPROFILE"


def serve(argv: list[str]) -> None:
    folder = Path(os.environ[OUT_ENV])
    folder.mkdir(parents=True, exist_ok=True)
    profiles: list[cProfile.Profile] = []  # the running one, if any
    written = [0]

    def start(signum: int, frame: object) -> None:
        profile = cProfile.Profile(time.thread_time)
        profiles[:] = [profile]
        profile.enable()

    def stop(signum: int, frame: object) -> None:
        for profile in profiles:
            profile.disable()
            written[0] += 1
            profile.dump_stats(str(folder / f"{written[0]}.prof"))
        profiles.clear()

    signal.signal(signal.SIGUSR1, start)
    signal.signal(signal.SIGUSR2, stop)
    import uvicorn.main

    sys.argv = ["uvicorn", *argv]
    uvicorn.main.main()


def summary(path: str, top: int = 40) -> None:
    stats = pstats.Stats(path)
    stats.sort_stats("tottime").print_stats(top)


if __name__ == "__main__":
    if sys.argv[1:2] == ["serve"]:
        serve(sys.argv[2:])
    else:
        summary(sys.argv[1], int(sys.argv[2]) if len(sys.argv) > 2 else 40)
