"""A socket fuzzer against a real uvicorn process (issue #15).

Thousands of seeded random frames on several authenticated sockets of both codecs at once:
random bytes and text, lone surrogates in every string field of every command, wrong types,
huge numbers, extreme MessagePack timestamps, bin and ext values, deep nesting, unknown
fields, floods, plus sockets that misbehave before `auth` and text frames that are not UTF-8.
Meanwhile a healthy socket subscribed to the same conversation must receive every message
another socket sends. Asserted: every frame gets exactly the answer the protocol promises (a
`reply`/`pong` on a sound `ref`, else one `error` frame) with a stable error code, the server
never dies, and its log holds no unhandled exception.

    PMS_FUZZ_SEED=7 PMS_FUZZ_FRAMES=20000 PMS_FUZZ_BUDGET_SECONDS=300 scripts/test tests/e2e/test_fuzz.py

Each failure message names the seed and the frame, so a run can be replayed.
"""

import asyncio
import json
import os
import random
import time
import urllib.request
import uuid
from dataclasses import dataclass
from typing import Any

import msgpack
import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from realtime import closecodes, topics
from realtime.errors import HTTP_STATUS
from tests.e2e.conftest import SUBPROTOCOLS, WAIT, ServerFactory, ServerProcess, alogin
from tests.factories import make_conversation, make_user

SEED = int(os.environ.get("PMS_FUZZ_SEED", "1515"))
FRAMES = int(os.environ.get("PMS_FUZZ_FRAMES", "3000"))
SOCKETS = 4  # fuzzing sockets, half of each codec
FLOOD = 500  # frames sent at once, unread, on one socket
HEARTBEATS = 40  # messages the healthy socket must receive while the fuzz runs
BUDGET_SECONDS = float(os.environ.get("PMS_FUZZ_BUDGET_SECONDS", "45"))
CODES = frozenset(HTTP_STATUS)
LONE = ("\ud800", "\udfff", "\udc00", "a\ud83d", "\ud83d\ud83d")
# What the log of a server that handled everything shows none of.
CRASH_MARKS = ("Traceback (most recent call last)", "Exception in ASGI application", "Exception inside application")

Frame = dict[str, Any]


@dataclass
class Room:
    server: ServerProcess
    conversation_id: str
    tenant_email: str
    manager_email: str
    tenant_id: str
    manager_id: str


@pytest.fixture
def room(start_servers: ServerFactory, server_env: dict[str, str]) -> Room:
    # The fuzz wants its frames handled, not refused by the command budget (the budget has its
    # own tests); the flood below still reaches it.
    server_env.update(PMS_WS_COMMANDS_PER_SECOND="2000", PMS_WS_COMMAND_BURST="400")
    tenant = make_user()
    manager = make_user(user_type="property_manager")
    conversation = make_conversation(participants=(tenant, manager))
    (server,) = start_servers(1)
    return Room(server, str(conversation.pk), tenant.email, manager.email, str(tenant.pk), str(manager.pk))


class Gen:
    """Seeded frames: (payload, expected), expected "ref" (a reply or pong on the frame's ref) or "error"."""

    def __init__(self, rng: random.Random, codec: str, room: Room) -> None:
        self.rng = rng
        self.codec = codec
        self.room = room
        self.count = 0
        self.message_ids: list[str] = ["6b07061f0ab2216c8d719891"]

    # --- values -------------------------------------------------------------------------------

    def text(self) -> str:
        r = self.rng
        return r.choice(
            [
                "",
                "x",
                "hello",
                " ",
                "\x00",
                "é€😀",
                "\u202e",
                "x" * r.randint(60, 200),
                str(uuid.uuid4()),
                str(uuid.uuid4()).upper(),
                self.room.conversation_id,
                self.room.tenant_id,
                r.choice(self.message_ids),
                topics.chat_messages(self.room.conversation_id),
                topics.notifications(self.room.tenant_id).upper(),
                "chat:messages:" + self.room.conversation_id.replace("-", ""),
                "system:broadcasts",
                "a.b",
                "0-0-0",
                "z" * 10_001,
            ]
        )

    def number(self) -> Any:
        r = self.rng
        pool: list[Any] = [0, -1, 1, 100, 101, 2**31, 2**63 - 1, -(2**63), 2**64 - 1, 1.5, -0.0, 1e308, r.random()]
        if self.codec == "json":
            pool += [10**30, -(10**40), 1e-320]
        else:
            # Timestamps datetime can hold are read (as datetimes); those beyond are garbage below.
            pool += [float("inf"), float("nan"), msgpack.Timestamp(r.randint(-62_135_596_800, 253_402_300_799), 0)]
        return r.choice(pool)

    def value(self, depth: int = 0) -> Any:
        r = self.rng
        kind = r.randrange(10 if depth < 3 else 7)
        if kind < 3:
            return self.text()
        if kind < 5:
            return self.number()
        if kind == 5:
            return r.choice([None, True, False])
        if kind == 6:
            return b"\x00\xff" if self.codec == "msgpack" else r.choice(LONE[:1]) + "x"
        if kind < 9:
            return [self.value(depth + 1) for _ in range(r.randrange(4))]
        return {self.text()[:20]: self.value(depth + 1) for _ in range(r.randrange(4))}

    def valid(self, kind: str) -> Frame:
        room, r = self.room, self.rng
        fields: dict[str, Frame] = {
            "ping": {},
            "subscribe": {"topic": topics.chat_messages(room.conversation_id)},
            "unsubscribe": {"topic": r.choice([topics.SYSTEM, topics.notifications(room.tenant_id)])},
            "chat.send": {
                "conversationId": room.conversation_id,
                "message": f"fuzz {self.count}",
                "clientMessageId": f"fuzz-{r.randrange(50)}",
            },
            "chat.edit": {"messageId": r.choice(self.message_ids), "message": "edited"},
            "chat.delete": {"messageId": r.choice(self.message_ids)},
            "chat.history": {"conversationId": room.conversation_id, "limit": r.randint(1, 5)},
            "chat.read": {"conversationId": room.conversation_id, "messageId": r.choice(self.message_ids)},
            "chat.typing": {"conversationId": room.conversation_id},
            "notifications.read": r.choice([{"ids": [r.choice(self.message_ids)]}, {"all": True}]),
            "presence.query": {"userIds": [room.manager_id, room.tenant_id]},
            "auth.refresh": {"token": "forged.token"},
            "subscribe_since": {"topic": topics.notifications(room.tenant_id), "since": "0-0-0"},
        }
        chosen = dict(fields[kind])
        return {"type": "subscribe" if kind == "subscribe_since" else kind, **chosen}

    COMMANDS = (
        "ping",
        "subscribe",
        "subscribe_since",
        "unsubscribe",
        "chat.send",
        "chat.edit",
        "chat.delete",
        "chat.history",
        "chat.read",
        "chat.typing",
        "notifications.read",
        "presence.query",
        "auth.refresh",
    )

    # --- frames ---------------------------------------------------------------------------------

    def encode(self, frame: Any) -> str | bytes:
        if self.codec == "json":
            return json.dumps(frame)  # ensure_ascii: lone surrogates travel as \ud800 escapes
        return bytes(msgpack.packb(frame, use_bin_type=True))

    def sweep(self) -> list[tuple[str | bytes, str, str]]:
        """A lone surrogate in every string field of every command, once each (JSON only)."""
        frames = []
        for kind in self.COMMANDS:
            for name in [*self.valid(kind), "ref", "extra"]:
                self.count += 1
                frame = {**self.valid(kind), "ref": f"f{self.count}"}
                value = frame.get(name, "x")
                frame[name] = [*value, "\ud800"] if isinstance(value, list) else f"{value}\ud800"
                expected = "error" if name == "ref" else "ref"  # a ref holding it cannot be echoed
                frames.append((self.encode(frame), expected, f"{kind}.{name} with a lone surrogate (sweep)"))
        return frames

    def next(self) -> tuple[str | bytes, str, str]:
        """(payload, expected, description); never over the 64 KiB frame limit (that has its own tests)."""
        while True:
            payload, expected, what = self._next()
            if len(payload) < 60_000:
                return payload, expected, what

    def _next(self) -> tuple[str | bytes, str, str]:
        self.count += 1
        r = self.rng
        ref = f"f{self.count}"
        roll = r.random()
        kind = r.choice(self.COMMANDS)
        frame = self.valid(kind)
        frame["ref"] = ref
        if roll < 0.15:
            return self.encode(frame), "ref", f"valid {kind}"
        if roll < 0.40:  # one field of the wrong type or value
            name = r.choice([*frame.keys() - {"ref"}, "type", "extra"])
            frame[name] = self.value()
            return self.encode(frame), "ref", f"{kind}.{name} = {frame[name]!r:.80}"
        if roll < 0.55 and self.codec == "json":  # a lone surrogate in one string field (or nested)
            name = r.choice([*frame.keys() - {"ref"}, "type", "extra"])
            value = frame.get(name)
            lone = r.choice(LONE)
            if isinstance(value, list):
                frame[name] = [*value, lone]
            elif isinstance(value, str):
                frame[name] = value[: r.randrange(len(value) + 1)] + lone
            else:
                frame[name] = {"nested": [lone]}
            return self.encode(frame), "ref", f"{kind}.{name} with a lone surrogate"
        if roll < 0.62:  # refs the server cannot echo
            bad_ref = r.choice([[1], {"r": 1}, True, 1.5, "x" * 65, None, 2**64, -(2**63) - 1])
            if self.codec == "json":
                bad_ref = r.choice([bad_ref, "r\ud800", 10**40])
            if self.codec == "msgpack" and isinstance(bad_ref, int) and not isinstance(bad_ref, bool):
                bad_ref = msgpack.Timestamp(r.choice([2**62, -(2**62), 0]), 0)  # beyond what packb takes
            frame["ref"] = bad_ref
            if bad_ref is None:
                frame["ref"] = b"\x01" if self.codec == "msgpack" else {"x": None}
            return self.encode(frame), "error", f"{kind} with ref {bad_ref!r:.40}"
        if roll < 0.72:  # undecodable: random bytes or text, deep nesting, huge numbers, ext types
            return self.garbage(), "error", "garbage"
        if roll < 0.85:  # random maps
            frame = {self.text()[:30]: self.value() for _ in range(r.randrange(6))}
            frame["type"] = r.choice([*self.COMMANDS, self.text(), 7, None])
            frame["ref"] = ref
            return self.encode(frame), "ref", f"random map {frame!r:.80}"
        # a valid command with random extra fields
        for _ in range(r.randrange(1, 4)):
            frame[self.text()[:30] or "k"] = self.value()
        frame["ref"] = ref
        return self.encode(frame), "ref", f"{kind} with extra fields"

    def garbage(self) -> str | bytes:
        r = self.rng
        choice = r.randrange(7)
        if self.codec == "json":
            if choice == 0:
                return "".join(chr(r.randrange(32, 0x2FFF)) for _ in range(r.randrange(1, 200)))
            if choice == 1:
                return bytes(r.randrange(256) for _ in range(r.randrange(1, 200)))  # binary on the text codec
            if choice == 2:
                depth = r.randint(2_000, 30_000)
                return '{"type": "ping", "ref": "d", "x": ' + "[" * depth + "]" * depth + "}"
            if choice == 3:
                return '{"type": "ping", "ref": "n", "x": ' + "9" * r.randint(5_000, 20_000) + "}"
            if choice == 4:
                return r.choice(['{"type": "ping", "ref": NaN}', "[]", "null", '"x"', "{", '{"type": "ping"'])
            if choice == 5:
                return '{"type": "ping", "ref": "d", "\\ud800": 1, "x": 1e99999999}'[: r.randrange(10, 40)]
            return json.dumps([{"type": "ping", "ref": "in a list"}])
        if choice < 2:
            return bytes(r.randrange(256) for _ in range(r.randrange(1, 200)))
        if choice == 2:
            return b"\x81\xa1x" + b"\x91" * r.randint(2_000, 60_000) + b"\xc0"
        if choice == 3:
            extreme = msgpack.Timestamp(r.choice([1, -1]) * r.randint(2**38, 2**62), r.randrange(10**9))
            odd = r.choice([msgpack.ExtType(5, b"abc"), extreme])
            return msgpack.packb({"type": "ping", "ref": "e", "x": odd})
        if choice == 4:
            return b"\x81\xa4type\xa3\xed\xa0\x80"  # an encoded surrogate: invalid UTF-8 in a str
        if choice == 5:
            return "text on the binary codec"
        return msgpack.packb([1, 2, 3])


class Fuzzer:
    """One authenticated socket sending frames one at a time and checking each answer."""

    def __init__(self, ws: ClientConnection, codec: str, gen: Gen) -> None:
        self.ws = ws
        self.codec = codec
        self.gen = gen
        self.failures: list[str] = []

    def decode(self, raw: str | bytes) -> Frame:
        if self.codec == "json":
            assert isinstance(raw, str)
            frame: Frame = json.loads(raw)
        else:
            assert isinstance(raw, bytes)
            frame = msgpack.unpackb(raw, raw=False)
        return frame

    async def answer(self) -> Frame:
        """The next frame that is not an event (events of the conversation arrive in between)."""
        while True:
            frame = self.decode(await asyncio.wait_for(self.ws.recv(), WAIT))
            if frame.get("type") not in ("event", "unsubscribed", "session.expiring"):
                return frame

    def check(self, frame: Frame, expected: str, ref: Any, what: str) -> None:
        problem = None
        if expected == "ref":
            if frame.get("ref") != ref or frame.get("type") not in ("reply", "pong"):
                problem = f"expected the answer on ref {ref!r}"
        elif frame.get("type") != "error" or "ref" in frame:
            problem = "expected an error frame without ref"
        if problem is None and frame.get("type") in ("reply", "error") and frame.get("ok") is not True:
            error = frame.get("error") or {}
            if error.get("code") not in CODES or not isinstance(error.get("message"), str):
                problem = "an unstable error"
        if problem is None and frame.get("type") == "reply" and frame.get("ok") is True:
            data = frame.get("data")
            if isinstance(data, dict) and isinstance(data.get("id"), str) and len(data["id"]) == 24:
                self.gen.message_ids.append(data["id"])  # later edits, deletes and reads aim at it
        if problem is not None:
            self.failures.append(f"seed {SEED}, {self.codec}, {what}: {problem}; got {frame!r:.300}")

    async def run(self, count: int) -> None:
        if self.codec == "json":
            for payload, expected, what in self.gen.sweep():
                await self.ws.send(payload)
                frame = json.loads(payload)
                self.check(await self.answer(), expected, frame["ref"], what)
        for _ in range(count):
            payload, expected, what = self.gen.next()
            ref = f"f{self.gen.count}"
            await self.ws.send(payload)
            self.check(await self.answer(), expected, ref, what)


async def open_ws(server: ServerProcess, codec: str, token: str | None = None) -> ClientConnection:
    headers = {"Authorization": f"Bearer {token}"} if token else None
    return await connect(
        server.ws_url,
        additional_headers=headers,
        subprotocols=[SUBPROTOCOLS[codec]],  # type: ignore[list-item]
        open_timeout=WAIT,
        close_timeout=2,
        max_size=None,
    )


async def close_code_of(ws: ClientConnection) -> int | None:
    try:
        async with asyncio.timeout(WAIT):
            while True:
                await ws.recv()
    except ConnectionClosed as closed:
        return closed.rcvd.code if closed.rcvd is not None else None


async def healthy_traffic(room: Room, token: str, stop: asyncio.Event) -> tuple[set[str], set[str]]:
    """A listener subscribed to the conversation and a sender on two more sockets; (sent, received) ids."""
    listener = await open_ws(room.server, "msgpack", token)
    sender = await open_ws(room.server, "json", token)
    sent: set[str] = set()
    received: set[str] = set()
    try:
        await listener.send(
            msgpack.packb({"type": "subscribe", "ref": 1, "topic": topics.chat_messages(room.conversation_id)})
        )
        reply = msgpack.unpackb(await asyncio.wait_for(listener.recv(decode=False), WAIT), raw=False)
        assert reply.get("ok") is True, reply

        async def listen() -> None:
            while True:
                frame = msgpack.unpackb(await listener.recv(decode=False), raw=False)
                if frame.get("type") == "event" and frame.get("event") == "chat.message":
                    if frame["data"]["senderId"] == room.manager_id:
                        received.add(frame["data"]["id"])

        reader = asyncio.create_task(listen())
        index = 0
        while index < HEARTBEATS or not stop.is_set():  # for as long as the fuzz runs
            index += 1
            ref = f"hb{index}"
            frame = {"type": "chat.send", "ref": ref, "conversationId": room.conversation_id}
            await sender.send(json.dumps({**frame, "message": f"heartbeat {index}", "clientMessageId": ref}))
            while True:
                answer = json.loads(await asyncio.wait_for(sender.recv(), WAIT))
                if answer.get("ref") == ref:
                    break
            assert answer["ok"] is True, answer
            sent.add(answer["data"]["id"])
            await asyncio.sleep(0.05)  # spread over the fuzz run; the check below waits on the outcome
        async with asyncio.timeout(WAIT * 2):
            while not sent <= received:
                await asyncio.sleep(0.02)
        reader.cancel()
        return sent, received
    finally:
        await listener.close()
        await sender.close()


async def before_auth(room: Room, rng: random.Random) -> list[str]:
    """Sockets that send something other than a good `auth` first: each is closed (4401, or 1009/1007)."""
    failures = []
    for index in range(12):
        codec = "json" if index % 2 else "msgpack"
        gen = Gen(rng, codec, room)
        ws = await open_ws(room.server, codec)
        payload, _, what = gen.next()
        if index % 3 == 0:
            payload = gen.encode({"type": "auth", "ref": 1, "token": gen.value()})
            what = "auth with a random token"
        await ws.send(payload)
        code = await close_code_of(ws)
        if code != closecodes.UNAUTHORIZED:
            failures.append(f"seed {SEED}, before auth, {codec}, {what}: closed {code}, expected 4401")
    return failures


async def flood(room: Room, token: str) -> list[str]:
    """FLOOD frames written at once on one socket, read afterwards: every one is answered, in order."""
    ws = await open_ws(room.server, "json", token)
    try:
        for index in range(FLOOD):
            frame: Frame = {"type": "ping", "ref": index}
            if index % 5 == 0:
                frame = {"type": "chat.typing", "ref": index, "conversationId": room.conversation_id}
            elif index % 7 == 0:
                frame = {"type": "presence.query", "ref": index, "userIds": [room.tenant_id] * 200}
            await ws.send(json.dumps(frame))
        refs: list[int] = []
        async with asyncio.timeout(WAIT * 3):
            while len(refs) < FLOOD:
                answer = json.loads(await ws.recv())
                if answer.get("type") in ("reply", "pong"):
                    refs.append(answer["ref"])
                    if answer.get("ok") is False:
                        assert answer["error"]["code"] == "rate_limited", answer
        return [] if refs == list(range(FLOOD)) else [f"flood answers out of order: {refs[:20]}..."]
    finally:
        await ws.close()


async def text_that_is_not_utf8(room: Room, token: str) -> list[str]:
    """A text frame whose payload is not UTF-8 fails the WebSocket itself (RFC 6455: 1007)."""
    ws = await open_ws(room.server, "json", token)
    await ws.send(b'{"type": "ping", "ref": "\xff\xfe"}', text=True)
    code = await close_code_of(ws)
    return [] if code == 1007 else [f"invalid UTF-8 in a text frame closed {code}, expected 1007"]


def server_healthy(server: ServerProcess) -> bool:
    with urllib.request.urlopen(f"{server.http_url}/healthz", timeout=WAIT) as response:  # noqa: S310
        return bool(response.status == 200)


# The fuzz itself is bounded by BUDGET_SECONDS; on a busy box, starting the server and flushing the
# test database around it have taken up to 30 s each (pytest-timeout counts fixtures too).
@pytest.mark.timeout(BUDGET_SECONDS + 120)
async def test_the_socket_fuzzer_never_harms_the_server_or_healthy_sockets(room: Room) -> None:
    started = time.monotonic()
    rng = random.Random(SEED)
    tenant_token = await alogin(room.server, room.tenant_email)
    manager_token = await alogin(room.server, room.manager_email)
    stop = asyncio.Event()
    healthy = asyncio.create_task(healthy_traffic(room, manager_token, stop))

    fuzzers = []
    for index in range(SOCKETS):
        codec = "json" if index % 2 == 0 else "msgpack"
        ws = await open_ws(room.server, codec, tenant_token)
        await ws.send(
            Gen(rng, codec, room).encode(
                {"type": "subscribe", "ref": "s", "topic": topics.chat_messages(room.conversation_id)}
            )
        )
        fuzzers.append(Fuzzer(ws, codec, Gen(random.Random(f"{SEED}-{index}"), codec, room)))
    for fuzzer in fuzzers:
        assert (await fuzzer.answer()).get("ok") is True

    failures: list[str] = []
    async with asyncio.timeout(BUDGET_SECONDS):
        results = await asyncio.gather(
            *(fuzzer.run(FRAMES // SOCKETS) for fuzzer in fuzzers),
            before_auth(room, rng),
            flood(room, tenant_token),
            text_that_is_not_utf8(room, tenant_token),
        )
        stop.set()
        sent, received = await healthy
    for result in results[SOCKETS:]:
        failures += result or []
    for fuzzer in fuzzers:
        failures += fuzzer.failures
        # Still open and answering after everything it sent.
        await fuzzer.ws.send(fuzzer.gen.encode({"type": "ping", "ref": "last"}))
        assert await fuzzer.answer() == {"type": "pong", "ref": "last"}
        await fuzzer.ws.close()

    assert failures == [], "\n".join(failures[:30])
    assert sent and sent <= received, f"the healthy socket missed {len(sent - received)} of {len(sent)} messages"
    assert room.server.process.poll() is None, "the server died"
    assert await asyncio.to_thread(server_healthy, room.server)
    log = room.server.logs()
    crashes = [mark for mark in CRASH_MARKS if mark in log]
    assert crashes == [], f"seed {SEED}: the server logged {crashes}:\n{log[-6000:]}"
    frames = sum(fuzzer.gen.count for fuzzer in fuzzers) + FLOOD
    print(f"fuzz seed {SEED}: {frames} frames in {time.monotonic() - started:.1f} s")
