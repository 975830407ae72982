"""Seed load-test users against a running server's stores and write their tokens as JSON.

    python -m loadtests.seed --embedded --out loadtests/results/locust-users.json [seed args...]
    PMS_DATABASE_URL=... PMS_REDIS_URL=... python -m loadtests.seed --out users.json [seed args...]

It runs `manage.py seed_loadtest_users` as a subprocess (loadtests import nothing from
the code base). `--embedded` points it at the stack of `scripts/serve`: the embedded
PostgreSQL's Unix socket (read from `.pms-data/postgres/postmaster.pid`) and the
embedded Redis socket `.pms-data/redis/redis.sock`. Other seed arguments (`--users`,
`--watchers`, `--pairs`, `--password`, `--prefix`) pass through.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path
from urllib.parse import quote

ROOT = Path(__file__).resolve().parents[1]


def embedded_env() -> dict[str, str]:
    data = Path(os.environ.get("PMS_DATA_DIR", ROOT / ".pms-data"))
    pid = data / "postgres" / "postmaster.pid"
    sock = data / "redis" / "redis.sock"
    if not pid.exists() or not sock.exists():
        raise SystemExit(f"[seed] no running embedded stack under {data} (start scripts/serve first)")
    lines = pid.read_text().splitlines()
    socket_dir = lines[4].strip() if len(lines) > 4 else ""
    if not socket_dir:
        raise SystemExit("[seed] the embedded PostgreSQL listens on no Unix socket")
    return {
        "PMS_DATABASE_URL": f"postgres://postgres@{quote(socket_dir, safe='')}/pms",
        "PMS_REDIS_URL": f"unix://{sock}?db=0",
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--embedded", action="store_true", help="use the stores of scripts/serve")
    parser.add_argument("--out", required=True)
    args, rest = parser.parse_known_args()
    env = dict(os.environ)
    if args.embedded:
        env.update(embedded_env())
    env.setdefault("PMS_DEBUG", "1")
    command = [sys.executable, str(ROOT / "manage.py"), "seed_loadtest_users", "--out", args.out, *rest]
    return subprocess.run(command, cwd=ROOT, env=env).returncode


if __name__ == "__main__":
    sys.exit(main())
