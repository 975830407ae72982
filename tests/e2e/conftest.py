"""End-to-end fixtures: real server processes (uvicorn as in production, daphne too) sharing the
test PostgreSQL database, Redis DB 15 and MongoDB `pms_test`, and real WebSocket clients.

Servers are function-scoped and depend on `transactional_db`, so rows the test writes are
committed (visible to the servers) and every server is stopped, closing its database
connections, before pytest-django flushes or drops the test database.
"""

import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

import msgpack
import pytest
from django.conf import settings
from django.db import connection
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from pms.server import UVICORN_OPTIONS, ws_options
from tests.conftest import TEST_MONGO_DATABASE
from tests.factories import DEFAULT_PASSWORD

ROOT = Path(__file__).resolve().parents[2]
WAIT = 5.0  # every single wait on a socket or a server is bounded by this
# A cold server process imports Django, Channels and the apps: 25 s measured with the load average
# at 16 on this 2-core machine (2026-12-02), so a generous bound (it returns as soon as /healthz answers).
START_TIMEOUT = 90.0
STOP_TIMEOUT = 10.0
PRESENCE_TTL_SECONDS = 2.0
HOUSEKEEPING_SECONDS = 0.5
EPHEMERAL_EVENTS = frozenset({"presence", "chat.typing"})

# The production command line (pms/devstack.py `serve`, Dockerfile): same flags, free port.
UVICORN_ARGS = [*UVICORN_OPTIONS, *ws_options({})]  # the production flags (pms/server.py), defaults


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class ServerProcess:
    """One real server process on 127.0.0.1:<port>, its output in `log_path`."""

    name: str
    port: int
    process: subprocess.Popen[bytes]
    log_path: Path

    @property
    def http_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/ws/"

    def metric(self, name: str) -> int:
        """One unlabelled sample of the process's own `/metrics` (a counter or a gauge)."""
        with urllib.request.urlopen(f"{self.http_url}/metrics", timeout=WAIT) as response:  # noqa: S310
            text = response.read().decode()
        line = next(line for line in text.splitlines() if line.startswith(name + " "))
        return int(float(line.split()[-1]))

    def logs(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def signal(self, signum: int) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signum)

    def stop(self) -> None:
        """SIGTERM (graceful: sockets closed 1012), then SIGKILL if it hangs."""
        if self.process.poll() is not None:
            return
        self.process.terminate()
        try:
            self.process.wait(STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(STOP_TIMEOUT)


def _database_url() -> str:
    """The pytest-django test database (already created and renamed by `transactional_db`)."""
    params = connection.settings_dict
    host = params.get("HOST") or "127.0.0.1"
    if host.startswith("/"):
        host = quote(host, safe="")  # Unix socket directory (embedded PostgreSQL)
    user = quote(params.get("USER") or "postgres", safe="")
    password = params.get("PASSWORD") or ""
    credentials = f"{user}:{quote(password, safe='')}" if password else user
    port = f":{params['PORT']}" if params.get("PORT") else ""
    return f"postgres://{credentials}@{host}{port}/{params['NAME']}"


@pytest.fixture
def server_env(transactional_db: None, realtime_test_stores: None) -> dict[str, str]:
    """Environment of every server process: the tests' stores, short presence timings."""
    env = dict(os.environ)
    env.update(
        DJANGO_SETTINGS_MODULE="pms.settings",
        PMS_DEBUG="1",
        PMS_DATABASE_URL=_database_url(),
        PMS_REDIS_URL=settings.REDIS_URL,  # the run's test Redis DB (tests/conftest.py `realtime_test_stores`)
        PMS_MONGO_URL=settings.MONGO_URL,
        PMS_MONGO_DATABASE=settings.MONGO_DATABASE,  # TEST_MONGO_DATABASE
        PMS_PRESENCE_TTL_SECONDS=str(PRESENCE_TTL_SECONDS),
        PMS_HOUSEKEEPING_SECONDS=str(HOUSEKEEPING_SECONDS),
        PMS_ALLOWED_HOSTS="127.0.0.1,localhost",
        PYTHONUNBUFFERED="1",
        # SIGTERM closes with 1012 at once; test_drain.py and test_haproxy.py set a drain grace.
        PMS_DRAIN_SECONDS="0",
        PMS_GC_TUNE="1",  # as in production (scripts/test turns it off for its own process only)
    )
    assert settings.MONGO_DATABASE == TEST_MONGO_DATABASE, "not the test stores"
    return env


def _wait_healthy(server: ServerProcess) -> None:
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            raise RuntimeError(f"{server.name} exited with {server.process.returncode}:\n{server.logs()}")
        try:
            with urllib.request.urlopen(f"{server.http_url}/healthz", timeout=1) as response:  # noqa: S310
                if response.status == 200:
                    return
        except (OSError, urllib.error.URLError):
            pass
        time.sleep(0.1)
    raise RuntimeError(f"{server.name} not healthy within {START_TIMEOUT:.0f} s:\n{server.logs()}")


ServerFactory = Callable[..., list[ServerProcess]]


@pytest.fixture
def start_servers(server_env: dict[str, str], tmp_path: Path) -> Iterator[ServerFactory]:
    """`start_servers(n, kind="uvicorn"|"daphne")`: n processes started in parallel, each healthy on return.

    At teardown every process is stopped before the test database goes away; their logs
    are printed (pytest shows them when the test failed).
    """
    started: list[ServerProcess] = []

    def start(count: int = 1, *, kind: str = "uvicorn", extra_args: tuple[str, ...] = ()) -> list[ServerProcess]:
        batch = []
        for _ in range(count):
            port = free_port()
            name = f"{kind}-{len(started) + 1}:{port}"
            if kind == "uvicorn":
                args = [
                    sys.executable,
                    "-m",
                    "uvicorn",
                    "pms.asgi:application",
                    "--host",
                    "127.0.0.1",
                    "--port",
                    str(port),
                    *UVICORN_ARGS,
                    *extra_args,
                ]
            elif kind == "daphne":
                args = [sys.executable, "-m", "daphne", "-b", "127.0.0.1", "-p", str(port), "pms.asgi:application"]
            else:
                raise ValueError(kind)
            log_path = tmp_path / f"{kind}-{port}.log"
            with log_path.open("wb") as log:
                process = subprocess.Popen(  # noqa: S603
                    args, cwd=ROOT, env=server_env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
                )
            server = ServerProcess(name, port, process, log_path)
            started.append(server)
            batch.append(server)
        for server in batch:
            _wait_healthy(server)
        return batch

    yield start
    for server in started:
        server.stop()
    for server in started:
        print(f"----- {server.name} (exit {server.process.returncode}) -----\n{server.logs()}")


@pytest.fixture(autouse=True)
def fast_password_hashing() -> None:
    """Overrides the suite's MD5 hasher: the servers verify passwords with the production hashers."""


def login(server: ServerProcess, email: str, password: str = DEFAULT_PASSWORD) -> dict[str, Any]:
    """POST /api/v1/auth/login over real HTTP; returns the response body (token, user)."""
    request = urllib.request.Request(  # noqa: S310
        f"{server.http_url}/api/v1/auth/login",
        data=json.dumps({"email": email, "password": password}).encode(),
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=WAIT) as response:  # noqa: S310
        body: dict[str, Any] = json.loads(response.read())
    return body


async def alogin(server: ServerProcess, email: str) -> str:
    """The session token of `email`, logged in through `server`."""
    body = await asyncio.to_thread(login, server, email)
    return str(body["token"])


@dataclass(eq=False)
class Client:
    """A real WebSocket client speaking the protocol in one codec; frames that are not the
    awaited reply are kept for `next_event`."""

    ws: ClientConnection
    codec: str
    kept: list[dict[str, Any]] = field(default_factory=list)

    async def send(self, frame: dict[str, Any]) -> None:
        if self.codec == "json":
            await self.ws.send(json.dumps(frame))
        else:
            await self.ws.send(msgpack.packb(frame))

    async def recv(self, timeout: float = WAIT) -> dict[str, Any]:
        raw = await asyncio.wait_for(self.ws.recv(), timeout)
        if self.codec == "json":
            assert isinstance(raw, str), "json subprotocol must use text frames"
            frame: dict[str, Any] = json.loads(raw)
        else:
            assert isinstance(raw, bytes), "msgpack subprotocol must use binary frames"
            frame = msgpack.unpackb(raw, raw=False)
        return frame

    async def request(self, frame: dict[str, Any]) -> dict[str, Any]:
        """Send a command with a fresh ref and return its reply."""
        ref = uuid.uuid4().hex[:8]
        await self.send({**frame, "ref": ref})
        async with asyncio.timeout(WAIT):
            while True:
                reply = await self.recv()
                if reply.get("type") == "reply" and reply.get("ref") == ref:
                    return reply
                self.kept.append(reply)

    async def ok(self, frame: dict[str, Any]) -> Any:
        reply = await self.request(frame)
        assert reply["ok"] is True, reply
        return reply.get("data")

    async def next_event(self, predicate: Callable[[dict[str, Any]], bool]) -> dict[str, Any]:
        """The first event (kept or new) matching `predicate`; others are kept."""
        for index, frame in enumerate(self.kept):
            if frame.get("type") == "event" and predicate(frame):
                return self.kept.pop(index)
        async with asyncio.timeout(WAIT):
            while True:
                frame = await self.recv()
                if frame.get("type") == "event" and predicate(frame):
                    return frame
                self.kept.append(frame)

    async def assert_no_more_stored_events(self, timeout: float = 0.5) -> None:
        """Nothing but ephemeral events (presence, typing) arrives within `timeout`."""
        stored = [f for f in self.kept if f.get("type") != "event" or f.get("event") not in EPHEMERAL_EVENTS]
        assert stored == [], stored
        try:
            async with asyncio.timeout(timeout):
                while True:
                    frame = await self.recv()
                    assert frame.get("type") == "event" and frame.get("event") in EPHEMERAL_EVENTS, frame
        except TimeoutError:
            pass

    async def close_code(self) -> int | None:
        """Wait (bounded) for the server to close the socket; the code it sent."""
        try:
            async with asyncio.timeout(WAIT):
                while True:
                    await self.ws.recv()
        except ConnectionClosed as closed:
            return closed.rcvd.code if closed.rcvd is not None else None


SUBPROTOCOLS = {"json": "pms.v1.json", "msgpack": "pms.v1.msgpack"}
ClientFactory = Callable[..., Any]


@pytest.fixture
async def open_client() -> AsyncIterator[ClientFactory]:
    """`await open_client(server, token, codec="json")`: a header-authenticated socket, closed at teardown."""
    opened: list[Client] = []

    async def open_socket(server: ServerProcess, token: str, codec: str = "json") -> Client:
        ws = await connect(
            server.ws_url,
            additional_headers={"Authorization": f"Bearer {token}"},
            subprotocols=[SUBPROTOCOLS[codec]],  # type: ignore[list-item]
            open_timeout=WAIT,
            close_timeout=2,
        )
        assert ws.subprotocol == SUBPROTOCOLS[codec]
        client = Client(ws, codec)
        opened.append(client)
        return client

    yield open_socket
    for client in opened:
        await client.ws.close()


def kill(server: ServerProcess) -> None:
    """SIGKILL: the process dies with no chance to clean up (its presence must expire)."""
    server.signal(signal.SIGKILL)
    server.process.wait(STOP_TIMEOUT)


StartServer = Callable[..., ServerProcess]


@pytest.fixture
def start_production_server(server_env: dict[str, str], tmp_path: Path) -> Iterator[StartServer]:
    """`start_production_server(**env)`: `python -m pms.server` (the production command line, one
    worker) with `env` added, healthy on return; stopped and its log printed at teardown."""
    started: list[ServerProcess] = []

    def start(**env: str) -> ServerProcess:
        port = free_port()
        log_path = tmp_path / f"pms-server-{port}.log"
        command = [sys.executable, "-m", "pms.server", "--workers", "1", "--host", "127.0.0.1", "--port", str(port)]
        with log_path.open("wb") as log:
            process = subprocess.Popen(  # noqa: S603
                command,
                cwd=ROOT,
                env={**server_env, **env},
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        server = ServerProcess(f"pms.server:{port}", port, process, log_path)
        started.append(server)
        _wait_healthy(server)
        return server

    yield start
    for server in started:
        server.stop()
        print(f"----- {server.name} (exit {server.process.returncode}) -----\n{server.logs()}")
