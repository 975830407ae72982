"""`/healthz` (the process answers), `/readyz` (PostgreSQL, Redis and MongoDB reachable, and the
process not draining), and draining on SIGTERM.

Draining. A load balancer sends new connections only to processes whose `/readyz` answers 200.
On SIGTERM the process first answers `/readyz` with 503 `{"status": "draining"}` for
`PMS_DRAIN_SECONDS` (settings `DRAIN_SECONDS`), so the balancer takes it out of rotation while
its sockets stay open and it still accepts the few connections already on their way; only then
does the server's own shutdown run (uvicorn: stop listening, close every socket with 1012, exit),
and clients reconnect through the balancer to a process that is still in rotation, resuming with
`since`. `/healthz` stays 200 while draining: the process is alive, nothing should restart it.

How: `arm_drain_on_sigterm()` wraps the SIGTERM handler the server installed (uvicorn's
`Server.handle_exit`): the first SIGTERM starts draining and calls that handler `grace`
seconds later on the loop; a second SIGTERM calls it at once. SIGINT (Ctrl-C) is not wrapped.
`DrainOnSigterm` (the outermost ASGI wrapper, `pms/asgi.py`) arms it on the process's first
scope: uvicorn imports the app before it installs its handlers, but serves no scope before
(in every worker of `--workers N` alike). `/readyz` re-arms it if a server replaced it later.
daphne's handler (Twisted's `reactor.sigTerm`) is wrapped the same way (tried by hand: the
stop came 2 s after SIGTERM with a 2 s grace). A process with no callable handler to defer
(the test client's thread) keeps its plain behaviour; a process that never served a scope
has nothing to drain and stops at once.
"""

import asyncio
import os
import signal
import threading
import time
from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import dataclass
from types import FrameType
from typing import Any

from asgiref.sync import sync_to_async
from django.conf import settings
from django.db import connection
from django.http import HttpRequest, JsonResponse

from realtime.connections import get_mongo, get_redis

CHECK_TIMEOUT_SECONDS = 3.0


@dataclass
class DrainState:
    """This process's drain: when SIGTERM arrived (monotonic), and the handler it wraps."""

    started_at: float | None = None
    armed_handler: Callable[[int, FrameType | None], Any] | None = None


DRAIN = DrainState()


def draining() -> bool:
    return DRAIN.started_at is not None


def arm_drain_on_sigterm(grace: float | None = None) -> bool:
    """Wrap the running server's SIGTERM handler so SIGTERM drains for `grace` seconds first.

    Call from the main thread with the server's event loop running. Returns whether the
    wrapper is in place (False: grace 0, not the main thread, no loop, or no server handler).
    """
    grace = settings.DRAIN_SECONDS if grace is None else grace
    if grace <= 0 or threading.current_thread() is not threading.main_thread():
        return False
    try:
        loop = asyncio.get_running_loop()
    except RuntimeError:
        return False
    previous = signal.getsignal(signal.SIGTERM)
    if previous is DRAIN.armed_handler and previous is not None:
        return True
    if not callable(previous):  # SIG_DFL, SIG_IGN, None: no server shutdown to defer
        return False
    server_handler = previous

    def stop_now() -> None:
        server_handler(signal.SIGTERM, None)

    def on_sigterm(signum: int, frame: FrameType | None) -> None:
        if DRAIN.started_at is not None:  # a second SIGTERM: stop without waiting
            server_handler(signum, frame)
            return
        DRAIN.started_at = time.monotonic()
        # From a signal handler only the thread-safe call is safe; it wakes the loop.
        loop.call_soon_threadsafe(loop.call_later, grace, stop_now)

    signal.signal(signal.SIGTERM, on_sigterm)
    DRAIN.armed_handler = on_sigterm
    return True


Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]


class DrainOnSigterm:
    """ASGI wrapper: arms draining (`arm_drain_on_sigterm`) on the first scope, then only passes through."""

    def __init__(self, app: Callable[[Scope, Receive, Send], Awaitable[None]]) -> None:
        self.app = app
        self.tried = False

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if not self.tried:
            self.tried = True
            arm_drain_on_sigterm()
        await self.app(scope, receive, send)


async def healthz(request: HttpRequest) -> JsonResponse:
    return JsonResponse({"status": "ok"})


@sync_to_async
def _check_postgres() -> None:
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")


async def _check_redis() -> None:
    await get_redis().ping()


async def _check_mongo() -> None:
    await get_mongo().admin.command("ping")


CHECKS: dict[str, Callable[[], Awaitable[None]]] = {
    "postgres": _check_postgres,
    "redis": _check_redis,
    "mongo": _check_mongo,
}


async def _run(check: Callable[[], Awaitable[None]]) -> dict[str, object]:
    started = time.perf_counter()
    try:
        await asyncio.wait_for(check(), CHECK_TIMEOUT_SECONDS)
    except Exception as exc:  # readiness reports any failure, it never raises
        return {"ok": False, "error": f"{type(exc).__name__}: {exc}"[:300]}
    return {"ok": True, "ms": round((time.perf_counter() - started) * 1000, 1)}


async def readyz(request: HttpRequest) -> JsonResponse:
    """200 when every store answers; 503 naming the ones that do not, or 503 `draining` after SIGTERM.

    `pid` names the process that answered (several share a port under `--workers N`).
    """
    if DRAIN.started_at is not None:
        draining_for = round(time.monotonic() - DRAIN.started_at, 1)
        return JsonResponse({"status": "draining", "drainingFor": draining_for, "pid": os.getpid()}, status=503)
    arm_drain_on_sigterm()
    names = list(CHECKS)
    results = await asyncio.gather(*(_run(CHECKS[name]) for name in names))
    checks = dict(zip(names, results, strict=True))
    failed = [name for name, result in checks.items() if not result["ok"]]
    status = 503 if failed else 200
    return JsonResponse(
        {"status": "unavailable" if failed else "ok", "failed": failed, "checks": checks, "pid": os.getpid()},
        status=status,
    )
