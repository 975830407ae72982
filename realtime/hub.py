"""Local fan-out within one process: encode a frame once per codec, write it to every local socket.

The hub calls each socket's ASGI `send` directly with one prebuilt message and drives the
coroutine by hand (DESIGN.md, "Known pitfalls"): a send that completes at once costs what a
plain `await` would; a send that would wait is handed to a writer task for that socket alone,
which finishes it and drains a bounded backlog of later messages. A backlog over its bounds
closes the socket with 4008 (the client recovers with `since`), so one slow reader never
delays the others and never grows memory without bound.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Awaitable, Callable, Coroutine, Generator, Iterable, Sequence
from typing import Any

from realtime import closecodes, metrics

logger = logging.getLogger(__name__)

AsgiMessage = dict[str, Any]
AsgiSend = Callable[[AsgiMessage], Coroutine[Any, Any, None]]
CloseCallback = Callable[[int], Awaitable[None]]
# (frame, codec names) -> the frame's message per named codec: only codecs some subscriber reads are encoded.
Encoder = Callable[[dict[str, Any], frozenset[str]], dict[str, AsgiMessage]]
# Writes several messages in one transport write if the server allows it now; False: write them one by one.
BatchWriter = Callable[[Sequence[AsgiMessage]], bool]
# Does an event frame match what a socket's running command is about to reply to (`Connection.hold_for`)?
FrameMatch = Callable[[dict[str, Any]], bool]

DEFAULT_MAX_BACKLOG_EVENTS = 1000
DEFAULT_MAX_BACKLOG_BYTES = 1024 * 1024
# For servers whose send never waits (daphne): a fast reader's buffer passes the bound during
# a burst and drains within one loop turn or two; a slow reader's stays over it.
BUFFERED_GRACE_SECONDS = 1.0
BUFFERED_HARD_FACTOR = 16
# `hold_for` waits a few loop turns at most (the reply is already on its way); a socket that gets
# this many messages meanwhile has them written without waiting for it.
MAX_HELD = 64

# Fire-and-forget tasks (close callbacks, writers) stay referenced until done: the loop keeps weak refs only.
_background: set[asyncio.Task[None]] = set()


def _spawn(coro: Coroutine[Any, Any, None], name: str) -> asyncio.Task[None]:
    task = asyncio.get_running_loop().create_task(coro, name=name)
    _background.add(task)
    task.add_done_callback(_background.discard)
    return task


def _message_size(message: AsgiMessage) -> int:
    """Payload bytes of a `websocket.send` message (exact for bytes and ASCII text)."""
    data = message.get("bytes")
    if data is not None:
        return len(data)
    text = message.get("text") or ""
    return len(text) if text.isascii() else len(text.encode())


class _Resume:
    """Awaitable that finishes a coroutine already advanced by hand, starting from what it yielded.

    Awaiting it inside a task does what `yield from coro` would have done had the coroutine
    been started there: the task waits on the same future, and results, exceptions and
    cancellation are forwarded to the coroutine.
    """

    __slots__ = ("_coro", "_pending")

    def __init__(self, coro: Coroutine[Any, Any, None], pending: Any) -> None:
        self._coro = coro
        self._pending = pending

    def __await__(self) -> Generator[Any, Any, None]:
        coro, pending = self._coro, self._pending
        self._pending = None
        while True:
            try:
                sent = yield pending
            except GeneratorExit:
                coro.close()
                raise
            except BaseException as exc:  # forwarded into the coroutine (CancelledError included)
                try:
                    pending = coro.throw(exc)
                except StopIteration:
                    return
            else:
                try:
                    pending = coro.send(sent)
                except StopIteration:
                    return


class Connection:
    """One socket as the hub sees it; `deliver` and `send_direct` never block and never raise.

    Messages reach the socket in the order they were handed over. Preconditions: `send` is
    an `async def` (the ASGI send) that does not depend on which task runs it (a stalled
    send is finished by this connection's writer task), and `close(code)` closes the socket.
    """

    __slots__ = (
        "id",
        "codec",
        "max_backlog_events",
        "max_backlog_bytes",
        "dead",
        "closing",
        "_send",
        "_close",
        "_backlog",
        "_backlog_bytes",
        "_writer",
        "_buffered",
        "_over_since",
        "_write_batch",
        "_awaited",
        "_held",
        "__weakref__",
    )

    def __init__(
        self,
        conn_id: str,
        codec: str,
        send: AsgiSend,
        close: CloseCallback,
        *,
        max_backlog_events: int = DEFAULT_MAX_BACKLOG_EVENTS,
        max_backlog_bytes: int = DEFAULT_MAX_BACKLOG_BYTES,
        buffered: Callable[[], int] | None = None,
        write_batch: BatchWriter | None = None,
    ) -> None:
        """`buffered`, when given, reports bytes the server holds for this socket but has not
        written yet: for servers whose `send` never waits (daphne buffers in memory), it is
        how a slow reader is noticed; past `max_backlog_bytes` the socket closes with 4008.
        `write_batch`, when given, is the server's synchronous write of one or more messages with
        one transport write (False when it cannot write now): every write tries it before `send`,
        a coroutine the fast path would otherwise have to create and drive (`release` tries it
        once for everything it held)."""
        self.id = conn_id
        self.codec = codec
        self.max_backlog_events = max_backlog_events
        self.max_backlog_bytes = max_backlog_bytes
        self.dead = False  # its send failed or it was discarded: nothing more is written
        self.closing = False  # closed with 4008: nothing more is queued
        self._send = send
        self._close = close
        # Made on the slow path only: an empty deque costs 760 bytes, and most sockets never queue.
        self._backlog: deque[tuple[AsgiMessage, int]] | None = None
        self._backlog_bytes = 0
        self._writer: asyncio.Task[None] | None = None
        self._buffered = buffered
        self._over_since: float | None = None
        self._write_batch = write_batch
        self._awaited: FrameMatch | None = None  # `hold_for`: the event a running command waits to reply after
        self._held: list[AsgiMessage] | None = None  # written by `release`, in order, with what came after

    def __repr__(self) -> str:
        return f"<Connection {self.id} {self.codec} backlog={len(self._backlog or ())}>"

    @property
    def writing(self) -> bool:
        """True while a writer task owns this socket (its transport pushed back)."""
        return self._writer is not None

    @property
    def backlog(self) -> tuple[int, int]:
        """Queued messages and their payload bytes, not counting the one in flight."""
        return len(self._backlog or ()), self._backlog_bytes

    def deliver(self, messages_by_codec: dict[str, AsgiMessage], frame: dict[str, Any] | None = None) -> None:
        """Writes this socket's codec's prebuilt message of `frame`; never blocks, never raises.

        The event `hold_for` waits for is held instead, with everything after it, until `release`.
        """
        message = messages_by_codec.get(self.codec)
        if message is None:
            metrics.incr("hub.codec_missing")
            logger.error("no %r encoding for connection %s; event skipped", self.codec, self.id)
            return
        if self._awaited is not None and frame is not None and self._held is None and self._awaited(frame):
            self._awaited = None
            self._held = [message]
            return
        self.send_direct(message)

    def hold_for(self, match: FrameMatch) -> None:
        """A command is running whose reply follows its own event (`chat.send`): if that event
        (`match`) is delivered before `release`, it and every later message wait for `release`,
        which writes them in one transport write, the reply among them. Saves one write per
        such command (three per chat message: the reply, the sender's own event, the other
        participant's event; each write is a send() syscall, tens of µs on this VM).
        Precondition: `release` is called when the command ends, whatever happens."""
        self._awaited = match

    def release(self) -> None:
        """Ends `hold_for`: writes what it held, in order, in one write where the server allows it."""
        self._awaited = None
        held, self._held = self._held, None
        if not held or self.dead or self.closing:
            return
        if self._write_batch is not None and self._writer is None:
            try:
                if self._write_batch(held):
                    if len(held) > 1:
                        metrics.incr("hub.batched_writes")
                        metrics.incr("hub.batched_frames", len(held))
                    return
            except Exception as exc:
                self._fail(exc)
                return
        # One by one, in order, and never through the batch writer again: it just refused, or a
        # writer task owns the socket (they queue for it), or there is no batch writer.
        for message in held:
            if self.dead or self.closing:
                return
            if self._writer is not None:
                self._enqueue(message)
            else:
                self._send_now(message)

    def send_direct(self, message: AsgiMessage) -> None:
        """Writes one ASGI message (a reply, an event) in order with everything else; never blocks, never raises."""
        if self.dead or self.closing:
            return
        if self._held is not None:
            self._held.append(message)
            if len(self._held) >= MAX_HELD:
                self.release()
            return
        if self._writer is not None:
            self._enqueue(message)
            return
        if self._write_batch is not None:
            # The server's synchronous write (no coroutine to drive); False: it cannot write now.
            try:
                if self._write_batch((message,)):
                    if self._buffered is not None:
                        self._check_buffered()
                    return
            except Exception as exc:
                self._fail(exc)
                return
        self._send_now(message)

    def _send_now(self, message: AsgiMessage) -> None:
        """`message` through the ASGI `send`: written at once, or the rest of it goes to a writer
        task started here if the transport pushes back. Preconditions: not dead, not closing,
        nothing held, no writer task."""
        try:
            coro = self._send(message)
            pending = coro.send(None)
        except StopIteration:
            # The fast path: written at once (into the server's own buffer, on daphne).
            if self._buffered is not None:
                self._check_buffered()
            return
        except Exception as exc:
            self._fail(exc)
            return
        # The transport pushed back: the rest of this send, and everything after it, goes to a writer.
        metrics.incr("hub.writer_started")
        self._writer = _spawn(self._write(coro, pending), f"hub-writer-{self.id}")

    async def drain(self) -> None:
        """Returns once nothing is in flight or queued (at once on the fast path); never raises."""
        while (writer := self._writer) is not None and not writer.done():
            await asyncio.wait({writer})

    def discard(self) -> None:
        """The socket is gone: stop its writer, drop its backlog, write nothing more."""
        self.dead = True
        self._held = self._awaited = None
        self._clear_backlog()
        if self._writer is not None:
            # Cleared here too: a writer cancelled before its first step never runs its `finally`.
            self._writer.cancel()
            self._writer = None

    def _check_buffered(self) -> None:
        """Servers that buffer for us: over the byte bound for longer than a burst takes
        to flush (or far over it at once) means the client is not reading."""
        assert self._buffered is not None
        pending = self._buffered()
        if pending <= self.max_backlog_bytes:
            self._over_since = None
            return
        now = time.monotonic()
        if self._over_since is None:
            self._over_since = now
        if now - self._over_since > BUFFERED_GRACE_SECONDS or pending > BUFFERED_HARD_FACTOR * self.max_backlog_bytes:
            self._overflow()

    def _enqueue(self, message: AsgiMessage) -> None:
        size = _message_size(message)
        if self._backlog is None:
            self._backlog = deque()
        if len(self._backlog) >= self.max_backlog_events or self._backlog_bytes + size > self.max_backlog_bytes:
            self._overflow()
            return
        self._backlog.append((message, size))
        self._backlog_bytes += size

    def _overflow(self) -> None:
        dropped = len(self._backlog or ()) + 1
        self.closing = True
        self._clear_backlog()
        metrics.incr("hub.slow_closed")
        metrics.incr("hub.backlog_dropped", dropped)
        logger.warning(
            "connection %s too slow to read: %d queued messages dropped, closing %d",
            self.id,
            dropped,
            closecodes.SLOW_CONSUMER,
        )
        _spawn(self._run_close(closecodes.SLOW_CONSUMER), f"hub-close-{self.id}")

    async def _run_close(self, code: int) -> None:
        try:
            await self._close(code)
        except Exception:
            metrics.incr("hub.close_failed")
            logger.exception("closing connection %s with %d failed", self.id, code)

    async def _write(self, coro: Coroutine[Any, Any, None], pending: Any) -> None:
        """The writer: finish the stalled send, then drain the backlog in order; exits when it is empty."""
        try:
            await _Resume(coro, pending)
            while self._backlog and not self.dead:
                message, size = self._backlog.popleft()
                self._backlog_bytes -= size
                await self._send(message)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            self._fail(exc)
        finally:
            self._writer = None

    def _fail(self, exc: BaseException) -> None:
        self.dead = True
        self._clear_backlog()
        metrics.incr("hub.send_failed")
        if isinstance(exc, OSError | RuntimeError):
            # The socket is gone or closing: uvicorn raises ClientDisconnected (an OSError) once the
            # transport is lost, RuntimeError for a send after the server library itself closed it
            # (keepalive timeout, a protocol error) but before the app saw the disconnect.
            logger.debug("send to connection %s failed (%r); it is dead", self.id, exc)
            return
        # The socket is open but this frame could not be written (say, text that is not UTF-8:
        # UnicodeEncodeError): never leave it open and mute.
        logger.error("send to connection %s failed; closing it %d", self.id, closecodes.INTERNAL_ERROR, exc_info=exc)
        _spawn(self._run_close(closecodes.INTERNAL_ERROR), f"hub-close-{self.id}")

    def _clear_backlog(self) -> None:
        self._backlog = None
        self._backlog_bytes = 0


class Hub:
    """Local subscriptions of one process; `broadcast` encodes once and never awaits a socket.

    Return values of `subscribe`, `unsubscribe` and `drop` tell the caller when a topic gains
    its first or loses its last local subscriber, so the broker holds exactly one Redis
    subscription per topic per process.
    """

    def __init__(self, encode_once: Encoder) -> None:
        self._encode_once = encode_once
        self._topics: dict[str, set[Connection]] = {}
        # Per topic: its subscribers and the codecs they read, rebuilt after a change.
        self._snapshots: dict[str, tuple[tuple[Connection, ...], frozenset[str]]] = {}
        self._by_conn: dict[Connection, set[str]] = {}
        self._subscription_total = 0  # sum of len(topics_of(conn)) over every connection

    def subscribe(self, topic: str, conn: Connection) -> bool:
        """Adds `conn` to `topic` (idempotent); True if it is the topic's first local subscriber."""
        subs = self._topics.get(topic)
        first = subs is None
        if subs is None:
            subs = self._topics[topic] = set()
        elif conn in subs:
            return False
        subs.add(conn)
        self._snapshots.pop(topic, None)
        self._by_conn.setdefault(conn, set()).add(topic)
        self._subscription_total += 1
        return first

    def unsubscribe(self, topic: str, conn: Connection) -> bool:
        """Removes `conn` from `topic`; True if the topic has no local subscriber left."""
        subs = self._topics.get(topic)
        if subs is None or conn not in subs:
            return False
        topics = self._by_conn[conn]
        topics.discard(topic)
        if not topics:
            del self._by_conn[conn]
        self._subscription_total -= 1
        return self._remove(topic, subs, conn)

    def drop(self, conn: Connection) -> list[str]:
        """The socket is gone: removes it from every topic, stops its writer; returns topics left empty."""
        conn.discard()
        emptied = []
        held = self._by_conn.pop(conn, ())
        self._subscription_total -= len(held)
        for topic in held:
            if self._remove(topic, self._topics[topic], conn):
                emptied.append(topic)
        return emptied

    def subscribers(self, topic: str) -> tuple[Connection, ...]:
        """The topic's local subscribers, as an immutable snapshot."""
        return self._snapshot(topic)[0]

    def _snapshot(self, topic: str) -> tuple[tuple[Connection, ...], frozenset[str]]:
        snapshot = self._snapshots.get(topic)
        if snapshot is None:
            subs = self._topics.get(topic)
            if not subs:
                return (), frozenset()
            snapshot = self._snapshots[topic] = (tuple(subs), frozenset(conn.codec for conn in subs))
        return snapshot

    def topics(self) -> list[str]:
        """Every topic with at least one local subscriber."""
        return list(self._topics)

    def topic_count(self) -> int:
        """How many topics have at least one local subscriber."""
        return len(self._topics)

    def subscription_count(self) -> int:
        """Subscriptions of every local connection together (one per connection per topic); O(1)."""
        return self._subscription_total

    def topics_of(self, conn: Connection) -> frozenset[str]:
        """The topics `conn` is subscribed to."""
        return frozenset(self._by_conn.get(conn, ()))

    def broadcast(self, topic: str, frame: dict[str, Any], encode_once: Encoder | None = None) -> int:
        """Encodes `frame` once per codec its subscribers read and hands it to every local
        subscriber; returns how many.

        Nothing is encoded when the topic has no local subscriber, and no MessagePack when no
        subscriber reads it (a chat room of browsers: it was 1.5 % of the server's samples at
        2,000 chat messages/s). Never awaits, never raises because of a socket (an encoder
        error propagates before any socket is written: it is the caller's frame).
        """
        subs, codecs = self._snapshot(topic)
        if not subs:
            return 0
        messages = (encode_once or self._encode_once)(frame, codecs)
        for conn in subs:
            conn.deliver(messages, frame)
        return len(subs)

    def broadcast_encoded(self, topic: str, messages_by_codec: dict[str, AsgiMessage]) -> int:
        """Hands already-encoded messages to every local subscriber of `topic`; returns how many."""
        subs = self.subscribers(topic)
        for conn in subs:
            conn.deliver(messages_by_codec)
        return len(subs)

    def connections(self) -> Iterable[Connection]:
        """Every connection subscribed to at least one topic."""
        return tuple(self._by_conn)

    def _remove(self, topic: str, subs: set[Connection], conn: Connection) -> bool:
        subs.discard(conn)
        self._snapshots.pop(topic, None)
        if subs:
            return False
        del self._topics[topic]
        return True
