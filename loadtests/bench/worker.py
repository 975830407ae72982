"""A load-generator process: holds many client sockets and counts what they receive.

The coordinator (`loadtests.bench.__main__`) starts several of these (a process holds at
most ~20,000 open files here) and drives them over a pipe with small commands; each
returns plain dicts (counts, sparse latency histograms) the coordinator merges.

Latency = receive time - the send time written in the marker (same machine, same clock).
Histograms have 0.1 ms bins: {bin: count}.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import random
import time
from collections import Counter
from multiprocessing.connection import Connection
from typing import Any

from loadtests.bench.protocols import OursAdapter, RoomAdapter, adapter_for, marker
from loadtests.bench.rawws import Closed, RawWebSocket

BIN = 10_000  # bins per second: 0.1 ms


class Sock:
    __slots__ = ("idx", "spec", "ws", "offset", "pending", "refs", "open", "generation")

    def __init__(self, idx: int, spec: dict[str, Any]) -> None:
        self.idx = idx
        self.spec = spec
        self.ws: RawWebSocket | None = None
        self.offset: str | None = None
        self.pending: dict[Any, Any] = {}
        self.refs = itertools.count(1)
        self.open = False
        self.generation = 0  # which connection of this socket's life the callbacks belong to


class Worker:
    def __init__(self, index: int) -> None:
        self.index = index
        self.adapter: OursAdapter | RoomAdapter | None = None
        self.socks: list[Sock] = []
        self.reset_step(-1, 0)
        self.closed_unexpectedly = 0
        self.close_codes: Counter[str] = Counter()

    # --- accounting ----------------------------------------------------------------
    def reset_step(self, step: int, expected: int) -> None:
        self.step = step
        self.expected = expected
        self.bitmaps: dict[int, bytearray] = {}
        self.seen: set[tuple[int, int]] = set()
        self.hist: Counter[int] = Counter()
        self.received = 0
        self.dups = 0
        self.other_step = 0
        self.acks = 0
        self.ack_hist: Counter[int] = Counter()
        self.errors: Counter[str] = Counter()
        self.sent = 0

    def receipt(self, sock: Sock, mark: str, now: float, source: str = "live") -> None:
        parts = mark.split("|")
        if len(parts) != 5:
            return
        kind, step_s, a_s, b_s, ts_s = parts
        step = int(step_s)
        if step != self.step:
            self.other_step += 1
            return
        if kind == "F":
            seq = int(a_s)
            bitmap = self.bitmaps.get(sock.idx)
            if bitmap is None:
                bitmap = self.bitmaps[sock.idx] = bytearray(self.expected)
            if seq >= len(bitmap):
                return
            if bitmap[seq]:
                self.dups += 1
                self.errors[f"duplicate_{source}"] += 1
                return
            bitmap[seq] = 1
        elif kind == "C":
            sender = int(a_s)
            if sender == sock.spec.get("gidx"):
                return  # the sender's own copy: not a delivery to the other participant
            key = (sender, int(b_s))
            if key in self.seen:
                self.dups += 1
                return
            self.seen.add(key)
        else:
            return
        self.received += 1
        self.hist[int((now - float(ts_s)) * BIN)] += 1

    # --- sockets -------------------------------------------------------------------
    async def _connect(self, sock: Sock, since: str | None = None) -> float:
        assert self.adapter is not None
        spec = sock.spec
        started = time.perf_counter()
        sock.generation += 1
        generation = sock.generation
        local = (spec["local"], 0) if spec.get("local") else None
        ws = await RawWebSocket.connect(
            self.adapter.url(spec),
            self.adapter.headers(spec) or {},
            lambda raw: self._received(sock, generation, raw),
            lambda code: self._lost(sock, generation, code),
            local_addr=local,
        )
        sock.ws = ws
        sock.open = True
        loop = asyncio.get_running_loop()
        frames = self.adapter.subscribe_frames(spec, 0, since)
        # Every subscribe is sent at once (as a client opening its screens does), then every reply awaited.
        waiters = [loop.create_future() for _ in frames]
        for ref, waiter in enumerate(waiters):
            sock.pending[ref] = waiter
        for frame in frames:
            await ws.send(frame)
        for waiter in waiters:
            reply = await asyncio.wait_for(waiter, 60)
            if not reply.get("ok"):
                raise RuntimeError(f"subscribe refused: {reply.get('error')}")
            data = reply.get("data") or {}
            sock.offset = data.get("offset", sock.offset)
            now = time.time()
            if since and not data.get("recovered"):
                self.errors["not_recovered"] += 1
            for event in data.get("missed") or ():
                ev = event.get("data") or {}
                mark = ev.get("message") if event.get("event") == "chat.message" else ev.get("m")
                if event.get("offset"):
                    sock.offset = event["offset"]
                if mark:
                    self.receipt(sock, mark, now, "missed")
        return time.perf_counter() - started

    def _received(self, sock: Sock, generation: int, raw: str | bytes) -> None:
        """One frame from the server (called from the client's data_received)."""
        if sock.generation != generation:
            return
        now = time.time()
        try:
            kind, a, b = self.adapter.parse(raw)  # type: ignore[union-attr]
            if kind == "event":
                if b is not None:
                    if _offset_key(b) < _offset_key(sock.offset):
                        # Opaque to clients, but a regression here means "the last offset
                        # seen" is not the highest: a later `since` would repeat events.
                        self.errors["offset_went_back"] += 1
                    sock.offset = b
                if a:
                    self.receipt(sock, a, now)
            elif kind in ("reply", "pong"):
                waiter = sock.pending.pop(a, None)
                if isinstance(waiter, asyncio.Future):
                    if not waiter.done():
                        waiter.set_result(b if kind == "reply" else {"ok": True, "t": now})
                elif isinstance(waiter, float):  # a chat.send in flight
                    if b.get("ok"):
                        self.acks += 1
                        self.ack_hist[int((time.perf_counter() - waiter) * BIN)] += 1
                    else:
                        self.errors[str((b.get("error") or {}).get("code"))] += 1
            elif kind == "error":
                self.errors[str(((b or {}).get("error") or {}).get("code"))] += 1
        except Exception as exc:  # noqa: BLE001 - a client bug must not kill the worker
            self.errors[f"client:{type(exc).__name__}"] += 1

    def _lost(self, sock: Sock, generation: int, code: int | None) -> None:
        if sock.generation != generation:
            return
        if sock.open:
            self.closed_unexpectedly += 1
            self.close_codes[str(code if code is not None else "none")] += 1
        sock.open = False

    async def cmd_setup(self, kind: str, base: str) -> dict[str, Any]:
        self.adapter = adapter_for(kind, base)
        return {}

    async def cmd_open(self, specs: list[dict[str, Any]], concurrency: int = 100) -> dict[str, Any]:
        gate = asyncio.Semaphore(concurrency)
        times: list[float] = []
        failures: Counter[str] = Counter()
        start_idx = len(self.socks)
        new = [Sock(start_idx + i, spec) for i, spec in enumerate(specs)]
        self.socks.extend(new)

        async def one(sock: Sock) -> None:
            async with gate:
                try:
                    times.append(await self._connect(sock))
                except Exception as exc:  # noqa: BLE001
                    failures[type(exc).__name__ + ":" + str(exc)[:80]] += 1

        started = time.perf_counter()
        await asyncio.gather(*(one(s) for s in new))
        elapsed = time.perf_counter() - started
        return {
            "opened": len(times),
            "failed": sum(failures.values()),
            "failures": dict(failures.most_common(5)),
            "elapsed": elapsed,
            "connect_hist": _hist(times),
        }

    async def cmd_ping(self, timeout: float = 30.0, concurrency: int = 20) -> dict[str, Any]:
        """A liveness round trip on every socket, at most `concurrency` in flight per worker."""
        assert self.adapter is not None
        loop = asyncio.get_running_loop()
        rtts: list[float] = []
        gate = asyncio.Semaphore(concurrency)

        async def one(sock: Sock) -> None:
            async with gate:
                await _one(sock)

        async def _one(sock: Sock) -> None:
            if not sock.open or sock.ws is None:
                return
            ref = next(sock.refs) + 1_000_000
            fut = sock.pending[ref] = loop.create_future()
            t0 = time.perf_counter()
            try:
                await sock.ws.send(self.adapter.ping_frame(ref, time.time()))  # type: ignore[union-attr]
                await asyncio.wait_for(fut, timeout)
                rtts.append(time.perf_counter() - t0)
            except Exception:  # noqa: BLE001
                sock.pending.pop(ref, None)

        await asyncio.gather(*(one(s) for s in self.socks))
        return {
            "answered": len(rtts),
            "open": sum(1 for s in self.socks if s.open),
            "total": len(self.socks),
            "rtt_hist": _hist(rtts),
            "closed_unexpectedly": self.closed_unexpectedly,
            "close_codes": dict(self.close_codes),
        }

    async def cmd_begin(self, step: int, expected: int) -> dict[str, Any]:
        self.reset_step(step, expected)
        return {}

    async def cmd_count(self) -> dict[str, Any]:
        return {"received": self.received, "acks": self.acks}

    async def cmd_stats(self) -> dict[str, Any]:
        unique_fanout = sum(sum(b) for b in self.bitmaps.values())
        return {
            "received": self.received,
            "dups": self.dups,
            "other_step": self.other_step,
            "hist": dict(self.hist),
            "unique_fanout": unique_fanout,
            "acks": self.acks,
            "ack_hist": dict(self.ack_hist),
            "errors": dict(self.errors),
            "sent": self.sent,
            "open": sum(1 for s in self.socks if s.open),
            "subscribers": len(self.socks),
            "closed_unexpectedly": self.closed_unexpectedly,
            "close_codes": dict(self.close_codes),
        }

    async def cmd_chat(self, step: int, rate: float, duration: float) -> dict[str, Any]:
        """Send `rate` chat messages/s in all from this worker's sender sockets, for `duration` s."""
        assert self.adapter is not None
        senders = [s for s in self.socks if s.spec.get("sender") and s.open]
        if not senders:
            return {"sent": 0}
        seqs = {s.idx: itertools.count() for s in senders}
        random.shuffle(senders)
        started = time.perf_counter()
        sent = 0
        rr = itertools.cycle(senders)
        while True:
            elapsed = time.perf_counter() - started
            if elapsed >= duration:
                break
            due = int(elapsed * rate) - sent
            for _ in range(max(0, due)):
                sock = next(rr)
                if not sock.open or sock.ws is None:
                    continue
                ref = next(sock.refs)
                text = marker("C", step, sock.spec["gidx"], next(seqs[sock.idx]), time.time())
                sock.pending[ref] = time.perf_counter()
                try:
                    await sock.ws.send(self.adapter.chat_frame(sock.spec, text, ref))
                except Closed:
                    sock.pending.pop(ref, None)
                    continue
                sent += 1
            await asyncio.sleep(0.005)
        self.sent += sent
        return {"sent": sent}

    async def cmd_storm(self, use_since: bool, concurrency: int = 200) -> dict[str, Any]:
        """Drop every socket at once, then reconnect each (with `since` when supported)."""
        socks = list(self.socks)
        started = time.perf_counter()
        for s in socks:
            s.open = False  # an intended close, not counted as unexpected
        await asyncio.gather(*(s.ws.close() for s in socks if s.ws is not None), return_exceptions=True)
        gate = asyncio.Semaphore(concurrency)
        failures: Counter[str] = Counter()

        async def one(sock: Sock) -> None:
            async with gate:
                for attempt in range(5):
                    try:
                        await self._connect(sock, since=sock.offset if use_since else None)
                        return
                    except Exception as exc:  # noqa: BLE001
                        failures[type(exc).__name__] += 1
                        await asyncio.sleep(0.2 * (attempt + 1))

        await asyncio.gather(*(one(s) for s in socks))
        return {
            "recovered_after": time.perf_counter() - started,
            "failures": dict(failures),
            "open": sum(1 for s in socks if s.open),
        }

    async def cmd_close(self) -> dict[str, Any]:
        for s in self.socks:
            s.open = False
        await asyncio.gather(*(s.ws.close() for s in self.socks if s.ws is not None), return_exceptions=True)
        self.socks = []
        self.closed_unexpectedly = 0
        self.close_codes = Counter()
        return {}


def _offset_key(offset: str | None) -> tuple[int, ...]:
    """Diagnostics only: the numeric parts of an offset, in order."""
    if not offset:
        return ()
    return tuple(int(p) for p in offset.replace(":", "-").split("-")[1:] if p.isdigit())


def _hist(values: list[float]) -> dict[int, int]:
    return dict(Counter(int(v * BIN) for v in values))


async def _serve(conn: Connection, index: int) -> None:
    worker = Worker(index)
    while True:
        # A thread, not loop.add_reader: the loop would make the pipe non-blocking and
        # Connection.recv cannot read a large message in pieces.
        name, kwargs = await asyncio.to_thread(conn.recv)
        if name == "exit":
            with contextlib.suppress(Exception):
                await worker.cmd_close()
            conn.send({"ok": True})
            return
        try:
            result = await getattr(worker, f"cmd_{name}")(**kwargs)
            conn.send({"ok": True, "result": result})
        except Exception as exc:  # noqa: BLE001
            conn.send({"ok": False, "error": f"{type(exc).__name__}: {exc}"})


def run(conn: Connection, index: int) -> None:
    """Process entry point."""
    try:
        import uvloop

        uvloop.run(_serve(conn, index))
    except ImportError:
        asyncio.run(_serve(conn, index))
