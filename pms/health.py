"""`/healthz` (the process answers) and `/readyz` (PostgreSQL, Redis and MongoDB reachable)."""

import asyncio
import time
from collections.abc import Awaitable, Callable

from asgiref.sync import sync_to_async
from django.db import connection
from django.http import HttpRequest, JsonResponse

from realtime.connections import get_mongo, get_redis

CHECK_TIMEOUT_SECONDS = 3.0


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
    """200 when every store answers; 503 naming the ones that do not."""
    names = list(CHECKS)
    results = await asyncio.gather(*(_run(CHECKS[name]) for name in names))
    checks = dict(zip(names, results, strict=True))
    failed = [name for name, result in checks.items() if not result["ok"]]
    status = 503 if failed else 200
    return JsonResponse(
        {"status": "unavailable" if failed else "ok", "failed": failed, "checks": checks}, status=status
    )
