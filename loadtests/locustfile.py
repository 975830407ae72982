"""Locust: tenants chatting with their manager, managers watching a board, mobile clients
idling and reconnecting with `since`, over real WebSockets and the HTTP API.

    python -m loadtests.seed --embedded --out loadtests/results/locust-users.json --users 50 --watchers 50 --pairs 50 \
        --leases 50
    locust -f loadtests/locustfile.py --headless -u 60 -r 10 -t 2m --host http://127.0.0.1:8000 \
        --users-file loadtests/results/locust-users.json

Socket library: `websocket-client` (the `websocket` module). Locust runs users as gevent
greenlets and monkeypatches the standard library, and websocket-client is built on plain
blocking sockets, so each receive yields to the other greenlets. The `websockets` asyncio
client would need an event loop per greenlet (asyncio and gevent do not share one), and
`websockets.sync` runs a background thread per connection, which under monkeypatching
becomes another greenlet with its own locking: more moving parts for no gain.

Custom metrics (the "WS" request types in locust's table):
- `WS connect`: TCP + upgrade + bearer-token auth + the `subscribe` replies;
- `WS chat.send`: command to stored reply; `WS chat.read`, `WS chat.typing` likewise;
- `WS-deliver chat.message`: end-to-end, send time (in the message text) to receipt by
  the *other* participant; `WS-deliver broadcast`: publish to receipt;
- `WS reconnect`: a mobile client's drop + reconnect + `subscribe` with `since`; it fails
  when the server answers `recovered: false`.

- `WS-deliver notification`: a notification's `createdAt` (made in the server or in the
  job worker) to its receipt on the recipient's socket (millisecond clock of the one machine).

The job worker (started by `scripts/serve`) runs beside the server during the load: with a
seed made with `--leases N` the pairs carry `leaseId` and `requestId`, and
- the tenant side of a pair reads what the jobs produce: its unread count and notifications
  (`GET /api/v1/notifications/unread-count`, `GET /api/v1/notifications`) and its lease's
  charges (`GET /api/v1/transactions?leaseId=`);
- the manager side moves the tenant's maintenance request between `assigned` and
  `in_progress` over HTTP (`PATCH /api/v1/maintenance-requests/{id}`), which notifies the tenant.
The managers of `ManagerBoard` still subscribe to `system:broadcasts`, and one back-office user
publishes board updates into Redis on that channel (as another service would, PROTOCOL.md)
when `--redis-url` is given.
"""

from __future__ import annotations

import itertools
import json
import random
import threading
import time
import uuid
from datetime import datetime
from pathlib import Path
from typing import Any

import gevent
import gevent.event
import websocket  # websocket-client
from locust import HttpUser, between, events, task
from locust.exception import StopUser

_lock = threading.Lock()
_data: dict[str, Any] = {}
_slots: dict[str, itertools.count[int]] = {}


@events.init_command_line_parser.add_listener
def _options(parser: Any) -> None:
    parser.add_argument(
        "--users-file", default="loadtests/results/locust-users.json", help="JSON written by `python -m loadtests.seed`"
    )
    parser.add_argument("--redis-url", default="", help="publish board updates here (e.g. unix:///…/redis.sock)")


def _seed(environment: Any) -> dict[str, Any]:
    with _lock:
        if not _data:
            _data.update(json.loads(Path(environment.parsed_options.users_file).read_text()))
        return _data


def _next(kind: str) -> int:
    with _lock:
        return next(_slots.setdefault(kind, itertools.count()))


def _retry_idempotent(user: HttpUser) -> None:
    """Retry a GET once when a kept-alive connection was closed under it, as browsers do.

    uvicorn closes idle keep-alive connections after 5 s; a request sent on such a
    connection at that instant gets ECONNRESET. Only idempotent methods are retried.
    """
    from requests.adapters import HTTPAdapter
    from urllib3.util.retry import Retry

    adapter = HTTPAdapter(
        max_retries=Retry(total=1, connect=1, read=1, allowed_methods={"GET"}, status=0, raise_on_status=False)
    )
    user.client.mount("http://", adapter)
    user.client.mount("https://", adapter)


def _fire(
    environment: Any, kind: str, name: str, started: float, exc: Exception | None = None, length: int = 0
) -> None:
    environment.events.request.fire(
        request_type=kind,
        name=name,
        response_time=(time.time() - started) * 1000,
        response_length=length,
        exception=exc,
        context={},
    )


class SocketClient:
    """One protocol socket: a reader greenlet resolves replies and reports deliveries."""

    def __init__(self, user: HttpUser, token: str, me: str) -> None:
        self.user, self.token, self.me = user, token, me
        self.env = user.environment
        self.ws: websocket.WebSocket | None = None
        self.refs = itertools.count(1)
        self.waiting: dict[int, tuple[str, float, gevent.event.AsyncResult | None]] = {}
        self.offsets: dict[str, str] = {}
        self.last_message: dict[str, str] = {}
        self.reader: gevent.Greenlet | None = None

    def url(self) -> str:
        return (self.user.host or "").replace("http", "ws", 1).rstrip("/") + "/ws/"

    def connect(self, topics: list[str], *, since: bool = False, name: str = "connect") -> bool:
        started = time.time()
        try:
            self.ws = websocket.create_connection(
                self.url(), header=[f"Authorization: Bearer {self.token}"], timeout=30, enable_multithread=True
            )
            self.ws.settimeout(None)  # the reader blocks until a frame; the server pings every 25 s
            self.reader = gevent.spawn(self._read, self.ws)
            for topic in topics:
                frame: dict[str, Any] = {"topic": topic}
                if since and topic in self.offsets:
                    frame["since"] = self.offsets[topic]
                reply = self.call("subscribe", frame, metric=False)
                data = reply.get("data") or {}
                if not reply.get("ok"):
                    raise RuntimeError(f"subscribe {topic}: {reply.get('error')}")
                for event in data.get("missed") or ():
                    self._event(event)
                if data.get("offset") and topic not in self.offsets:
                    self.offsets[topic] = data["offset"]
                if since and "since" in frame and not data.get("recovered"):
                    raise RuntimeError(f"not recovered on {topic}")
        except Exception as exc:  # noqa: BLE001
            _fire(self.env, "WS", name, started, exc)
            self.close()
            return False
        _fire(self.env, "WS", name, started)
        return True

    def call(self, kind: str, fields: dict[str, Any], *, metric: bool = True, timeout: float = 10) -> dict[str, Any]:
        ref = next(self.refs)
        result: gevent.event.AsyncResult = gevent.event.AsyncResult()
        started = time.time()
        self.waiting[ref] = (kind, started, result)
        assert self.ws is not None
        self.ws.send(json.dumps({"type": kind, "ref": ref, **fields}))
        try:
            reply: dict[str, Any] = result.get(timeout=timeout)
        except gevent.Timeout as exc:
            self.waiting.pop(ref, None)
            if metric:
                _fire(self.env, "WS", kind, started, RuntimeError("no reply"))
            raise RuntimeError(f"{kind}: no reply in {timeout} s") from exc
        if metric:
            error = None if reply.get("ok") else RuntimeError(str((reply.get("error") or {}).get("code")))
            _fire(self.env, "WS", kind, started, error)
        return reply

    def _event(self, frame: dict[str, Any]) -> None:
        topic, data, event = frame.get("topic", ""), frame.get("data") or {}, frame.get("event")
        if frame.get("offset"):
            self.offsets[topic] = frame["offset"]
        if event == "chat.message":
            text = str(data.get("message", ""))
            if data.get("senderId") != self.me:
                self.last_message[str(data.get("conversationId"))] = str(data.get("id"))
                if text.startswith("lt|"):
                    _fire(self.env, "WS-deliver", "chat.message", float(text.split("|")[1]), length=len(text))
        elif event == "broadcast" and isinstance(data.get("sentAt"), float):
            _fire(self.env, "WS-deliver", "broadcast", data["sentAt"])
        elif event == "notification" and isinstance(data.get("createdAt"), str):
            created = datetime.fromisoformat(data["createdAt"].replace("Z", "+00:00")).timestamp()
            _fire(self.env, "WS-deliver", "notification", created)

    def _read(self, ws: websocket.WebSocket) -> None:
        try:
            while True:
                raw = ws.recv()
                if not raw:
                    return
                frame = json.loads(raw)
                kind = frame.get("type")
                if kind == "event":
                    self._event(frame)
                elif kind in ("reply", "pong"):
                    waiting = self.waiting.pop(frame.get("ref"), None)
                    if waiting and waiting[2] is not None:
                        waiting[2].set(frame if kind == "reply" else {"ok": True, **frame})
        except Exception:  # noqa: BLE001 - closed: the owner notices on its next call
            return

    def close(self) -> None:
        ws, self.ws = self.ws, None
        if ws is not None:
            try:
                ws.close()
            except Exception:  # noqa: BLE001
                pass
        if self.reader is not None:
            self.reader.kill(block=False)


class TenantChat(HttpUser):
    """A tenant or a manager in a one-to-one conversation: login, history, send, read, type."""

    weight = 6
    wait_time = between(1, 3)

    def on_start(self) -> None:
        _retry_idempotent(self)
        seed = _seed(self.environment)
        slot = _next("chat")
        pair = seed["pairs"][(slot // 2) % len(seed["pairs"])]
        person = pair["a" if slot % 2 == 0 else "b"]
        self.conversation = pair["conversationId"]
        self.is_tenant = slot % 2 == 0
        self.lease_id, self.request_id = pair.get("leaseId"), pair.get("requestId")
        self.request_status = "in_progress"
        with self.client.post(
            "/api/v1/auth/login",
            json={"email": person["email"], "password": seed["password"]},
            name="/api/v1/auth/login",
            catch_response=True,
        ) as resp:
            if resp.status_code != 200:
                resp.failure(f"login {resp.status_code}")
                raise StopUser()
            body = resp.json()
        self.token, self.me = body["token"], body["user"]["id"]
        self.sock = SocketClient(self, self.token, self.me)
        if not self.sock.connect([f"chat:messages:{self.conversation}", f"notifications:{self.me}"]):
            raise StopUser()
        self.sock.call("chat.history", {"conversationId": self.conversation, "limit": 20})

    def on_stop(self) -> None:
        self.sock.close()

    def _reconnect_if_needed(self) -> None:
        if self.sock.ws is None or not self.sock.ws.connected:
            self.sock.close()
            self.sock.connect(
                [f"chat:messages:{self.conversation}", f"notifications:{self.me}"], since=True, name="reconnect"
            )

    @task(6)
    def send(self) -> None:
        self._reconnect_if_needed()
        text = f"lt|{time.time():.6f}|{uuid.uuid4().hex[:8]} is the heating fixed?"
        self.sock.call(
            "chat.send", {"conversationId": self.conversation, "message": text, "clientMessageId": uuid.uuid4().hex}
        )

    @task(2)
    def typing(self) -> None:
        self._reconnect_if_needed()
        self.sock.call("chat.typing", {"conversationId": self.conversation})

    @task(2)
    def read(self) -> None:
        last = self.sock.last_message.get(self.conversation)
        if last:
            self._reconnect_if_needed()
            self.sock.call("chat.read", {"conversationId": self.conversation, "messageId": last})

    @task(1)
    def me_over_http(self) -> None:
        self.client.get("/api/v1/auth/me", headers={"Authorization": f"Bearer {self.token}"}, name="/api/v1/auth/me")

    @task(2)
    def what_the_jobs_made(self) -> None:
        """Tenant side: what the job worker produced (notifications, the lease's charges);
        manager side: change the tenant's maintenance request (the tenant is notified)."""
        headers = {"Authorization": f"Bearer {self.token}"}
        if self.lease_id is None:
            return
        if not self.is_tenant:
            self.request_status = "assigned" if self.request_status == "in_progress" else "in_progress"
            self.client.patch(
                f"/api/v1/maintenance-requests/{self.request_id}",
                json={"status": self.request_status},
                headers=headers,
                name="/api/v1/maintenance-requests/{id} PATCH",
            )
            return
        self.client.get(
            "/api/v1/notifications/unread-count", headers=headers, name="/api/v1/notifications/unread-count"
        )
        self.client.get("/api/v1/notifications?limit=20", headers=headers, name="/api/v1/notifications")
        self.client.get(
            f"/api/v1/transactions?leaseId={self.lease_id}&limit=20", headers=headers, name="/api/v1/transactions"
        )


class ManagerBoard(HttpUser):
    """A manager with the board open: one socket, watching; HTTP reads now and then."""

    weight = 2
    wait_time = between(3, 6)

    def on_start(self) -> None:
        _retry_idempotent(self)
        seed = _seed(self.environment)
        person = seed["watchers"][_next("board") % len(seed["watchers"])]
        self.token = person["token"]
        self.sock = SocketClient(self, self.token, person["id"])
        if not self.sock.connect(["system:broadcasts", f"notifications:{person['id']}"]):
            raise StopUser()

    def on_stop(self) -> None:
        self.sock.close()

    @task
    def refresh(self) -> None:
        if self.sock.ws is None or not self.sock.ws.connected:
            self.sock.close()
            self.sock.connect(["system:broadcasts", f"notifications:{self.sock.me}"], since=True, name="reconnect")
        self.client.get("/api/v1/auth/me", headers={"Authorization": f"Bearer {self.token}"}, name="/api/v1/auth/me")
        self.sock.call("ping", {}, metric=True)


class MobileIdle(HttpUser):
    """A phone: one idle socket for its notifications and chat; drops and recovers with `since`."""

    weight = 2
    wait_time = between(15, 30)

    def on_start(self) -> None:
        seed = _seed(self.environment)
        person = seed["users"][_next("mobile") % len(seed["users"])]
        self.topics = [f"notifications:{person['id']}"]
        self.sock = SocketClient(self, person["token"], person["id"])
        if not self.sock.connect(self.topics):
            raise StopUser()

    def on_stop(self) -> None:
        self.sock.close()

    @task
    def drop_and_recover(self) -> None:
        self.sock.close()  # the network went away
        gevent.sleep(random.uniform(0.5, 3))
        self.sock.connect(self.topics, since=True, name="reconnect")


class BackOffice(HttpUser):
    """Publishes board updates into Redis as another service would (only with --redis-url)."""

    weight = 1
    fixed_count = 1
    wait_time = between(0.5, 1.5)

    def on_start(self) -> None:
        url = self.environment.parsed_options.redis_url
        self.redis = None
        if url:
            import redis

            self.redis = redis.Redis.from_url(url)

    @task
    def publish(self) -> None:
        if self.redis is None:
            return
        started = time.time()
        try:
            self.redis.publish(
                "system:broadcasts",
                json.dumps({"event": "broadcast", "data": {"kind": "maintenance.board", "sentAt": time.time()}}),
            )
        except Exception as exc:  # noqa: BLE001
            _fire(self.environment, "REDIS", "publish system:broadcasts", started, exc)
            return
        _fire(self.environment, "REDIS", "publish system:broadcasts", started)
