"""End-to-end: HAProxy (Debian's package) with `deploy/haproxy.cfg` in front of two uvicorn processes.

The balancer runs the shipped file unchanged; only its addresses come from the environment
(loopback ports). Shown here:
- clients spread over both processes (leastconn);
- a rolling restart of one process loses no message: SIGTERM takes it out of rotation
  (`/readyz` 503 draining) while its sockets stay open, new connections go to the other one,
  then its sockets close with 1012 and the clients reconnect through the balancer with
  `since`; every acknowledged chat message reaches every receiver exactly once; the restarted
  process comes back into rotation and takes the next connections;
- `/readyz` failing because a store is down for one process takes it out of rotation for new
  connections (its open sockets stay), and it returns when the store does.
- one user with sockets on both processes behaves as on one: online while either is open,
  logout closes both (4409), the login rate limit counts failures made on either.

Every wait is on a condition (HAProxy's own view of its servers, the processes' /metrics),
bounded; nothing relies on a sleep.
"""

import asyncio
import csv
import io
import json
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from django.db import connection
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from realtime import topics
from tests.e2e.conftest import (
    ROOT,
    SUBPROTOCOLS,
    UVICORN_ARGS,
    WAIT,
    Client,
    ServerProcess,
    _wait_healthy,
    free_port,
)
from tests.factories import DEFAULT_PASSWORD, make_conversation, make_user

HAPROXY = shutil.which("haproxy") or shutil.which("haproxy", path="/usr/sbin")  # Debian's package puts it in sbin
pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.timeout(240),  # a rolling restart with a 10 s drain, on a busy 2-core machine
    pytest.mark.skipif(HAPROXY is None, reason="haproxy not installed (scripts/test installs it as root)"),
]

DRAIN_SECONDS = 10.0  # covers HAProxy's 3 failed checks 1 s apart with room for a busy machine
ROTATION_WAIT = 15.0  # HAProxy marks a server up or down within 2-3 s; bounded generously
CONFIG = ROOT / "deploy" / "haproxy.cfg"


async def wait_until(check: Callable[[], Awaitable[bool]], what: str, timeout: float = ROTATION_WAIT) -> None:
    deadline = time.monotonic() + timeout
    while not await check():
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {timeout:.0f} s: {what}")
        await asyncio.sleep(0.1)


def http_get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=WAIT) as response:  # noqa: S310
            return response.status, response.read().decode()
    except urllib.error.HTTPError as error:
        with error:
            return error.code, error.read().decode()


def open_sockets(server: ServerProcess) -> int:
    """The process's own count of authenticated open sockets (its /metrics, asked directly)."""
    status, text = http_get(f"{server.http_url}/metrics")
    assert status == 200, text
    match = re.search(r"^pms_open_sockets (\d+)$", text, re.MULTILINE)
    assert match, text
    return int(match.group(1))


@dataclass
class Balancer:
    """One HAProxy process running deploy/haproxy.cfg on loopback ports."""

    port: int
    stats_port: int
    process: subprocess.Popen[bytes]
    log_path: Path

    @property
    def http_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/ws/"

    def servers(self) -> dict[str, dict[str, str]]:
        """HAProxy's view of the backend's servers (`status`: UP, DOWN, ...; `scur`: open sessions)."""
        status, text = http_get(f"http://127.0.0.1:{self.stats_port}/stats;csv")
        assert status == 200, text
        rows = csv.DictReader(io.StringIO(text.lstrip("# ")))
        return {row["svname"]: row for row in rows if row["pxname"] == "app" and row["svname"] in ("app1", "app2")}

    async def status(self, name: str) -> str:
        return (await asyncio.to_thread(self.servers))[name]["status"]

    async def wait_status(self, name: str, wanted: str) -> None:
        async def reached() -> bool:
            return (await self.status(name)).startswith(wanted)

        await wait_until(reached, f"HAProxy sees {name} {wanted}")

    def login(self, email: str) -> str:
        request = urllib.request.Request(  # noqa: S310
            f"{self.http_url}/api/v1/auth/login",
            data=json.dumps({"email": email, "password": DEFAULT_PASSWORD}).encode(),
            headers={"Content-Type": "application/json"},
            method="POST",
        )
        with urllib.request.urlopen(request, timeout=WAIT) as response:  # noqa: S310
            return str(json.loads(response.read())["token"])

    async def client(self, token: str) -> Client:
        ws = await connect(
            self.ws_url,
            additional_headers={"Authorization": f"Bearer {token}"},
            subprotocols=[SUBPROTOCOLS["json"]],  # type: ignore[list-item]
            open_timeout=WAIT,
            close_timeout=2,
        )
        return Client(ws, "json")

    def logs(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""


class Processes:
    """uvicorn processes on fixed ports (a restarted process must come back on its port); all stopped at teardown."""

    def __init__(self, env: dict[str, str], folder: Path) -> None:
        self.env = env
        self.folder = folder
        self.started: list[ServerProcess] = []

    def start(self, name: str, port: int, **env: str) -> ServerProcess:
        log_path = self.folder / f"{name}-{len(self.started)}.log"
        args = [sys.executable, "-m", "uvicorn", "pms.asgi:application", "--host", "127.0.0.1", "--port", str(port)]
        with log_path.open("wb") as log:
            process = subprocess.Popen(  # noqa: S603
                [*args, *UVICORN_ARGS],
                cwd=ROOT,
                env={**self.env, **env},
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        server = ServerProcess(f"{name}:{port}", port, process, log_path)
        self.started.append(server)
        _wait_healthy(server)
        return server

    def stop_all(self) -> None:
        for server in self.started:
            server.process.kill()  # teardown: no drain to wait out
            server.process.wait()
        for server in self.started:
            print(f"----- {server.name} (exit {server.process.returncode}) -----\n{server.logs()}")


@pytest.fixture
def processes(server_env: dict[str, str], tmp_path: Path) -> Iterator[Processes]:
    started = Processes({**server_env, "PMS_DRAIN_SECONDS": str(DRAIN_SECONDS)}, tmp_path)
    yield started
    started.stop_all()


@pytest.fixture
def start_balancer(tmp_path: Path) -> Iterator[Callable[[int, int], Balancer]]:
    started: list[Balancer] = []

    def start(app1_port: int, app2_port: int) -> Balancer:
        port, stats_port = free_port(), free_port()
        env = {
            **os.environ,
            "PMS_LB_BIND": f"127.0.0.1:{port}",
            "PMS_LB_STATS": f"127.0.0.1:{stats_port}",
            "PMS_APP1": f"127.0.0.1:{app1_port}",
            "PMS_APP2": f"127.0.0.1:{app2_port}",
            "PMS_LB_MAXCONN": "2000",  # this machine allows 20,000 open files per process
        }
        log_path = tmp_path / "haproxy.log"
        with log_path.open("wb") as log:
            process = subprocess.Popen(  # noqa: S603
                [str(HAPROXY), "-db", "-f", str(CONFIG)],
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        balancer = Balancer(port, stats_port, process, log_path)
        started.append(balancer)
        deadline = time.monotonic() + WAIT
        while True:
            try:
                balancer.servers()
                return balancer
            except (OSError, urllib.error.URLError):
                if process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"haproxy did not start:\n{balancer.logs()}") from None
                time.sleep(0.1)

    yield start
    for balancer in started:
        balancer.process.terminate()
        balancer.process.wait(WAIT)
        print(f"----- haproxy -----\n{balancer.logs()}")


@dataclass
class People:
    tenant_email: str
    manager_email: str
    cid: str

    @property
    def topic(self) -> str:
        return topics.chat_messages(self.cid)


@pytest.fixture
def people(transactional_db: None) -> People:
    tenant = make_user()
    manager = make_user(user_type="property_manager")
    conversation = make_conversation(participants=(tenant, manager))
    return People(tenant.email, manager.email, str(conversation.pk))


async def both_up(balancer: Balancer) -> None:
    await balancer.wait_status("app1", "UP")
    await balancer.wait_status("app2", "UP")


async def test_clients_spread_over_both_processes(
    people: People, processes: Processes, start_balancer: Callable[[int, int], Balancer]
) -> None:
    a = processes.start("a", free_port())
    b = processes.start("b", free_port())
    balancer = start_balancer(a.port, b.port)
    await both_up(balancer)
    token = await asyncio.to_thread(balancer.login, people.tenant_email)

    clients = [await balancer.client(token) for _ in range(10)]
    try:
        for client in clients:
            await client.ok({"type": "subscribe", "topic": people.topic})
        counts = [await asyncio.to_thread(open_sockets, server) for server in (a, b)]
        assert counts == [5, 5], counts  # leastconn: each new socket to the process holding fewer
        sessions = await asyncio.to_thread(balancer.servers)
        assert [int(sessions[name]["scur"]) for name in ("app1", "app2")] == [5, 5]
    finally:
        for client in clients:
            await client.ws.close()


@dataclass
class Receiver:
    """A socket through the balancer that keeps a topic's chat messages, reconnecting with `since` on a close."""

    balancer: Balancer
    token: str
    topic: str
    client: Client | None = None
    offset: str | None = None
    seen: Counter[str] = field(default_factory=Counter)
    close_codes: list[int | None] = field(default_factory=list)

    async def connect(self) -> None:
        self.client = await reconnect(self.balancer, self.token)
        frame: dict[str, Any] = {"type": "subscribe", "topic": self.topic}
        if self.offset is not None:
            frame["since"] = self.offset
        data = await self.client.ok(frame)
        if self.offset is not None:
            assert data["recovered"] is True, data
            for event in data["missed"]:
                self.keep(event)
        self.offset = data["offset"] if not data.get("missed") else data["missed"][-1]["offset"]
        for event in self.client.kept:
            self.keep(event)
        self.client.kept.clear()

    def keep(self, event: dict[str, Any]) -> None:
        if event.get("type") == "event" and event.get("event") == "chat.message" and event["topic"] == self.topic:
            self.seen[event["data"]["id"]] += 1
            self.offset = event["offset"]

    async def run(self) -> None:
        while True:
            assert self.client is not None
            try:
                self.keep(await self.client.recv(timeout=3600))
            except ConnectionClosed as closed:
                self.close_codes.append(closed.rcvd.code if closed.rcvd is not None else None)
                await asyncio.sleep(random.uniform(0, 0.2))  # protocol.md: reconnect with a little jitter
                await self.connect()


async def reconnect(balancer: Balancer, token: str) -> Client:
    """Open a socket through the balancer, retrying (bounded) while a connect fails during a restart."""
    deadline = time.monotonic() + ROTATION_WAIT
    while True:
        try:
            return await balancer.client(token)
        except (OSError, InvalidStatus, TimeoutError):
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.1)


@dataclass
class Sender:
    """Sends chat messages through the balancer until stopped; retries an unanswered send with the same clientMessageId."""

    balancer: Balancer
    token: str
    cid: str
    acknowledged: list[str] = field(default_factory=list)
    retries: int = 0
    stop: asyncio.Event = field(default_factory=asyncio.Event)

    async def run(self) -> None:
        client = await reconnect(self.balancer, self.token)
        n = 0
        while not self.stop.is_set():
            n += 1
            frame = {
                "type": "chat.send",
                "conversationId": self.cid,
                "message": f"message {n}",
                "clientMessageId": uuid.uuid4().hex,
            }
            while True:
                try:
                    reply = await client.request(frame)
                    break
                except (ConnectionClosed, TimeoutError):
                    self.retries += 1
                    await client.ws.close()
                    client = await reconnect(self.balancer, self.token)
            assert reply["ok"] is True, reply
            self.acknowledged.append(reply["data"]["id"])
            await asyncio.sleep(0.05)
        await client.ws.close()


@pytest.fixture
async def tasks() -> AsyncIterator[list[asyncio.Task[None]]]:
    running: list[asyncio.Task[None]] = []
    yield running
    for task in running:
        task.cancel()
    await asyncio.gather(*running, return_exceptions=True)


async def test_rolling_restart_of_one_process_loses_no_message(
    people: People,
    processes: Processes,
    start_balancer: Callable[[int, int], Balancer],
    tasks: list[asyncio.Task[None]],
) -> None:
    a = processes.start("a", free_port())
    b = processes.start("b", free_port())
    balancer = start_balancer(a.port, b.port)
    await both_up(balancer)
    tenant = await asyncio.to_thread(balancer.login, people.tenant_email)
    manager = await asyncio.to_thread(balancer.login, people.manager_email)

    receivers = [Receiver(balancer, token, people.topic) for token in (tenant, manager, tenant, manager)]
    for receiver in receivers:
        await receiver.connect()
    assert [await asyncio.to_thread(open_sockets, server) for server in (a, b)] == [2, 2]
    tasks.extend(asyncio.create_task(receiver.run()) for receiver in receivers)
    sender = Sender(balancer, tenant, people.cid)
    tasks.append(asyncio.create_task(sender.run()))

    async def sent_more(than: int) -> bool:
        return len(sender.acknowledged) > than

    await wait_until(lambda: sent_more(5), "the sender got replies")

    # Rolling restart of A. SIGTERM: A leaves the rotation first, its sockets still open.
    a.signal(signal.SIGTERM)
    await balancer.wait_status("app1", "DOWN")
    assert a.process.poll() is None, "A exited before HAProxy took it out of rotation"
    assert await asyncio.to_thread(open_sockets, a) >= 2, "A closed its sockets before it left the rotation"
    on_b_before = await asyncio.to_thread(open_sockets, b)
    newcomer = await balancer.client(manager)
    await newcomer.ok({"type": "presence.query", "userIds": []})
    assert await asyncio.to_thread(open_sockets, b) == on_b_before + 1, "a new connection went to draining A"
    await newcomer.ws.close()

    # Then A closes its sockets with 1012 and exits; its clients are back through the balancer, on B.
    assert await asyncio.wait_for(asyncio.to_thread(a.process.wait), DRAIN_SECONDS + WAIT) in (0, -signal.SIGTERM)
    a = processes.start("a", a.port)
    await balancer.wait_status("app1", "UP")
    count = len(sender.acknowledged)
    await wait_until(lambda: sent_more(count + 5), "the sender kept going after the restart")
    sender.stop.set()
    await asyncio.wait_for(tasks[-1], WAIT)

    acknowledged = set(sender.acknowledged)
    assert len(acknowledged) == len(sender.acknowledged), "a retried send was stored twice"

    async def all_delivered() -> bool:
        return all(set(receiver.seen) >= acknowledged for receiver in receivers)

    await wait_until(all_delivered, "every acknowledged message reached every receiver", timeout=WAIT * 2)
    for receiver in receivers:
        assert set(receiver.seen) == acknowledged
        assert max(receiver.seen.values()) == 1, [k for k, v in receiver.seen.items() if v > 1]
    codes = [code for receiver in receivers for code in receiver.close_codes]
    assert codes.count(1012) == 2, codes  # the two receivers that were on A, and nothing else
    assert len(acknowledged) > 10

    # The restarted A is empty: leastconn sends it the next connections.
    fresh = [await balancer.client(tenant) for _ in range(2)]
    for client in fresh:
        await client.ok({"type": "presence.query", "userIds": []})
    assert await asyncio.to_thread(open_sockets, a) == 2
    for client in fresh:
        await client.ws.close()
    for task in tasks:  # stop the receivers before closing their sockets, or they reconnect
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    for receiver in receivers:
        assert receiver.client is not None
        await receiver.client.ws.close()


class TcpForwarder:
    """A plain TCP relay (real bytes both ways) that can be cut and restored: a store going away for one process."""

    def __init__(self, target_host: str, target_port: int) -> None:
        self.target = (target_host, target_port)
        self.port = free_port()
        self.server: asyncio.Server | None = None
        self.pipes: set[asyncio.StreamWriter] = set()

    async def start(self) -> None:
        self.server = await asyncio.start_server(self.relay, "127.0.0.1", self.port, reuse_address=True)

    async def relay(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            upstream_reader, upstream_writer = await asyncio.open_connection(*self.target)
        except OSError:
            writer.close()
            return
        self.pipes.update((writer, upstream_writer))

        async def pump(source: asyncio.StreamReader, sink: asyncio.StreamWriter) -> None:
            try:
                while data := await source.read(65536):
                    sink.write(data)
                    await sink.drain()
            except (ConnectionError, OSError):
                pass
            finally:
                sink.close()

        await asyncio.gather(pump(reader, upstream_writer), pump(upstream_reader, writer))
        self.pipes.difference_update((writer, upstream_writer))

    async def cut(self) -> None:
        """Refuse new connections and drop the open ones."""
        assert self.server is not None
        self.server.close()
        for pipe in list(self.pipes):
            pipe.transport.abort()
            pipe.close()
        await self.server.wait_closed()


@pytest.fixture
async def postgres_relay() -> AsyncIterator[TcpForwarder]:
    params = connection.settings_dict
    host = params.get("HOST") or "127.0.0.1"
    if host.startswith("/"):
        pytest.skip("the test PostgreSQL is on a Unix socket: no TCP relay to cut")
    relay = TcpForwarder(host, int(params.get("PORT") or 5432))
    await relay.start()
    yield relay
    if relay.server is not None and relay.server.is_serving():
        await relay.cut()


async def test_a_process_whose_store_is_down_leaves_the_rotation_and_returns(
    people: People,
    processes: Processes,
    start_balancer: Callable[[int, int], Balancer],
    postgres_relay: TcpForwarder,
) -> None:
    a = processes.start("a", free_port())
    database_url = processes.env["PMS_DATABASE_URL"]
    relayed = re.sub(r"@[^/]+/", f"@127.0.0.1:{postgres_relay.port}/", database_url, count=1)
    b = processes.start("b", free_port(), PMS_DATABASE_URL=relayed)
    balancer = start_balancer(a.port, b.port)
    await both_up(balancer)
    token = await asyncio.to_thread(balancer.login, people.manager_email)
    first = [await balancer.client(token) for _ in range(2)]
    for client in first:
        await client.ok({"type": "presence.query", "userIds": []})
    assert [await asyncio.to_thread(open_sockets, server) for server in (a, b)] == [1, 1]

    await postgres_relay.cut()  # PostgreSQL is gone, for B only
    await balancer.wait_status("app2", "DOWN")
    status, body = await asyncio.to_thread(http_get, f"{b.http_url}/readyz")
    assert status == 503 and json.loads(body)["failed"] == ["postgres"], body
    later = [await balancer.client(token) for _ in range(4)]
    for client in later:
        await client.ok({"type": "presence.query", "userIds": []})
    assert [await asyncio.to_thread(open_sockets, server) for server in (a, b)] == [5, 1]
    await first[1].ok({"type": "presence.query", "userIds": []})  # B's open socket is untouched (auth is in Redis)

    await postgres_relay.start()  # PostgreSQL is back
    await balancer.wait_status("app2", "UP")
    back = [await balancer.client(token) for _ in range(2)]
    for client in back:
        await client.ok({"type": "presence.query", "userIds": []})
    assert [await asyncio.to_thread(open_sockets, server) for server in (a, b)] == [5, 3]
    for client in [*first, *later, *back]:
        await client.ws.close()


def post(url: str, body: dict[str, Any] | None = None, token: str | None = None) -> int:
    headers = {"Content-Type": "application/json"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    request = urllib.request.Request(  # noqa: S310
        url, data=json.dumps(body or {}).encode(), headers=headers, method="POST"
    )
    try:
        with urllib.request.urlopen(request, timeout=WAIT) as response:  # noqa: S310
            return int(response.status)
    except urllib.error.HTTPError as error:
        with error:
            return int(error.code)


@dataclass
class Ids:
    tenant_id: str
    tenant_email: str
    manager_email: str


@pytest.fixture
def ids(transactional_db: None) -> Ids:
    tenant = make_user()
    manager = make_user(user_type="property_manager")
    make_conversation(participants=(tenant, manager))  # so the manager may see the tenant's presence
    return Ids(str(tenant.pk), tenant.email, manager.email)


async def test_one_user_on_both_processes_behaves_as_on_one(
    ids: Ids, processes: Processes, start_balancer: Callable[[int, int], Balancer]
) -> None:
    a = processes.start("a", free_port())
    b = processes.start("b", free_port())
    balancer = start_balancer(a.port, b.port)
    await both_up(balancer)
    token = await asyncio.to_thread(balancer.login, ids.tenant_email)
    phone, laptop = await balancer.client(token), await balancer.client(token)
    for client in (phone, laptop):
        await client.ok({"type": "presence.query", "userIds": []})
    assert [await asyncio.to_thread(open_sockets, server) for server in (a, b)] == [1, 1]  # one on each
    watcher = await balancer.client(await asyncio.to_thread(balancer.login, ids.manager_email))

    async def tenant_status() -> str:
        return str((await watcher.ok({"type": "presence.query", "userIds": [ids.tenant_id]}))[ids.tenant_id]["status"])

    # Presence: online while either socket is open, on whichever process.
    assert await tenant_status() == "online"
    counts = [await asyncio.to_thread(open_sockets, server) for server in (a, b)]
    await phone.ws.close()

    async def phone_gone() -> bool:
        return sum([await asyncio.to_thread(open_sockets, server) for server in (a, b)]) == sum(counts) - 1

    await wait_until(phone_gone, "the phone's socket closed on its process")
    assert await tenant_status() == "online"  # the laptop, on the other process, still holds it

    # Revocation: logging out through the balancer closes the session's sockets on every process.
    assert await asyncio.to_thread(post, f"{balancer.http_url}/api/v1/auth/logout", None, token) == 204
    assert await laptop.close_code() == 4409

    async def offline() -> bool:
        return await tenant_status() == "offline"

    await wait_until(offline, "the tenant offline once the last socket closed")

    # The login rate limit counts failures from one address across processes (Redis), 5 per window:
    # sent to A and B in turn (directly: the balancer would pick by its own rule), the 6th is refused.
    wrong = {"email": ids.tenant_email, "password": "not the password"}
    statuses = [await asyncio.to_thread(post, f"{server.http_url}/api/v1/auth/login", wrong) for server in (a, b) * 3]
    assert statuses == [401] * 5 + [429], statuses
    await watcher.ws.close()
