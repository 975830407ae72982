"""The hub: encode once, write each socket directly, isolate slow readers, close them with 4008."""

import asyncio
import json
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

from realtime import metrics
from realtime.closecodes import SLOW_CONSUMER
from realtime.hub import MAX_HELD, AsgiMessage, Connection, Hub

JSON = "pms.v1.json"
PACKED = "pms.v1.msgpack"


class CountingEncoder:
    """A tiny stand-in for `realtime.codecs.encode_once`: text for JSON, bytes for the binary codec."""

    def __init__(self) -> None:
        self.calls = 0
        self.names: list[frozenset[str]] = []  # the codecs asked for, per call

    def __call__(self, frame: dict[str, Any], names: frozenset[str]) -> dict[str, AsgiMessage]:
        self.calls += 1
        self.names.append(names)
        text = json.dumps(frame, separators=(",", ":"))
        every: dict[str, AsgiMessage] = {
            JSON: {"type": "websocket.send", "text": text},
            PACKED: {"type": "websocket.send", "bytes": text.encode()},
        }
        return {name: message for name, message in every.items() if name in names}


class FakeSocket:
    """An ASGI `send` recording what it wrote; optionally stalls on a gate (a client that stopped reading)."""

    def __init__(self, name: str, codec: str = JSON, *, gate: asyncio.Event | None = None, **limits: Any) -> None:
        self.sent: list[AsgiMessage] = []
        self.closes: list[int] = []
        self.gate = gate
        self.conn = Connection(name, codec, self.send, self.close, **limits)

    async def send(self, message: AsgiMessage) -> None:
        if self.gate is not None:
            await self.gate.wait()
        self.sent.append(message)

    async def close(self, code: int) -> None:
        self.closes.append(code)

    def seqs(self) -> list[int]:
        return [json.loads(m.get("text") or m["bytes"])["seq"] for m in self.sent]


@pytest.fixture
def encoder() -> CountingEncoder:
    return CountingEncoder()


@pytest.fixture
async def hub(encoder: CountingEncoder) -> AsyncIterator[Hub]:
    hub = Hub(encoder)
    yield hub
    writers = {c._writer for c in hub.connections() if c._writer is not None}
    for conn in hub.connections():
        hub.drop(conn)  # cancels writers still stalled at the end of a test
    if writers:
        await asyncio.wait_for(asyncio.wait(writers), 2)


async def wait_until(predicate: Callable[[], bool]) -> None:
    async def poll() -> None:
        while not predicate():
            await asyncio.sleep(0.005)

    await asyncio.wait_for(poll(), 2)


def frame(seq: int, topic: str = "chat:messages:1") -> dict[str, Any]:
    return {"type": "event", "topic": topic, "event": "chat.message", "seq": seq}


async def test_broadcast_writes_every_subscriber_at_once_without_tasks(hub: Hub) -> None:
    sockets = [FakeSocket(f"s{i}", JSON if i % 2 else PACKED) for i in range(50)]
    for s in sockets:
        hub.subscribe("chat:messages:1", s.conn)
    tasks_before = asyncio.all_tasks()

    for seq in range(3):
        assert hub.broadcast("chat:messages:1", frame(seq)) == 50

    # Written synchronously, before any await: the fast path is the whole cost.
    assert asyncio.all_tasks() == tasks_before
    for s in sockets:
        assert s.seqs() == [0, 1, 2]
        assert not s.conn.writing
        key = "text" if s.conn.codec == JSON else "bytes"
        assert all(key in m for m in s.sent)


async def test_encoder_runs_once_per_broadcast_whatever_the_subscriber_count(
    hub: Hub, encoder: CountingEncoder
) -> None:
    assert hub.broadcast("chat:messages:none", frame(0)) == 0
    assert encoder.calls == 0  # nobody local: nothing encoded

    for i in range(200):
        hub.subscribe("chat:messages:1", FakeSocket(f"s{i}").conn)
    hub.broadcast("chat:messages:1", frame(1))
    hub.broadcast("chat:messages:1", frame(2))
    assert encoder.calls == 2


async def test_broadcast_accepts_an_encoder_per_call(hub: Hub, encoder: CountingEncoder) -> None:
    s = FakeSocket("s")
    hub.subscribe("t", s.conn)
    other = CountingEncoder()
    hub.broadcast("t", frame(7), other)
    assert (other.calls, encoder.calls) == (1, 0)
    assert s.seqs() == [7]


async def test_slow_reader_does_not_delay_others_and_drains_in_order(hub: Hub) -> None:
    gate = asyncio.Event()
    slow = FakeSocket("slow", gate=gate)
    fast = [FakeSocket(f"fast{i}") for i in range(5)]
    for s in [slow, *fast]:
        hub.subscribe("t", s.conn)

    for seq in range(20):
        hub.broadcast("t", frame(seq))
        await asyncio.sleep(0)  # let the loop run between events, as live traffic does

    for s in fast:
        assert s.seqs() == list(range(20))
    assert slow.sent == []
    assert slow.conn.writing
    assert slow.conn.backlog[0] == 19  # one in flight, the rest queued

    gate.set()
    await asyncio.wait_for(slow.conn.drain(), 2)
    assert slow.seqs() == list(range(20))
    assert not slow.conn.writing
    assert slow.closes == []

    tasks_before = asyncio.all_tasks()
    hub.broadcast("t", frame(20))  # back on the fast path
    assert slow.seqs()[-1] == 20
    assert asyncio.all_tasks() == tasks_before


async def test_replies_keep_their_order_with_queued_events(hub: Hub) -> None:
    gate = asyncio.Event()
    s = FakeSocket("s", gate=gate)
    hub.subscribe("t", s.conn)
    hub.broadcast("t", frame(0))
    s.conn.send_direct({"type": "websocket.send", "text": json.dumps({"seq": 1})})
    hub.broadcast("t", frame(2))
    gate.set()
    await asyncio.wait_for(s.conn.drain(), 2)
    assert s.seqs() == [0, 1, 2]


@pytest.mark.parametrize("limits", [{"max_backlog_events": 3}, {"max_backlog_bytes": 300}])
async def test_backlog_overflow_closes_4008_once_and_spares_the_others(hub: Hub, limits: dict[str, Any]) -> None:
    slow_closed, dropped = metrics.value("hub.slow_closed"), metrics.value("hub.backlog_dropped")
    gate = asyncio.Event()
    slow = FakeSocket("slow", gate=gate, **limits)
    fast = FakeSocket("fast")
    hub.subscribe("t", slow.conn)
    hub.subscribe("t", fast.conn)

    for seq in range(10):  # ~70-byte frames: both limits overflow by the fifth event
        hub.broadcast("t", frame(seq))
    await wait_until(lambda: bool(slow.closes))
    for seq in range(10, 15):
        hub.broadcast("t", frame(seq))
    await asyncio.sleep(0.05)

    assert slow.closes == [SLOW_CONSUMER]
    assert slow.conn.closing
    assert slow.conn.backlog == (0, 0)
    assert fast.seqs() == list(range(15))
    assert metrics.value("hub.slow_closed") == slow_closed + 1
    assert metrics.value("hub.backlog_dropped") > dropped

    gate.set()  # the one send in flight completes; nothing queued after the close is written
    await asyncio.wait_for(slow.conn.drain(), 2)
    assert slow.seqs() == [0]


async def test_a_send_that_raises_marks_the_connection_dead_without_breaking_broadcast(hub: Hub) -> None:
    calls = 0

    async def broken_send(message: AsgiMessage) -> None:
        nonlocal calls
        calls += 1
        raise OSError("socket gone")

    async def close(code: int) -> None:
        raise AssertionError("a dead socket is not closed by the hub")

    broken = Connection("broken", JSON, broken_send, close)
    good = [FakeSocket(f"g{i}") for i in range(3)]
    hub.subscribe("t", good[0].conn)
    hub.subscribe("t", broken)
    for s in good[1:]:
        hub.subscribe("t", s.conn)

    hub.broadcast("t", frame(0))
    hub.broadcast("t", frame(1))

    assert broken.dead
    assert calls == 1  # never written again
    for s in good:
        assert s.seqs() == [0, 1]


async def test_a_stalled_send_that_fails_later_drops_its_backlog(hub: Hub) -> None:
    gate = asyncio.Event()

    async def send(message: AsgiMessage) -> None:
        await gate.wait()
        raise ConnectionResetError("peer went away")

    async def close(code: int) -> None:
        raise AssertionError("not a slow reader: its socket is gone")

    conn = Connection("c", JSON, send, close)
    hub.subscribe("t", conn)
    for seq in range(5):
        hub.broadcast("t", frame(seq))
    assert conn.writing and conn.backlog[0] == 4

    gate.set()
    await asyncio.wait_for(conn.drain(), 2)
    assert conn.dead
    assert conn.backlog == (0, 0)
    assert not conn.writing


async def test_drop_cancels_a_stalled_writer(hub: Hub) -> None:
    gate = asyncio.Event()
    s = FakeSocket("s", gate=gate)
    hub.subscribe("t", s.conn)
    hub.broadcast("t", frame(0))
    hub.broadcast("t", frame(1))
    writer = s.conn._writer
    assert writer is not None

    assert hub.drop(s.conn) == ["t"]
    await asyncio.wait_for(asyncio.wait({writer}), 2)
    assert writer.cancelled()
    assert s.conn.dead and not s.conn.writing
    hub.broadcast("t", frame(2))
    assert s.sent == []


async def test_subscribe_unsubscribe_and_drop_report_first_and_last_local_subscriber(hub: Hub) -> None:
    a, b = FakeSocket("a").conn, FakeSocket("b").conn

    assert hub.subscribe("t1", a) is True
    assert hub.subscribe("t1", a) is False  # idempotent
    assert hub.subscribe("t1", b) is False
    assert hub.subscribe("t2", a) is True
    assert set(hub.topics()) == {"t1", "t2"}
    assert set(hub.subscribers("t1")) == {a, b}
    assert hub.topics_of(a) == {"t1", "t2"}

    assert hub.unsubscribe("t1", a) is False
    assert hub.unsubscribe("t1", a) is False  # not subscribed any more
    assert hub.unsubscribe("nope", a) is False
    assert hub.unsubscribe("t1", b) is True
    assert hub.subscribers("t1") == ()
    assert hub.topics() == ["t2"]

    hub.subscribe("t3", a)
    hub.subscribe("t3", b)
    assert sorted(hub.drop(a)) == ["t2"]
    assert hub.topics() == ["t3"]
    assert hub.topics_of(a) == frozenset()
    assert hub.drop(a) == []
    assert hub.drop(b) == ["t3"]
    assert hub.topics() == []


# --- codecs encoded, batched writes, a reply held with its own event ---------------------------


async def test_only_the_codecs_the_topics_subscribers_read_are_encoded(hub: Hub, encoder: CountingEncoder) -> None:
    browser, app = FakeSocket("browser", JSON), FakeSocket("app", PACKED)
    hub.subscribe("t", browser.conn)
    hub.broadcast("t", frame(0))
    hub.subscribe("t", app.conn)
    hub.broadcast("t", frame(1))
    hub.unsubscribe("t", app.conn)
    hub.broadcast("t", frame(2))
    assert encoder.names == [frozenset({JSON}), frozenset({JSON, PACKED}), frozenset({JSON})]
    assert browser.seqs() == [0, 1, 2] and app.seqs() == [1]


class BatchSocket(FakeSocket):
    """A socket whose server also writes synchronously, several messages per write (`write_frames`)."""

    def __init__(self, name: str, *, can_write: bool = True, gate: asyncio.Event | None = None) -> None:
        self.writes: list[list[AsgiMessage]] = []
        self.refused: list[int] = []  # the size of every batch it could not write now
        self.can_write = can_write
        super().__init__(name, gate=gate)
        self.conn = Connection(name, JSON, self.send, self.close, write_batch=self.write_batch)

    def write_batch(self, messages: Any) -> bool:
        if not self.can_write:
            self.refused.append(len(messages))
            return False
        self.writes.append(list(messages))
        self.sent.extend(messages)
        return True


def reply(seq: int) -> AsgiMessage:
    return {"type": "websocket.send", "text": json.dumps({"seq": seq, "reply": True})}


def own(seq: int) -> Callable[[dict[str, Any]], bool]:
    return lambda f: f.get("seq") == seq


async def test_writes_go_through_the_synchronous_writer_one_message_each(hub: Hub) -> None:
    s = BatchSocket("s")
    hub.subscribe("t", s.conn)
    hub.broadcast("t", frame(0))
    s.conn.send_direct(reply(1))
    assert [len(w) for w in s.writes] == [1, 1] and s.seqs() == [0, 1]


async def test_the_awaited_event_and_all_after_it_wait_for_the_release_and_go_in_one_write(hub: Hub) -> None:
    s = BatchSocket("s")
    hub.subscribe("t", s.conn)
    s.conn.hold_for(own(1))
    hub.broadcast("t", frame(0))  # not the awaited one: written at once
    hub.broadcast("t", frame(1))  # the command's own event: held
    hub.broadcast("t", frame(2))  # after it: held too, to keep the order
    assert s.seqs() == [0]
    s.conn.send_direct(reply(3))
    assert s.seqs() == [0]
    before = metrics.value("hub.batched_writes"), metrics.value("hub.batched_frames")
    s.conn.release()
    assert s.seqs() == [0, 1, 2, 3]
    assert [len(w) for w in s.writes] == [1, 3]
    assert (metrics.value("hub.batched_writes"), metrics.value("hub.batched_frames")) == (before[0] + 1, before[1] + 3)
    hub.broadcast("t", frame(1))  # released: even a match is written at once now
    assert s.seqs() == [0, 1, 2, 3, 1]


async def test_a_reply_that_comes_before_its_event_is_written_at_once(hub: Hub) -> None:
    s = BatchSocket("s")
    hub.subscribe("t", s.conn)
    s.conn.hold_for(own(1))
    s.conn.send_direct(reply(0))
    s.conn.release()
    hub.broadcast("t", frame(1))
    assert s.seqs() == [0, 1] and [len(w) for w in s.writes] == [1, 1]


async def test_held_messages_fall_back_to_the_asgi_send_in_order_when_the_server_cannot_write_now(hub: Hub) -> None:
    s = BatchSocket("s", can_write=False)
    hub.subscribe("t", s.conn)
    s.conn.hold_for(own(0))
    hub.broadcast("t", frame(0))
    hub.broadcast("t", frame(1))
    s.conn.send_direct(reply(2))
    s.conn.release()
    assert s.seqs() == [0, 1, 2] and s.writes == []
    assert s.refused == [3]  # asked once for the three, not again for each


async def test_held_messages_queue_behind_a_send_that_pushes_back_after_a_refused_batch(hub: Hub) -> None:
    gate = asyncio.Event()
    s = BatchSocket("s", can_write=False, gate=gate)
    hub.subscribe("t", s.conn)
    s.conn.hold_for(own(0))
    hub.broadcast("t", frame(0))
    hub.broadcast("t", frame(1))
    s.conn.send_direct(reply(2))
    s.conn.release()
    # The first one stalled in `send`: a writer task has it, the other two wait in its backlog.
    assert s.conn.writing and s.conn.backlog[0] == 2 and s.sent == []
    assert s.refused == [3]
    gate.set()
    await s.conn.drain()
    assert s.seqs() == [0, 1, 2] and s.writes == [] and s.refused == [3]


async def test_without_a_batch_writer_held_messages_are_sent_one_by_one(hub: Hub) -> None:
    s = FakeSocket("s")
    hub.subscribe("t", s.conn)
    s.conn.hold_for(own(0))
    hub.broadcast("t", frame(0))
    s.conn.send_direct(reply(1))
    assert s.sent == []
    s.conn.release()
    assert s.seqs() == [0, 1]


async def test_a_hold_never_grows_past_its_bound(hub: Hub) -> None:
    s = BatchSocket("s")
    hub.subscribe("t", s.conn)
    s.conn.hold_for(own(0))
    for seq in range(MAX_HELD + 5):
        hub.broadcast("t", frame(seq))
    # Written in one batch when the bound was reached, the rest at once, in order.
    assert s.seqs() == list(range(MAX_HELD + 5))
    assert [len(w) for w in s.writes] == [MAX_HELD] + [1] * 5
    s.conn.release()
    assert len(s.sent) == MAX_HELD + 5


async def test_a_socket_dropped_while_holding_writes_nothing_more(hub: Hub) -> None:
    s = BatchSocket("s")
    hub.subscribe("t", s.conn)
    s.conn.hold_for(own(0))
    hub.broadcast("t", frame(0))
    hub.drop(s.conn)
    s.conn.release()
    assert s.sent == []


async def test_a_batch_write_that_raises_fails_the_connection(hub: Hub) -> None:
    closes: list[int] = []

    async def send(message: AsgiMessage) -> None:
        raise AssertionError("not reached: the synchronous writer raised first")

    async def close(code: int) -> None:
        closes.append(code)

    def write_batch(messages: Any) -> bool:
        raise UnicodeEncodeError("utf-8", "\ud800", 0, 1, "surrogates not allowed")

    conn = Connection("c", JSON, send, close, write_batch=write_batch)
    hub.subscribe("t", conn)
    hub.broadcast("t", frame(0))
    assert conn.dead
    await wait_until(lambda: closes == [1011])
