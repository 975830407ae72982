"""The coordinator's handle on the load-generator processes, and histogram helpers."""

from __future__ import annotations

import asyncio
import multiprocessing
from collections import Counter
from typing import Any

import psutil

from loadtests.bench import worker

BIN = worker.BIN


class Pool:
    def __init__(self, size: int) -> None:
        ctx = multiprocessing.get_context("spawn")
        self.conns = []
        self.procs = []
        for index in range(size):
            parent, child = ctx.Pipe()
            proc = ctx.Process(target=worker.run, args=(child, index), daemon=True)
            proc.start()
            self.conns.append(parent)
            self.procs.append(proc)
        self.ps = [psutil.Process(p.pid) for p in self.procs]
        self.locks = [asyncio.Lock() for _ in self.procs]

    @property
    def size(self) -> int:
        return len(self.conns)

    async def call(self, index: int, name: str, **kwargs: Any) -> Any:
        async with self.locks[index]:
            conn = self.conns[index]
            conn.send((name, kwargs))
            reply = await asyncio.to_thread(conn.recv)
        if not reply.get("ok"):
            raise RuntimeError(f"worker {index} {name}: {reply.get('error')}")
        return reply.get("result")

    async def all(self, name: str, **kwargs: Any) -> list[Any]:
        return list(await asyncio.gather(*(self.call(i, name, **kwargs) for i in range(self.size))))

    async def each(self, name: str, per_worker: list[dict[str, Any]]) -> list[Any]:
        return list(await asyncio.gather(*(self.call(i, name, **kw) for i, kw in enumerate(per_worker))))

    async def open(self, specs: list[dict[str, Any]], concurrency: int = 100) -> dict[str, Any]:
        """Spread `specs` round-robin over the workers and open them; merged result."""
        shares: list[list[dict[str, Any]]] = [[] for _ in range(self.size)]
        for i, spec in enumerate(specs):
            local = f"127.0.0.{2 + (i % self.size)}"
            shares[i % self.size].append({**spec, "local": local})
        results = await self.each("open", [{"specs": s, "concurrency": concurrency} for s in shares])
        return {
            "opened": sum(r["opened"] for r in results),
            "failed": sum(r["failed"] for r in results),
            "failures": merge_counts([r["failures"] for r in results]),
            "elapsed": max(r["elapsed"] for r in results),
            "connect_hist": merge_hists([r["connect_hist"] for r in results]),
        }

    def cpu(self) -> float:
        total = 0.0
        for p in self.ps:
            t = p.cpu_times()
            total += t.user + t.system
        return total

    async def close(self) -> None:
        for conn in self.conns:
            try:
                conn.send(("exit", {}))
            except OSError:
                continue
        for p in self.procs:
            await asyncio.to_thread(p.join, 10)
            if p.is_alive():
                p.kill()


def merge_counts(items: list[dict[str, int]]) -> dict[str, int]:
    total: Counter[str] = Counter()
    for item in items:
        total.update(item)
    return dict(total)


def merge_hists(items: list[dict[Any, int]]) -> dict[int, int]:
    total: Counter[int] = Counter()
    for item in items:
        for k, v in item.items():
            total[int(k)] += v
    return dict(total)


def percentiles(hist: dict[int, int], points: tuple[float, ...] = (50, 95, 99)) -> dict[str, float | None]:
    """Percentiles in milliseconds from a 0.1 ms histogram (plus max and count)."""
    n = sum(hist.values())
    out: dict[str, float | None] = {f"p{p:g}": None for p in points}
    out["max"] = None
    out["count"] = n
    if n == 0:
        return out
    keys = sorted(hist)
    targets = [(p, p / 100 * n) for p in points]
    seen = 0
    ti = 0
    for k in keys:
        seen += hist[k]
        while ti < len(targets) and seen >= targets[ti][1]:
            out[f"p{targets[ti][0]:g}"] = round(k * 1000 / BIN, 2)
            ti += 1
    out["max"] = round(keys[-1] * 1000 / BIN, 2)
    return out
