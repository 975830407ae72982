"""The five scenarios of issue 5, each run against one server kind at a time.

A step "holds" when its p99 delivery latency is <= 100 ms with nothing lost and nothing
duplicated; stepping stops at the first step that does not hold. "Lost" means not
delivered within the drain window after the last publish (DRAIN_MAX seconds without
progress ends it), so a message later than that counts as lost.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import os
import shutil
import signal
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import redis.asyncio as aioredis
from websockets.asyncio.client import ClientConnection, connect

from loadtests.bench.pool import Pool, merge_counts, merge_hists, percentiles
from loadtests.bench.protocols import marker
from loadtests.bench.servers import Server, Stack

P99_LIMIT_MS = 100.0
BROADCAST_CHANNEL = "system:broadcasts"


def say(text: str) -> None:
    print(f"[bench] {text}", flush=True)


@dataclass
class Sizes:
    idle_levels: list[int]
    idle_hold: float
    fanout_subscribers: int
    fanout_first: list[int]
    fanout_first_seconds: float
    fanout_steps: list[int]
    fanout_step_seconds: float
    chat_pairs: int
    chat_rates: list[int]
    chat_step_seconds: float
    storm_seconds: float
    storm_rate: float
    drain_max: float
    connect_clients: int = 2000


QUICK = Sizes(
    idle_levels=[1000, 5000],
    idle_hold=3,
    fanout_subscribers=1000,
    fanout_first=[1, 10],
    fanout_first_seconds=10,
    fanout_steps=[20, 50, 100, 200, 400, 800],
    fanout_step_seconds=5,
    chat_pairs=200,
    chat_rates=[50, 100, 200, 400, 800, 1600, 2000, 2500, 3200],
    chat_step_seconds=5,
    storm_seconds=12,
    storm_rate=10,
    drain_max=6,
)
FULL = Sizes(
    idle_levels=[1000, 5000, 10000, 15000],
    idle_hold=10,
    fanout_subscribers=1000,
    fanout_first=[1, 10],
    fanout_first_seconds=20,
    fanout_steps=[20, 50, 100, 200, 300, 400, 600, 800, 1200],
    fanout_step_seconds=10,
    chat_pairs=200,
    chat_rates=[50, 100, 200, 300, 400, 600, 800, 1000, 1200, 1600, 2000, 2500, 3200, 4000],
    chat_step_seconds=10,
    storm_seconds=20,
    storm_rate=10,
    drain_max=10,
    connect_clients=6000,
)


# --- publishers -------------------------------------------------------------------------


def _cluster_nodes(url: str) -> list[tuple[str, int]] | None:
    """The seed nodes of a `redis+cluster://h:p,h:p` URL (as the server reads it), else None."""
    if not url.startswith("redis+cluster://"):
        return None
    hosts = url.removeprefix("redis+cluster://").split("/", 1)[0].rsplit("@", 1)[-1]
    return [(host, int(port)) for host, port in (node.rsplit(":", 1) for node in hosts.split(","))]


def bench_redis(url: str) -> aioredis.Redis:
    """The bench's own client of the server's Redis: a cluster client for `redis+cluster://`."""
    nodes = _cluster_nodes(url)
    if nodes is None:
        return aioredis.Redis.from_url(url)
    cluster = aioredis.RedisCluster(startup_nodes=[aioredis.cluster.ClusterNode(h, p) for h, p in nodes])
    return cluster  # type: ignore[return-value]  # answers the commands used here


class RedisPublisher:
    """Another service publishing on our Redis channel (PROTOCOL.md: external publishes; on a
    cluster with SPUBLISH, as docs/deployment.md tells external publishers)."""

    def __init__(self, url: str, channel: str) -> None:
        self.redis = bench_redis(url)
        self.command = "SPUBLISH" if _cluster_nodes(url) else "PUBLISH"
        self.channel = channel

    async def send(self, text: str) -> None:
        payload = json.dumps({"event": "broadcast", "data": {"m": text}})
        await self.redis.execute_command(self.command, self.channel, payload)

    async def close(self) -> None:
        await self.redis.aclose()


class RoomPublisher:
    """A client of the room servers sending `{"message": ...}` (it gets its own copy back, ignored)."""

    def __init__(self, ws: ClientConnection) -> None:
        self.ws = ws
        self.reader = asyncio.create_task(self._drain())

    @classmethod
    async def open(cls, base: str, room: str) -> RoomPublisher:
        return cls(
            await connect(
                f"{base}/ws/chat/{room}/",
                compression=None,
                ping_interval=None,
                max_queue=None,
                additional_headers={"Origin": "http://127.0.0.1"},
            )
        )

    async def _drain(self) -> None:
        try:
            async for _ in self.ws:
                pass
        except Exception:  # noqa: BLE001
            pass

    async def send(self, text: str) -> None:
        await self.ws.send(json.dumps({"message": text}))

    async def close(self) -> None:
        self.reader.cancel()
        await self.ws.close()


class ChatPublisher:
    """Participants of our broadcast conversation sending `chat.send` (stored, so recoverable)."""

    def __init__(self, conns: list[ClientConnection], conversation_id: str) -> None:
        self.conns = conns
        self.cycle = itertools.cycle(range(len(conns)))
        self.conversation_id = conversation_id
        self.refs = itertools.count(1)
        # clientMessageId must be new in every run: the server stores a repeat once and
        # publishes nothing for it (a second run once published nothing at all).
        self.run_id = uuid.uuid4().hex[:12]
        self.acks = 0
        self.failed: dict[str, int] = {}
        self.readers = [asyncio.create_task(self._read(c)) for c in conns]

    @classmethod
    async def open(cls, base: str, tokens: list[str], conversation_id: str) -> ChatPublisher:
        conns = [
            await connect(
                f"{base}/ws/",
                additional_headers={"Authorization": f"Bearer {t}"},
                compression=None,
                ping_interval=None,
                max_queue=None,
            )
            for t in tokens
        ]
        return cls(conns, conversation_id)

    async def _read(self, ws: ClientConnection) -> None:
        try:
            async for raw in ws:
                frame = json.loads(raw)
                if frame.get("type") == "reply":
                    if frame.get("ok"):
                        self.acks += 1
                    else:
                        code = str((frame.get("error") or {}).get("code"))
                        self.failed[code] = self.failed.get(code, 0) + 1
        except Exception:  # noqa: BLE001
            pass

    async def send(self, text: str) -> None:
        ref = next(self.refs)
        await self.conns[next(self.cycle)].send(
            json.dumps(
                {
                    "type": "chat.send",
                    "conversationId": self.conversation_id,
                    "message": text,
                    "clientMessageId": f"bench-{self.run_id}-{ref}",
                    "ref": ref,
                }
            )
        )

    async def close(self) -> None:
        for r in self.readers:
            r.cancel()
        await asyncio.gather(*(c.close() for c in self.conns), return_exceptions=True)


async def publish_for(pub: Any, step: int, rate: float, duration: float) -> int:
    """Send `rate` markers/s for `duration` s, on schedule; returns how many were sent."""
    total = max(1, int(rate * duration))
    start = time.perf_counter()
    sent = 0
    while sent < total:
        due = min(total, int((time.perf_counter() - start) * rate) + 1)
        while sent < due:
            await pub.send(marker("F", step, sent, 0, time.time()))
            sent += 1
        wait = start + sent / rate - time.perf_counter()
        await asyncio.sleep(max(0.0, wait))
    return sent


# --- measurement helpers ----------------------------------------------------------------


class Meter:
    """CPU of the servers, of Redis and of the load generators over an interval."""

    def __init__(self, servers: list[Server], stack: Stack, pool: Pool) -> None:
        self.servers, self.stack, self.pool = servers, stack, pool
        self.t0 = time.perf_counter()
        self.c0 = sum(s.cpu() for s in servers)
        self.k0 = sum(s.cpu_system() for s in servers)
        self.r0 = stack.redis_cpu()
        self.m0 = stack.mongo_cpu()
        self.w0 = pool.cpu()

    def read(self) -> dict[str, float]:
        wall = time.perf_counter() - self.t0
        return {
            "wall_s": round(wall, 3),
            "server_cpu_s": round(sum(s.cpu() for s in self.servers) - self.c0, 3),
            # Of which in the kernel (syscalls: every socket and Redis read and write).
            "server_system_cpu_s": round(sum(s.cpu_system() for s in self.servers) - self.k0, 3),
            "redis_cpu_s": round(self.stack.redis_cpu() - self.r0, 3),
            "mongo_cpu_s": round(self.stack.mongo_cpu() - self.m0, 3),
            "loadgen_cpu_s": round(self.pool.cpu() - self.w0, 3),
            "server_rss_mib": round(sum(s.rss() for s in self.servers) / 2**20, 1),
        }


async def drain(pool: Pool, want: int, max_idle: float, want_acks: int = 0) -> float:
    """Wait until `want` receipts (and `want_acks` replies) arrived or nothing new came for
    `max_idle` s; returns the wait."""
    started = time.perf_counter()
    last, last_change = -1, time.perf_counter()
    while True:
        counts = await pool.all("count")
        got = sum(r["received"] for r in counts)
        acks = sum(r["acks"] for r in counts)
        now = time.perf_counter()
        if got >= want and acks >= want_acks:
            return now - started
        got += acks
        if got != last:
            last, last_change = got, now
        elif now - last_change >= max_idle:
            return now - started
        await asyncio.sleep(0.25)


async def collect(pool: Pool) -> dict[str, Any]:
    stats = await pool.all("stats")
    hist = merge_hists([s["hist"] for s in stats])
    return {
        "received": sum(s["received"] for s in stats),
        "dups": sum(s["dups"] for s in stats),
        "other_step": sum(s["other_step"] for s in stats),
        "latency_ms": percentiles(hist),
        "acks": sum(s["acks"] for s in stats),
        "sent": sum(s["sent"] for s in stats),
        "ack_ms": percentiles(merge_hists([s["ack_hist"] for s in stats])),
        "errors": merge_counts([s["errors"] for s in stats]),
        "open": sum(s["open"] for s in stats),
        "closed_unexpectedly": sum(s["closed_unexpectedly"] for s in stats),
        "close_codes": merge_counts([s["close_codes"] for s in stats]),
    }


def subscriber_specs(
    kind: str, seed: dict[str, Any] | None, n: int, *, topic: str, room: str, bases: list[str] | None = None
) -> list[dict[str, Any]]:
    specs = []
    for i in range(n):
        spec: dict[str, Any] = (
            {"token": seed["watchers"][i]["token"], "topic": topic}  # type: ignore[index]
            if kind == "ours"
            else {"room": room}
        )
        if bases:
            spec["base"] = bases[i % len(bases)]
        specs.append(spec)
    return specs


# --- scenario 1: idle capacity ------------------------------------------------------------


async def idle(stack: Stack, pool: Pool, server: Server, seed: dict[str, Any] | None, sizes: Sizes) -> dict[str, Any]:
    kind = server.kind
    await pool.all("setup", kind="ours" if kind == "ours" else "room", base=server.base)
    # Warm the server (imports, first-connection allocations) before the baseline.
    warm = [
        ({"token": seed["watchers"][i]["token"]} if kind == "ours" else {"room": f"warm{i}"})  # type: ignore[index]
        for i in range(20)
    ]
    await pool.open(warm)
    await pool.all("close")
    await asyncio.sleep(1)
    rss0 = server.rss()
    levels = []
    done = 0
    for level in sizes.idle_levels:
        if kind == "ours":
            specs = [{"token": u["token"], "topic": f"notifications:{u['id']}"} for u in seed["users"][done:level]]  # type: ignore[index]
        else:
            specs = [{"room": f"u{i}"} for i in range(done, level)]
        meter = Meter([server], stack, pool)
        opened = await pool.open(specs)
        connect_cpu = meter.read()
        done = level
        await asyncio.sleep(sizes.idle_hold)
        rss = server.rss()
        ping = await pool.all("ping")
        answered = sum(p["answered"] for p in ping)
        still_open = sum(p["open"] for p in ping)
        rtt = percentiles(merge_hists([p["rtt_hist"] for p in ping]))
        row = {
            "level": level,
            "opened": opened["opened"],
            "failed": opened["failed"],
            "failures": opened["failures"],
            "connect_rate": round(len(specs) / opened["elapsed"], 1) if opened["elapsed"] else None,
            "connect_ms": percentiles(opened["connect_hist"]),
            "connect_cpu": connect_cpu,
            "held_open": still_open,
            "answered_ping": answered,
            "ping_rtt_ms": rtt,
            "held": still_open == level,
            "served": answered == level,
            "rss_mib": round(rss / 2**20, 1),
            "kib_per_socket": round((rss - rss0) / 1024 / max(1, still_open), 2),
        }
        say(
            f"  idle {kind} {level}: open {still_open} answered {answered} (ping p99 {rtt['p99']} ms) "
            f"{row['kib_per_socket']} KiB/socket, {row['connect_rate']} connects/s"
        )
        levels.append(row)
        if not row["held"]:
            break
    await pool.all("close")
    return {"rss0_mib": round(rss0 / 2**20, 1), "levels": levels}


# --- scenarios 2 and 4: fan-out -------------------------------------------------------------


async def fanout(
    stack: Stack, pool: Pool, servers: list[Server], seed: dict[str, Any] | None, sizes: Sizes, step_base: int = 100
) -> dict[str, Any]:
    kind = servers[0].kind
    n = sizes.fanout_subscribers
    bases = [s.base for s in servers]
    await pool.all("setup", kind="ours" if kind == "ours" else "room", base=bases[0])
    specs = subscriber_specs(kind, seed, n, topic=BROADCAST_CHANNEL, room="fanout", bases=bases)
    opened = await pool.open(specs)
    if opened["opened"] < n:
        say(f"  fan-out {kind}: only {opened['opened']} of {n} subscribers connected: {opened['failures']}")
    pub: Any = (
        RedisPublisher(stack.redis_url, BROADCAST_CHANNEL)
        if kind == "ours"
        else await RoomPublisher.open(bases[0], "fanout")
    )
    subscribers = opened["opened"]
    steps = []
    plan = [(r, sizes.fanout_first_seconds) for r in sizes.fanout_first] + [
        (r, sizes.fanout_step_seconds) for r in sizes.fanout_steps
    ]
    try:
        for i, (rate, seconds) in enumerate(plan):
            step = step_base + i
            total = max(1, int(rate * seconds))
            await pool.all("begin", step=step, expected=total)
            meter = Meter(servers, stack, pool)
            sent = await publish_for(pub, step, rate, seconds)
            publish_wall = meter.read()["wall_s"]
            waited = await drain(pool, sent * subscribers, sizes.drain_max)
            usage = meter.read()
            got = await collect(pool)
            expected = sent * subscribers
            lost = expected - got["received"]
            row = {
                "rate": rate,
                "seconds": seconds,
                "published": sent,
                "subscribers": subscribers,
                "expected": expected,
                "delivered": got["received"],
                "lost": lost,
                "duplicated": got["dups"],
                "latency_ms": got["latency_ms"],
                "drain_s": round(waited, 2),
                "deliveries_per_s": round(got["received"] / max(publish_wall, 1e-9), 1),
                "usage": usage,
                "server_us_per_delivery": round(usage["server_cpu_s"] * 1e6 / got["received"], 2)
                if got["received"]
                else None,
                "open": got["open"],
                "closed_unexpectedly": got["closed_unexpectedly"],
                "close_codes": got["close_codes"],
                "errors": got["errors"],
            }
            p99 = got["latency_ms"]["p99"]
            row["held"] = bool(lost == 0 and got["dups"] == 0 and p99 is not None and p99 <= P99_LIMIT_MS)
            steps.append(row)
            say(
                f"  fan-out {kind}x{len(servers)} {rate}/s: {row['deliveries_per_s']} deliveries/s "
                f"p50 {got['latency_ms']['p50']} p99 {p99} max {got['latency_ms']['max']} ms lost {lost} "
                f"dup {got['dups']} cpu {row['server_us_per_delivery']} us/delivery"
            )
            # The 1 and 10 events/s steps are always measured (the reference points);
            # the raised steps stop at the first one that does not hold.
            if not row["held"] and i >= len(sizes.fanout_first) - 1:
                break
    finally:
        await pub.close()
        await pool.all("close")
    held = [s for s in steps if s["held"]]
    return {
        "subscribers": subscribers,
        "servers": len(servers),
        "steps": steps,
        "best_deliveries_per_s": max((s["deliveries_per_s"] for s in held), default=0),
    }


# --- scenario 3: chat rooms ---------------------------------------------------------------


async def chat(stack: Stack, pool: Pool, server: Server, seed: dict[str, Any] | None, sizes: Sizes) -> dict[str, Any]:
    kind = server.kind
    await pool.all("setup", kind="ours" if kind == "ours" else "room", base=server.base)
    specs = []
    for n in range(sizes.chat_pairs):
        for side, gidx in (("a", 2 * n), ("b", 2 * n + 1)):
            if kind == "ours":
                pair = seed["pairs"][n]  # type: ignore[index]
                specs.append(
                    {
                        "token": pair[side]["token"],
                        "topic": f"chat:messages:{pair['conversationId']}",
                        "conversationId": pair["conversationId"],
                        "gidx": gidx,
                        "sender": True,
                    }
                )
            else:
                specs.append({"room": f"pair{n}", "gidx": gidx, "sender": True})
    # Keep both sockets of a pair in one worker: not required for counting, but fair to all kinds.
    opened = await pool.open(specs)
    steps = []
    # BENCH_CHAT_RATES=200,200,400: these steps instead, each run even when the one before did
    # not hold (CPU per message on a busy machine, where no step holds p99 <= 100 ms).
    fixed = [int(r) for r in os.environ.get("BENCH_CHAT_RATES", "").split(",") if r.strip()]
    try:
        for i, rate in enumerate(fixed or sizes.chat_rates):
            step = 300 + i
            await pool.all("begin", step=step, expected=0)
            # BENCH_CPROFILE / BENCH_PY_SPY: one profile per step, from the first send to the last delivery.
            spy = start_py_spy(server, f"chat-{server.label or kind}-{i + 1}-{rate}")
            profiling = kind == "ours" and bool(os.environ.get("BENCH_CPROFILE"))
            if profiling:
                server.proc.send_signal(signal.SIGUSR1)
            meter = Meter([server], stack, pool)
            sent_parts = await pool.all("chat", step=step, rate=rate / pool.size, duration=sizes.chat_step_seconds)
            publish_wall = meter.read()["wall_s"]
            sent = sum(p["sent"] for p in sent_parts)
            waited = await drain(pool, sent, sizes.drain_max, want_acks=sent if kind == "ours" else 0)
            usage = meter.read()
            if profiling:
                server.proc.send_signal(signal.SIGUSR2)
            stop_py_spy(spy)
            got = await collect(pool)
            # Ours confirms storage with a reply; the peers confirm nothing, so "sent" is what counts there.
            expected = sent
            lost = expected - got["received"]
            row = {
                "rate": rate,
                "sent": sent,
                "acked": got["acks"] if kind == "ours" else None,
                "delivered": got["received"],
                "lost": lost,
                "duplicated": got["dups"],
                "errors": got["errors"],
                "latency_ms": got["latency_ms"],
                "ack_ms": got["ack_ms"] if kind == "ours" else None,
                "drain_s": round(waited, 2),
                "messages_per_s": round(got["received"] / max(publish_wall, 1e-9), 1),
                "usage": usage,
                "server_us_per_message": round(usage["server_cpu_s"] * 1e6 / got["received"], 1)
                if got["received"]
                else None,
                # The MongoDB stand-in's share (ours only: the peers store nothing).
                "mongo_us_per_message": round(usage["mongo_cpu_s"] * 1e6 / got["received"], 1)
                if got["received"] and kind == "ours"
                else None,
                "open": got["open"],
                "closed_unexpectedly": got["closed_unexpectedly"],
                "close_codes": got["close_codes"],
            }
            p99 = got["latency_ms"]["p99"]
            bad = sum(got["errors"].values())
            row["held"] = bool(
                lost == 0
                and got["dups"] == 0
                and bad == 0
                and p99 is not None
                and p99 <= P99_LIMIT_MS
                and (kind != "ours" or got["acks"] == sent)
            )
            steps.append(row)
            say(
                f"  chat {kind} {rate} msg/s: delivered {got['received']}/{sent} p50 {got['latency_ms']['p50']} "
                f"p99 {p99} ms errors {got['errors']} ack p99 {got['ack_ms']['p99']}"
            )
            if not row["held"] and not fixed:
                break
    finally:
        await pool.all("close")
    held = [s for s in steps if s["held"]]
    return {
        "pairs": sizes.chat_pairs,
        "opened": opened["opened"],
        "steps": steps,
        "best_rate": max((s["rate"] for s in held), default=0),
    }


# --- scenario 5: reconnect storm ---------------------------------------------------------


async def storm(stack: Stack, pool: Pool, server: Server, seed: dict[str, Any] | None, sizes: Sizes) -> dict[str, Any]:
    kind = server.kind
    n = sizes.fanout_subscribers
    await pool.all("setup", kind="ours" if kind == "ours" else "room", base=server.base)
    if kind == "ours":
        conv = seed["broadcast"]["conversationId"]  # type: ignore[index]
        specs = subscriber_specs(kind, seed, n, topic=f"chat:messages:{conv}", room="")
        pub: Any = await ChatPublisher.open(server.base, [p["token"] for p in seed["broadcast"]["publishers"]], conv)  # type: ignore[index]
    else:
        specs = subscriber_specs(kind, seed, n, topic="", room="storm")
        pub = await RoomPublisher.open(server.base, "storm")
    opened = await pool.open(specs)
    subscribers = opened["opened"]
    step = 500
    total = int(sizes.storm_rate * sizes.storm_seconds)
    await pool.all("begin", step=step, expected=total)
    meter = Meter([server], stack, pool)
    try:
        publishing = asyncio.create_task(publish_for(pub, step, sizes.storm_rate, sizes.storm_seconds))
        await asyncio.sleep(sizes.storm_seconds / 4)
        storm_results = await pool.all("storm", use_since=kind == "ours")
        sent = await publishing
        if kind == "ours":
            deadline = time.monotonic() + 10
            while pub.acks + sum(pub.failed.values()) < sent and time.monotonic() < deadline:
                await asyncio.sleep(0.1)
            published = pub.acks
        else:
            published = sent
        waited = await drain(pool, published * subscribers, sizes.drain_max)
        usage = meter.read()
        got = await collect(pool)
    finally:
        await pub.close()
        await pool.all("close")
    stats = await pool.all("count")  # noqa: F841 - keeps the workers in step
    expected = published * subscribers
    recovered_after = max(r["recovered_after"] for r in storm_results)
    row = {
        "subscribers": subscribers,
        "published": published,
        "publish_failed": getattr(pub, "failed", {}),
        "expected": expected,
        "delivered": got["received"],
        "lost": expected - got["received"],
        "duplicated": got["dups"],
        "recovered_after_s": round(recovered_after, 2),
        "reconnect_failures": merge_counts([r["failures"] for r in storm_results]),
        "open_after": sum(r["open"] for r in storm_results),
        "not_recovered": got["errors"].get("not_recovered", 0),
        "errors": got["errors"],
        "latency_ms": got["latency_ms"],
        "drain_s": round(waited, 2),
        "usage": usage,
        "uses_since": kind == "ours",
    }
    say(
        f"  storm {kind}: {subscribers} reconnected in {row['recovered_after_s']} s, lost {row['lost']} "
        f"of {expected}, dup {row['duplicated']}, not recovered {row['not_recovered']}"
    )
    return row


# --- scenario 6: connects ----------------------------------------------------------------

CONNECT_PHASES = ("notifications", "realistic_cold", "realistic_warm")


def connect_specs(kind: str, seed: dict[str, Any] | None, phase: str, n: int) -> list[dict[str, Any]]:
    """The clients of one connect phase.

    Ours: `notifications` = tenants subscribing to their `notifications:{userId}` only;
    `realistic` = half tenants who subscribe to their notifications and their 3
    conversations, half staff (admins, not participants) subscribing to their
    notifications and to 3 of those conversations, interleaved. The peers join one room per
    socket (the tutorial consumer joins the room of its URL and no other): `u<i>` rooms, and
    for `realistic` the rooms of the conversations, shared as ours are.
    """
    if kind != "ours":
        if phase == "notifications":
            return [{"room": f"u{i}"} for i in range(n)]
        return [{"room": f"c{(i // 2) * 3}"} for i in range(n)]
    assert seed is not None
    if phase == "notifications":
        return [{"token": u["token"], "topics": [f"notifications:{u['id']}"]} for u in seed["users"][:n]]
    specs = []
    for tenant, staff in zip(seed["groups"], seed["watchers"], strict=False):
        chats = [f"chat:messages:{c}" for c in tenant["conversations"]]
        specs.append({"token": tenant["token"], "topics": [f"notifications:{tenant['id']}", *chats]})
        specs.append({"token": staff["token"], "topics": [f"notifications:{staff['id']}", *chats]})
    return specs[:n]


async def forget_access_decisions(url: str) -> int:
    """Delete every cached topic decision (`user:access:*`): the next subscribes decide afresh.
    On a cluster, on every master, one DEL per key (a node refuses a DEL of keys of two slots)."""
    nodes = _cluster_nodes(url)
    if nodes is not None:
        cluster = bench_redis(url)
        try:
            await cluster.initialize()
            masters = list(cluster.get_primaries())  # type: ignore[attr-defined]
        finally:
            await cluster.aclose()
        counts = [await forget_access_decisions(f"redis://{node.host}:{node.port}/0") for node in masters]
        return sum(counts)
    client = aioredis.Redis.from_url(url)
    deleted = 0
    try:
        batch = []
        async for key in client.scan_iter(match="user:access:*", count=1000):
            batch.append(key)
            if len(batch) >= 1000:
                deleted += await _delete_each(client, batch)
                batch = []
        if batch:
            deleted += await _delete_each(client, batch)
    finally:
        await client.aclose()
    return deleted


async def _delete_each(client: aioredis.Redis, batch: list[Any]) -> int:
    async with client.pipeline(transaction=False) as pipe:
        for key in batch:
            pipe.delete(key)
        return sum(await pipe.execute())


def start_py_spy(server: Server, name: str) -> subprocess.Popen[bytes] | None:
    """With BENCH_PY_SPY=<folder>: sample the server with py-spy (raw stacks) until `stop_py_spy`.

    Summarize with `python -m loadtests.bench.profile --stacks <file>`. Sampling costs the
    server some CPU: compare such runs only with each other. BENCH_PY_SPY_GIL=1 samples only
    the thread holding the GIL: where the interpreter's CPU goes across threads, without the
    samples of a thread waiting for PostgreSQL or for the GIL itself.
    """
    folder = os.environ.get("BENCH_PY_SPY")
    if not folder:
        return None
    Path(folder).mkdir(parents=True, exist_ok=True)
    spy = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
    out = Path(folder) / f"{name}.txt"
    command = [spy, "record", "--pid", str(server.proc.pid), "--rate", "250", "--format", "raw"]
    if os.environ.get("BENCH_PY_SPY_GIL"):
        command.append("--gil")
    return subprocess.Popen([*command, "--nonblocking", "--output", str(out)], stdout=subprocess.DEVNULL)


def stop_py_spy(spy: subprocess.Popen[bytes] | None) -> None:
    if spy is not None:
        spy.send_signal(signal.SIGINT)  # py-spy writes its output on SIGINT
        try:
            spy.wait(30)
        except subprocess.TimeoutExpired:
            spy.kill()


async def settle(server: Server, timeout: float = 30.0) -> None:
    """Wait until the server is idle (under 5% of a core over half a second): the closes of
    the previous phase must not be billed to the next one's connects."""
    deadline = time.perf_counter() + timeout
    while time.perf_counter() < deadline:
        before = server.cpu()
        await asyncio.sleep(0.5)
        if server.cpu() - before < 0.025:
            return


async def connects(
    stack: Stack, pool: Pool, server: Server, seed: dict[str, Any] | None, sizes: Sizes
) -> dict[str, Any]:
    """Connect bursts: how many clients per second one process authenticates and subscribes,
    and the server CPU each costs (robust when the machine is shared)."""
    kind = server.kind
    label = server.label or kind
    await pool.all("setup", kind="ours" if kind == "ours" else "room", base=server.base)
    warm = [
        ({"token": seed["users"][-1 - i]["token"]} if kind == "ours" else {"room": f"warm{i}"})  # type: ignore[index]
        for i in range(20)
    ]
    await pool.open(warm)
    await pool.all("close")
    await settle(server)
    n = sizes.connect_clients
    if kind == "ours":
        n = min(n, len(seed["users"]), 2 * min(len(seed["groups"]), len(seed["watchers"])))  # type: ignore[index]
    phases = []
    for phase in CONNECT_PHASES:
        if phase == "realistic_cold" and kind == "ours":
            await forget_access_decisions(stack.redis_url)
        specs = connect_specs(kind, seed, phase, n)
        spy = start_py_spy(server, f"connects-{kind}-{phase}")
        profiling = kind == "ours" and bool(os.environ.get("BENCH_CPROFILE"))
        if profiling:
            server.proc.send_signal(signal.SIGUSR1)  # loadtests/bench/cpuprofile.py: a fresh profile
        meter = Meter([server], stack, pool)
        opened = await pool.open(specs)
        cpu = meter.read()
        if profiling:
            server.proc.send_signal(signal.SIGUSR2)  # written as <n>.prof, n = the phase's number
        stop_py_spy(spy)
        row = {
            "phase": phase,
            "clients": len(specs),
            "subscribes": sum(len(s.get("topics") or ()) for s in specs),
            "opened": opened["opened"],
            "failed": opened["failed"],
            "failures": opened["failures"],
            "connect_rate": round(len(specs) / opened["elapsed"], 1) if opened["elapsed"] else None,
            "connect_ms": percentiles(opened["connect_hist"]),
            "cpu": cpu,
            "server_us_per_connect": round(cpu["server_cpu_s"] / max(1, opened["opened"]) * 1e6),
            "redis_us_per_connect": round(cpu["redis_cpu_s"] / max(1, opened["opened"]) * 1e6),
            # The server's CPU per CPU second of the load generators in the same phase. Their
            # work is the same whichever server they drive, and on this machine the speed of a
            # CPU second changes from minute to minute (`speed_ms`): this ratio moves with the
            # server's own cost, not with the machine's (docs/benchmarks.md, sixth round).
            "server_per_loadgen_cpu": round(cpu["server_cpu_s"] / cpu["loadgen_cpu_s"], 2)
            if cpu["loadgen_cpu_s"]
            else None,
        }
        say(
            f"  connects {label} {phase}: {row['opened']}/{row['clients']} at {row['connect_rate']}/s, "
            f"server {row['server_us_per_connect']} us CPU per connect ({row['server_per_loadgen_cpu']} of the "
            f"load generators' CPU, {cpu['server_system_cpu_s'] / max(cpu['server_cpu_s'], 1e-9):.0%} in the kernel), "
            f"p99 {row['connect_ms']['p99']} ms"
        )
        phases.append(row)
        await pool.all("close")
        await settle(server)
    return {"phases": phases}
