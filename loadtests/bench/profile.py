"""Sample a running server with py-spy and print where its time goes.

    python -m loadtests.bench.profile --pid <server pid> --seconds 20 [--out stacks.txt]
    python -m loadtests.bench.profile --stacks stacks.txt     # what BENCH_PY_SPY=<folder> recorded

Runs `py-spy record --format raw` (collapsed stacks), then prints the top functions by
own time and by inclusive time, so the answer fits in a report. Run it while a bench
scenario drives the server (the pid is in `pgrep -af "uvicorn pms.asgi"`).
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
from collections import Counter
from pathlib import Path


def summarize(stacks: Path, top: int = 25) -> str:
    own: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    total = 0
    for line in stacks.read_text().splitlines():
        frames, _, count_s = line.rpartition(" ")
        if not frames:
            continue
        count = int(count_s)
        total += count
        names = [
            f.split(" (")[0] + " (" + f.split(" (")[-1].split(":")[0].split("/")[-1] + ")"
            for f in frames.split(";")
            if f
        ]
        if names:
            own[names[-1]] += count
        for name in set(names):
            inclusive[name] += count
    lines = [f"samples: {total}", "", "own time:"]
    lines += [f"  {100 * c / total:5.1f}%  {n}" for n, c in own.most_common(top)]
    lines += ["", "inclusive time:"]
    lines += [f"  {100 * c / total:5.1f}%  {n}" for n, c in inclusive.most_common(top)]
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pid", type=int, help="sample this process now")
    parser.add_argument("--stacks", help="only summarize stacks already recorded (BENCH_PY_SPY of the bench)")
    parser.add_argument("--seconds", type=int, default=20)
    parser.add_argument("--rate", type=int, default=200)
    parser.add_argument("--out", help="keep the collapsed stacks here")
    parser.add_argument("--top", type=int, default=25)
    args = parser.parse_args()
    if args.stacks:
        print(summarize(Path(args.stacks), args.top))
        return 0
    if args.pid is None:
        parser.error("--pid or --stacks is required")
    out = Path(args.out) if args.out else Path(tempfile.mkstemp(suffix=".txt")[1])
    binary = Path(sys.executable).parent / "py-spy"
    subprocess.run(
        [
            str(binary),
            "record",
            "--pid",
            str(args.pid),
            "--duration",
            str(args.seconds),
            "--rate",
            str(args.rate),
            "--format",
            "raw",
            "--output",
            str(out),
            "--nonblocking",
        ],
        check=True,
    )
    print(summarize(out, args.top))
    return 0


if __name__ == "__main__":
    sys.exit(main())
