"""End-to-end: N server processes on one port (`python -m pms.launch`, what `scripts/serve
--workers N` and the image run), with the production flags.

Sockets opened all at once (a reconnect storm) spread over the processes (SO_REUSEPORT: the
kernel hashes each connection to one process's socket); SIGTERM drains every process (503
`draining` from each, then 1012) and the launcher exits cleanly; a process that dies is
started again on the same socket.
"""

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from tests.e2e.conftest import (
    ROOT,
    START_TIMEOUT,
    SUBPROTOCOLS,
    UVICORN_ARGS,
    WAIT,
    ServerProcess,
    free_port,
    login,
)
from tests.factories import make_user

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.timeout(180)]  # 2 processes start per test

DRAIN_SECONDS = 10.0  # time enough to see both processes answer draining on a busy machine
SOCKETS = 60


def children(pid: int) -> list[int]:
    return [int(child) for child in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]


def established_per_process(port: int, pids: list[int]) -> dict[int, int]:
    """Established TCP connections on local `port`, counted per process that holds them (Linux /proc)."""
    inodes: set[str] = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            if int(fields[1].rsplit(":", 1)[1], 16) == port and fields[3] == "01":
                inodes.add(fields[9])
    counts = {}
    for pid in pids:
        held = 0
        for fd in Path(f"/proc/{pid}/fd").iterdir():
            try:
                target = os.readlink(fd)
            except OSError:
                continue
            if target.startswith("socket:[") and target[8:-1] in inodes:
                held += 1
        counts[pid] = held
    return counts


def readyz(server: ServerProcess) -> tuple[int, dict[str, Any]]:
    """(status, body) of GET /readyz; (0, {}) while nothing answers."""
    try:
        with urllib.request.urlopen(f"{server.http_url}/readyz", timeout=WAIT) as response:  # noqa: S310
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        with error:
            return error.code, json.loads(error.read())
    except (OSError, urllib.error.URLError):
        return 0, {}


@pytest.fixture
def user(transactional_db: None) -> Any:
    return make_user()


@pytest.fixture
def launched(server_env: dict[str, str], tmp_path: Path) -> Iterator[ServerProcess]:
    """`python -m pms.launch --workers 2` on a free port, healthy, both processes started."""
    port = free_port()
    log_path = tmp_path / "launch.log"
    env = {**server_env, "PMS_DRAIN_SECONDS": str(DRAIN_SECONDS), "WEB_CONCURRENCY": "2"}
    args = [sys.executable, "-m", "pms.launch", "pms.asgi:application", "--host", "127.0.0.1", "--port", str(port)]
    with log_path.open("wb") as log:
        process = subprocess.Popen(  # noqa: S603
            [*args, *UVICORN_ARGS], cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
    server = ServerProcess(f"launch:{port}", port, process, log_path)
    try:
        deadline = time.monotonic() + START_TIMEOUT * 3  # two processes start at once on a busy machine
        while readyz(server)[0] != 200:
            assert process.poll() is None and time.monotonic() < deadline, server.logs()
            time.sleep(0.2)
        while len(children(process.pid)) < 2 or server.logs().count("Uvicorn running on") < 2:
            assert time.monotonic() < deadline, server.logs()
            time.sleep(0.1)
        # Both processes have answered once (a first request loads the URLs and the API): each
        # new connection is hashed anew, so asking until both pids answered takes a few tries.
        answered: set[int] = set()
        while answered != set(children(process.pid)):
            assert time.monotonic() < deadline, server.logs()
            status, body = readyz(server)
            if status == 200:
                answered.add(body["pid"])
        yield server
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
        print(f"----- {server.name} (exit {process.returncode}) -----\n{server.logs()}")


async def open_sockets(server: ServerProcess, token: str, count: int) -> list[ClientConnection]:
    """`count` authenticated sockets opened at once."""
    return list(
        await asyncio.gather(
            *(
                connect(
                    server.ws_url,
                    additional_headers={"Authorization": f"Bearer {token}"},
                    subprotocols=[SUBPROTOCOLS["json"]],  # type: ignore[list-item]
                    open_timeout=WAIT * 2,
                )
                for _ in range(count)
            )
        )
    )


async def close_code(ws: ClientConnection, timeout: float) -> int | None:
    try:
        async with asyncio.timeout(timeout):
            while True:
                await ws.recv()
    except ConnectionClosed as closed:
        return closed.rcvd.code if closed.rcvd is not None else None


async def test_sockets_opened_at_once_spread_over_the_processes_and_all_drain_on_sigterm(
    user: Any, launched: ServerProcess
) -> None:
    token = str((await asyncio.to_thread(login, launched, user.email))["token"])
    pids = children(launched.process.pid)
    sockets = await open_sockets(launched, token, SOCKETS)
    counts = established_per_process(launched.port, pids)
    assert sum(counts.values()) == SOCKETS, counts
    # Hashing 60 connections over 2 sockets: below 15 on one side happens about once in 20,000 runs.
    assert min(counts.values()) >= 15, counts

    launched.signal(signal.SIGTERM)
    draining: set[int] = set()
    async with asyncio.timeout(DRAIN_SECONDS):  # each new connection is hashed anew: both answer soon
        while draining != set(pids):
            status, body = await asyncio.to_thread(readyz, launched)
            if status == 503 and body["status"] == "draining":
                draining.add(body["pid"])
    codes = Counter(await asyncio.gather(*(close_code(ws, DRAIN_SECONDS + WAIT) for ws in sockets)))
    assert codes == {1012: SOCKETS}
    assert await asyncio.wait_for(asyncio.to_thread(launched.process.wait), WAIT) == 0
    assert launched.logs().count("Finished server process") == 2


async def test_a_process_that_dies_is_started_again_on_the_same_port(user: Any, launched: ServerProcess) -> None:
    token = str((await asyncio.to_thread(login, launched, user.email))["token"])
    first, second = children(launched.process.pid)
    os.kill(first, signal.SIGKILL)

    deadline = time.monotonic() + START_TIMEOUT
    while True:
        now = children(launched.process.pid)
        if len(now) == 2 and first not in now and launched.logs().count("Uvicorn running on") >= 3:
            break
        assert time.monotonic() < deadline, launched.logs()
        await asyncio.sleep(0.1)
    assert second in now
    replacement = next(pid for pid in now if pid != second)
    sockets = await open_sockets(launched, token, SOCKETS)
    counts = established_per_process(launched.port, now)
    assert counts[replacement] >= 15 and counts[second] >= 15, counts
    for ws in sockets:
        await ws.close()
