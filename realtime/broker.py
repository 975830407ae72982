"""Redis pub/sub between server processes: one subscription per channel per process, one PUBLISH per event.

The reader owns one dedicated Redis connection (RESP2, no socket read timeout: an idle
subscriber is normal, DESIGN.md "Known pitfalls"), pings it when it has been silent, and on
any connection error logs, backs off (0.1 s doubling to 0.5 s), reconnects and resubscribes
every channel it holds (channels_redis `pubsub.py` style, without redis-py's hidden retries).

A Redis that stops answering without closing the connection (frozen by SIGSTOP, a stalled
host, a network path that drops packets) is a failed connection too: after `ping_interval`
(2 s) of silence the reader sends a PING, and when nothing at all arrives for `pong_timeout`
(2 s) after it, it reconnects, so `on_connected` follows within about 4 s of the freeze's
start. That bound stays under `command_timeout`, the publishers' own wait: a freeze long
enough to fail a publish (a control message lost) always ends the connection, and the owner
audits its sockets once Redis answers again (`realtime.audit`). A reconnect's handshake is
bounded by `command_timeout`, and the reader waits at most `pong_timeout` to send its PING,
so a frozen Redis holds the reader no longer than that.

The pub/sub connections keep no socket timeout: with one, redis-py bounds each write with
`asyncio.wait_for`, which on Python 3.11 can swallow a cancel that lands as the write
completes; a reader cancelled so at the end of a generation never ended (the cluster test of
a killed master hung). Our bounds use `asyncio.timeout`, which does not.

The cap is low on purpose (issue #15): every message published between the loss and the
resubscribe must be read back from history before the process's sockets see newer live
events, so the resubscribe must follow Redis's return at once. A retry against a Redis that
is down is one refused TCP connect (or one `socket_connect_timeout` when it is unreachable),
cheap at two per second. `on_connected` tells the owner of every (re)connect, so it can
repair the gap (`realtime.runtime`).
"""

from __future__ import annotations

import asyncio
import itertools
import logging
from collections import deque
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import redis.asyncio as aredis
from redis.asyncio.connection import AbstractConnection, Connection
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialBackoff, NoBackoff
from redis.crc import key_slot
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError, ResponseError

from realtime import metrics
from realtime.connections import DRIVER_INFO, ClusterAddress, async_cluster_client, cluster_url
from realtime.pipelined import NOT_BUFFERED, buffered_reply

logger = logging.getLogger(__name__)

MessageCallback = Callable[[str, bytes], None]
ConnectedCallback = Callable[[frozenset[str]], None]

_SUBSCRIBE_BATCH = 500  # channels per SUBSCRIBE when resubscribing after a reconnect
_BARRIER = b"pms-barrier-"  # PING argument of `barrier`, followed by a sequence number


def _redacted(url: str) -> str:
    """The URL without its password, for logs."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.rsplit("@", 1)[1]
    user = f"{parts.username}:***@" if parts.username else "***@"
    return urlunsplit(parts._replace(netloc=user + netloc))


# Liveness of a pub/sub connection: a PING after this much silence, and a failure when nothing
# answers for as long after it. Idle cost: one PING (14 bytes) and its PONG (20 bytes) per 2 s
# per connection (one per master on a cluster), nothing while messages flow; a PING is one of
# the cheapest commands Redis runs.
_LIVENESS_SECONDS = 2.0


def _liveness(command_timeout: float, ping_interval: float | None, pong_timeout: float | None) -> tuple[float, float]:
    """(ping_interval, pong_timeout): the given ones, checked, or the defaults scaled to `command_timeout`.

    Their sum, the longest a freeze can last unseen, must stay under `command_timeout`: a
    publisher gives up (and a control message is lost) only after Redis was silent that long,
    so every freeze that can lose one ends the connection, and `on_connected` follows.
    """
    if command_timeout <= 0:
        raise ValueError(f"command_timeout must be positive, not {command_timeout}")
    default = min(_LIVENESS_SECONDS, command_timeout * 0.4)  # 2 s and 2 s under the default 5 s
    ping = default if ping_interval is None else ping_interval
    pong = default if pong_timeout is None else pong_timeout
    if ping <= 0 or pong <= 0:
        raise ValueError(f"ping_interval ({ping}) and pong_timeout ({pong}) must be positive")
    if ping + pong >= command_timeout:
        raise ValueError(
            f"ping_interval + pong_timeout ({ping} + {pong} s) must stay under command_timeout "
            f"({command_timeout} s), or a freeze that fails publishes could go unnoticed"
        )
    return ping, pong


class _Liveness:
    """The PING-on-silence watch of one pub/sub connection, shared by both brokers' readers.

    `next_reply` returns the connection's next reply. Silent for `ping_interval`: it sends a
    PING (through `send_ping`, which takes the broker's lock; taking it and writing are bounded
    by `pong_timeout`, as a writer stuck on a frozen Redis holds the lock). From then until the
    reader reports the PONG (`ponged`), nothing at all arriving for `pong_timeout` raises
    RedisConnectionError. Any reply ahead of the PONG restarts that wait: a Redis draining a
    backlog is alive, and a backlog is finite.
    """

    def __init__(
        self, ping_interval: float, pong_timeout: float, send_ping: Callable[[], Awaitable[None]], where: str = ""
    ) -> None:
        self._ping_interval = ping_interval
        self._pong_timeout = pong_timeout
        self._send_ping = send_ping
        self._where = where  # a prefix of the error messages ("<shard>: ")
        self._pinged = False  # a PING of ours is out, not yet answered

    async def next_reply(self, conn: AbstractConnection) -> Any:
        """The next reply on `conn` (never None). Raises RedisConnectionError on a silent Redis."""
        while True:
            # A reply already buffered (one socket read brings many in a burst) is taken without
            # read_response's timer and wrappers; only waiting for one needs them.
            response = buffered_reply(conn)
            if response is NOT_BUFFERED:
                response = await conn.read_response(timeout=self._pong_timeout if self._pinged else self._ping_interval)
            if response is not None:
                return response
            if self._pinged:
                raise RedisConnectionError(f"{self._where}no reply to PING within {self._pong_timeout}s")
            try:
                async with asyncio.timeout(self._pong_timeout):
                    await self._send_ping()
            except TimeoutError as exc:
                raise RedisConnectionError(f"{self._where}PING not sent within {self._pong_timeout}s") from exc
            self._pinged = True

    def ponged(self) -> None:
        """Our PING was answered (the reader saw its PONG)."""
        self._pinged = False


def make_broker(
    redis_url: str, on_message: MessageCallback, *, command_timeout: float = 5.0
) -> RedisBroker | ShardedBroker:
    """The broker for `redis_url`: sharded pub/sub on a Redis Cluster (`redis+cluster://`), else classic.

    `command_timeout` is the Redis socket timeout the rest of the process uses (its publishers'
    wait); the broker's own waits and its liveness bound follow from it (`_liveness`).
    """
    if cluster_url(redis_url):
        return ShardedBroker(redis_url, on_message, command_timeout=command_timeout)
    return RedisBroker(redis_url, on_message, command_timeout=command_timeout)


class RedisBroker:
    """Redis pub/sub for one process: at-most-once live delivery per connection, every held channel resubscribed.

    Delivery: `on_message(channel, payload)` is called once per Redis message on a channel
    this broker holds, in Redis order, from the reader task; it must be quick and must not
    block (it is the hub's fan-out). An exception from it is logged and counted, never fatal.
    Messages published while the connection is down are not received: `on_connected` is
    called on every (re)connect so the owner can read them from history (`Realtime._repair`). Reference counting is the caller's: subscribe a channel when its first
    local subscriber arrives, unsubscribe when the last one leaves (`Hub` return values).
    """

    def __init__(
        self,
        redis_url: str,
        on_message: MessageCallback,
        *,
        client_name: str | None = "pms-broker",
        command_timeout: float = 5.0,
        ping_interval: float | None = None,
        pong_timeout: float | None = None,
        confirm_timeout: float = 2.0,
        backoff_initial: float = 0.1,
        backoff_max: float = 0.5,
        max_publish_connections: int = 50,
    ) -> None:
        self._on_message = on_message
        self._where = _redacted(redis_url)
        self._ping_interval, self._pong_timeout = _liveness(command_timeout, ping_interval, pong_timeout)
        self._confirm_timeout = confirm_timeout
        self._backoff_initial = backoff_initial
        self._backoff_max = backoff_max
        # Only used to build connections from the URL (TCP or unix socket). No socket timeout:
        # liveness comes from our own PING, the handshake is bounded in `_connect` (see the
        # module docstring); no retries: the reader alone decides to reconnect.
        self._command_timeout = command_timeout
        self._pubsub_pool = aredis.ConnectionPool.from_url(
            redis_url,
            protocol=2,
            socket_timeout=None,
            socket_connect_timeout=command_timeout,
            retry=Retry(NoBackoff(), 0),
            client_name=client_name,
            driver_info=DRIVER_INFO,
        )
        # Publishing shares a bounded pool that waits for a free connection instead of raising.
        self._redis = aredis.Redis.from_pool(
            aredis.BlockingConnectionPool.from_url(
                redis_url,
                max_connections=max_publish_connections,
                timeout=command_timeout,
                socket_timeout=command_timeout,
                socket_connect_timeout=command_timeout,
                retry=Retry(ExponentialBackoff(cap=0.5, base=0.05), 2),
                driver_info=DRIVER_INFO,
            )
        )
        self._channels: set[str] = set()
        self._subscribing: list[str] = []  # channels whose SUBSCRIBE goes out at the end of this loop turn
        self._subscribe_task: asyncio.Future[None] | None = None
        self._pending: dict[str, asyncio.Future[None]] = {}
        self._barriers: deque[tuple[bytes, asyncio.Future[None]]] = deque()  # in the order their PINGs went out
        self._barrier_seq = itertools.count(1)
        self._conn: AbstractConnection | None = None
        # Counts pub/sub connections made: a process that held a channel under one generation
        # received every message published on it meanwhile (realtime/positions.py relies on it).
        self.generation = 0
        self._lock = asyncio.Lock()  # one writer at a time on the pubsub connection
        self._task: asyncio.Task[None] | None = None
        self._stopped = False
        # Called from the reader with the channels just (re)subscribed, after their SUBSCRIBEs
        # were written and before anything is read from the new connection.
        self.on_connected: ConnectedCallback | None = None

    @property
    def channels(self) -> frozenset[str]:
        """The channels this broker holds (subscribed now, or as soon as Redis is back)."""
        return frozenset(self._channels)

    @property
    def connected(self) -> bool:
        """True while the pubsub connection is up and its channels were (re)sent to Redis."""
        return self._conn is not None

    def connection_for(self, channel: str) -> AbstractConnection | None:
        """The pub/sub connection `channel`'s messages arrive on now (the one connection, whatever
        the channel), None while disconnected. For diagnostics and fault-injection tests: the
        reader owns it, nothing else may read from or write to it."""
        return self._conn

    async def start(self) -> None:
        """Starts the reader task; returns at once, even when Redis is down (it keeps retrying)."""
        if self._stopped:
            raise RuntimeError("a stopped broker cannot be restarted")
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run(), name="redis-broker-reader")

    async def stop(self) -> None:
        """Stops the reader, closes every connection and releases waiters; final."""
        self._stopped = True
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            await asyncio.wait({task})
        for fut in self._pending.values():
            fut.cancel()
        self._pending.clear()
        self._release_barriers(None)
        await self._redis.aclose()

    async def subscribe(self, channel: str) -> bool:
        """Holds `channel` until `unsubscribe`, across reconnects; True once Redis confirmed it.

        After a True return, every later PUBLISH on the channel reaches `on_message`. False
        means no confirmation within `confirm_timeout` (Redis down): the channel stays held
        and is subscribed as soon as the connection is back.
        """
        self._channels.add(channel)
        fut = self._pending.get(channel)
        if fut is None:
            fut = self._pending[channel] = asyncio.get_running_loop().create_future()
        self._subscribing.append(channel)
        if self._subscribe_task is None:
            # The subscribes of this loop turn (a burst of sockets opening) go in one SUBSCRIBE,
            # sent by a task of its own: a caller cancelled meanwhile cannot hold the others back.
            self._subscribe_task = asyncio.ensure_future(self._send_subscribes())
        await asyncio.wait({fut}, timeout=self._confirm_timeout)
        return fut.done() and not fut.cancelled()

    async def _send_subscribes(self) -> None:
        try:
            await asyncio.sleep(0)
            while self._subscribing:  # those added while the previous batch waited for the lock go next
                batch, self._subscribing = self._subscribing, []
                held = [name for name in dict.fromkeys(batch) if name in self._channels]  # not unsubscribed since
                if held:
                    await self._send("SUBSCRIBE", *held)
        finally:
            self._subscribe_task = None

    def confirmed(self, channel: str) -> bool:
        """True while `channel` is held and Redis confirmed its subscription (or it was resent on reconnect)."""
        return channel in self._channels and channel not in self._pending

    async def unsubscribe(self, channel: str) -> None:
        """Stops holding `channel`: nothing more is passed to `on_message` for it, from now on."""
        self._channels.discard(channel)
        fut = self._pending.pop(channel, None)
        if fut is not None:
            fut.cancel()
        await self._send("UNSUBSCRIBE", channel)

    async def barrier(self) -> None:
        """Returns once `on_message` was called for every message Redis published before this call.

        A PING on the pub/sub connection: Redis answers it after every message it had already
        queued there, and the reader dispatches in order. Also returns when that connection
        is gone (nothing more comes from it) and at once when there is none. Never raises
        because of Redis.
        """
        async with self._lock:
            conn = self._conn
            if conn is None or not conn.is_connected:
                return
            token = _BARRIER + str(next(self._barrier_seq)).encode()
            fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            self._barriers.append((token, fut))
            try:
                await conn.send_command("PING", token, check_health=False)
            except (RedisError, OSError) as exc:
                # The reader fails on this connection too and releases every barrier of it.
                logger.info("redis pub/sub %s: PING not sent (%r); the reader reconnects", self._where, exc)
        await asyncio.shield(fut)

    def _release_barriers(self, token: bytes | None) -> None:
        """Resolves the barriers up to the one whose PING answered `token` (every one when None)."""
        barriers = self._barriers
        while barriers:
            sent, fut = barriers.popleft()
            if not fut.done():
                fut.set_result(None)
            if sent == token:
                return

    async def publish(self, channel: str, payload: bytes) -> int:
        """One PUBLISH; returns how many Redis subscribers got it. Raises redis errors: the caller keeps the event."""
        receivers: int = await self._redis.publish(channel, payload)
        return receivers

    async def _send(self, *args: str) -> None:
        """Writes a command on the live pubsub connection; a dead one is left to the reader to replace."""
        async with self._lock:
            conn = self._conn
            # Checked right before writing: redis-py would silently reconnect a closed connection,
            # giving it a session without our subscriptions behind the reader's back.
            if conn is None or not conn.is_connected:
                return
            try:
                await conn.send_command(*args, check_health=False)
            except (RedisError, OSError) as exc:
                logger.info("redis pub/sub %s: %s not sent (%r); the reader reconnects", self._where, args[0], exc)

    async def _run(self) -> None:
        """The reader: connect, resubscribe, read until the connection fails, back off, repeat; ends only by cancel."""
        loop = asyncio.get_running_loop()
        delay = self._backoff_initial
        while True:
            conn: AbstractConnection | None = None
            connected_at = loop.time()
            try:
                conn, channels = await self._connect()
                connected_at = loop.time()
                self._notify_connected(channels)
                await self._read(conn)
            except asyncio.CancelledError:
                raise
            except (RedisError, OSError) as exc:
                metrics.incr("broker.connection_errors")
                if conn is not None and loop.time() - connected_at >= self._backoff_max:
                    delay = self._backoff_initial  # it had been healthy: this is a fresh outage
                logger.warning(
                    "redis pub/sub %s lost (%s: %s); reconnecting in %.1fs and resubscribing %d channels",
                    self._where,
                    type(exc).__name__,
                    exc,
                    delay,
                    len(self._channels),
                )
            except Exception:
                metrics.incr("broker.connection_errors")
                logger.exception("redis pub/sub %s reader failed; reconnecting in %.1fs", self._where, delay)
            finally:
                self._conn = None
                self._release_barriers(None)  # dispatch from this connection is over
                if conn is not None:
                    await conn.disconnect(nowait=True)
            await asyncio.sleep(delay)
            delay = min(delay * 2, self._backoff_max)
            metrics.incr("broker.reconnects")

    def _notify_connected(self, channels: frozenset[str]) -> None:
        callback = self.on_connected
        if callback is None:
            return
        try:
            callback(channels)
        except Exception:
            metrics.incr("broker.callback_errors")
            logger.exception("broker on_connected callback failed")

    async def _connect(self) -> tuple[AbstractConnection, frozenset[str]]:
        """A new pub/sub connection with every held channel's SUBSCRIBE written (not yet confirmed)."""
        conn: AbstractConnection = self._pubsub_pool.make_connection()
        try:
            async with asyncio.timeout(self._command_timeout):  # a frozen Redis accepts, never answers
                await conn.connect()
            async with self._lock:
                # Snapshot under the lock: a channel added later is sent by its own `subscribe`.
                channels = list(self._channels)
                for start in range(0, len(channels), _SUBSCRIBE_BATCH):
                    await conn.send_command(
                        "SUBSCRIBE", *channels[start : start + _SUBSCRIBE_BATCH], check_health=False
                    )
                self._conn = conn
                self.generation += 1
        except BaseException:
            await conn.disconnect(nowait=True)
            raise
        if channels:
            logger.info("redis pub/sub %s connected; %d channels subscribed", self._where, len(channels))
        return conn, frozenset(channels)

    async def _read(self, conn: AbstractConnection) -> None:
        """Dispatches replies until the connection fails, a silent one included (`_Liveness`:
        Redis frozen or cut off, the TCP connection still open)."""
        channels = self._channels
        on_message = self._on_message
        liveness = _Liveness(self._ping_interval, self._pong_timeout, lambda: self._send("PING"))
        while True:
            response = await liveness.next_reply(conn)
            if not isinstance(response, list):
                # PONG outside subscribed mode: b"PONG", or a barrier's token as it was sent.
                if response == b"PONG":
                    liveness.ponged()
                elif isinstance(response, bytes) and response.startswith(_BARRIER):
                    self._release_barriers(response)
                continue
            kind = response[0]
            if kind == b"message":
                name = response[1].decode()
                if name not in channels:
                    continue  # in flight when it was unsubscribed
                metrics.incr("broker.messages")
                try:
                    on_message(name, response[2])
                except Exception:
                    metrics.incr("broker.callback_errors")
                    logger.exception("broker callback failed for a message on %s", name)
            elif kind == b"subscribe":
                fut = self._pending.pop(response[1].decode(), None)
                if fut is not None and not fut.done():
                    fut.set_result(None)
            elif kind == b"pong":
                if not response[1]:  # our PING's (a barrier's PONG, sent before it, proves nothing)
                    liveness.ponged()
                elif response[1].startswith(_BARRIER):
                    self._release_barriers(response[1])


class _Shard:
    """One pub/sub connection to one master of a Redis Cluster, for one broker generation."""

    __slots__ = ("name", "conn", "barriers", "unsubscribing")

    def __init__(self, name: str, conn: AbstractConnection) -> None:
        self.name = name
        self.conn = conn
        self.barriers: deque[tuple[bytes, asyncio.Future[None]]] = deque()
        self.unsubscribing: dict[str, int] = {}  # SUNSUBSCRIBEs sent and not yet answered, per channel


class _TopologyChanged(RedisError):
    """A slot this broker listens on moved (MOVED reply, or Redis unsubscribed a held channel)."""


class ShardedBroker:
    """Redis Cluster pub/sub for one process: SPUBLISH, and SSUBSCRIBE on the master owning each channel.

    Same contract as `RedisBroker` (at-most-once live delivery per generation, every held
    channel resubscribed, `on_connected` on every (re)connect, `barrier`, `generation`), so
    the gap repair of `realtime.runtime` and the positions of `realtime.positions` work
    unchanged. An event reaches only the shard that owns its channel's slot, and only the
    processes listening there.

    One generation is one set of connections, one per master, made from one reading of the
    slot map. Any change ends it for every shard at once: a connection lost (a master killed
    or restarted), a MOVED reply to an SSUBSCRIBE, or an unsolicited SUNSUBSCRIBE (Redis drops
    the shard subscriptions of a slot that migrated or of a master demoted to replica). The
    broker then re-reads the slot map, reconnects and resubscribes everything, and the owner
    repairs every topic from history. Correctness first; the cost: a failover on one shard
    costs a history read for the topics of every shard, and while the failed master's slot
    has no master (about `cluster-node-timeout` plus the election) the reconnect is retried
    every `backoff_max` and no shard delivers live events (they come from history after).
    """

    def __init__(
        self,
        redis_url: str,
        on_message: MessageCallback,
        *,
        client_name: str | None = "pms-broker",
        command_timeout: float = 5.0,
        ping_interval: float | None = None,
        pong_timeout: float | None = None,
        confirm_timeout: float = 2.0,
        backoff_initial: float = 0.1,
        backoff_max: float = 0.5,
    ) -> None:
        self._on_message = on_message
        self._address = ClusterAddress(redis_url)
        self._where = ",".join(f"{host}:{port}" for host, port in self._address.nodes)
        self._client_name = client_name
        self._command_timeout = command_timeout
        self._ping_interval, self._pong_timeout = _liveness(command_timeout, ping_interval, pong_timeout)
        self._confirm_timeout = confirm_timeout
        self._backoff_initial = backoff_initial
        self._backoff_max = backoff_max
        # Publishing and the slot map (redis-py's cluster client: MOVED and failover retries).
        self._cluster = async_cluster_client(
            redis_url, socket_timeout=command_timeout, socket_connect_timeout=command_timeout
        )
        self._channels: set[str] = set()
        self._pending: dict[str, asyncio.Future[None]] = {}
        self._shards: dict[str, _Shard] = {}  # node name -> shard of the current generation
        self._ended = asyncio.Event()  # set to end the current generation
        self._barrier_seq = itertools.count(1)
        self.generation = 0
        self._lock = asyncio.Lock()  # one writer at a time on the shard connections
        self._task: asyncio.Task[None] | None = None
        self._stopped = False
        self.on_connected: ConnectedCallback | None = None

    @property
    def channels(self) -> frozenset[str]:
        return frozenset(self._channels)

    @property
    def connected(self) -> bool:
        return bool(self._shards)

    def connection_for(self, channel: str) -> AbstractConnection | None:
        """As `RedisBroker.connection_for`: the connection to the master that owns `channel`'s slot
        in this generation, None while disconnected or when no shard connection owns it."""
        owner = self._owner(channel)
        shard = self._shards.get(owner) if owner is not None else None
        return shard.conn if shard is not None else None

    async def start(self) -> None:
        if self._stopped:
            raise RuntimeError("a stopped broker cannot be restarted")
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run(), name="redis-sharded-broker")

    async def stop(self) -> None:
        self._stopped = True
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            await asyncio.wait({task})
        for fut in self._pending.values():
            fut.cancel()
        self._pending.clear()
        await self._cluster.aclose()

    async def publish(self, channel: str, payload: bytes) -> int:
        """One SPUBLISH (to the master owning the channel's slot); returns its receivers on that shard."""
        receivers: int = await self._cluster.spublish(channel, payload)
        return receivers

    async def subscribe(self, channel: str) -> bool:
        """As `RedisBroker.subscribe`: True once the owning shard confirmed the SSUBSCRIBE."""
        self._channels.add(channel)
        fut = self._pending.get(channel)
        if fut is None:
            fut = self._pending[channel] = asyncio.get_running_loop().create_future()
        await self._send_for(channel, "SSUBSCRIBE")
        await asyncio.wait({fut}, timeout=self._confirm_timeout)
        return fut.done() and not fut.cancelled()

    def confirmed(self, channel: str) -> bool:
        return channel in self._channels and channel not in self._pending

    async def unsubscribe(self, channel: str) -> None:
        self._channels.discard(channel)
        fut = self._pending.pop(channel, None)
        if fut is not None:
            fut.cancel()
        await self._send_for(channel, "SUNSUBSCRIBE")

    async def barrier(self) -> None:
        """As `RedisBroker.barrier`, on every shard: a PING each, answered after what it had queued."""
        waits: list[asyncio.Future[None]] = []
        async with self._lock:
            for shard in list(self._shards.values()):
                if not shard.conn.is_connected:
                    continue
                token = _BARRIER + str(next(self._barrier_seq)).encode()
                fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
                shard.barriers.append((token, fut))
                waits.append(fut)
                try:
                    await shard.conn.send_command("PING", token, check_health=False)
                except (RedisError, OSError) as exc:
                    logger.info("redis shard %s: PING not sent (%r); the broker reconnects", shard.name, exc)
        if waits:
            await asyncio.shield(asyncio.gather(*waits))

    def _owner(self, channel: str) -> str | None:
        """The name of the master that owns `channel`'s slot, as the slot map says now."""
        try:
            node = self._cluster.nodes_manager.get_node_from_slot(key_slot(channel.encode()))  # type: ignore[attr-defined]
        except (RedisError, KeyError, IndexError):  # no slot map yet, or the slot is not covered
            return None
        return str(node.name)

    async def _send_for(self, channel: str, command: str) -> None:
        async with self._lock:
            owner = self._owner(channel)
            shard = self._shards.get(owner) if owner is not None else None
            if shard is None:
                if self._shards and command == "SSUBSCRIBE":
                    # The slot map moved under this generation: reconnect, which subscribes it.
                    self._end_generation(f"no shard connection for {channel!r} (owner {owner})")
                return
            if not shard.conn.is_connected:
                return
            if command == "SUNSUBSCRIBE":
                shard.unsubscribing[channel] = shard.unsubscribing.get(channel, 0) + 1
            try:
                await shard.conn.send_command(command, channel, check_health=False)
            except (RedisError, OSError) as exc:
                logger.info("redis shard %s: %s not sent (%r); the broker reconnects", shard.name, command, exc)

    def _end_generation(self, reason: str) -> None:
        """Ends this generation: the runner reconnects every shard with a fresh slot map."""
        logger.warning("redis cluster pub/sub %s: %s; resubscribing on every shard", self._where, reason)
        self._ended.set()

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        delay = self._backoff_initial
        first = True
        while True:
            shards: list[_Shard] = []
            readers: list[asyncio.Task[Any]] = []
            connected_at = loop.time()
            self._ended.clear()
            try:
                if first:
                    await self._cluster.initialize()
                    first = False
                else:
                    await self._cluster.nodes_manager.initialize()  # type: ignore[attr-defined]
                shards, channels = await self._connect()
                connected_at = loop.time()
                self._notify_connected(channels)
                readers = [loop.create_task(self._read(shard)) for shard in shards]
                readers.append(loop.create_task(self._ended.wait()))
                done, _ = await asyncio.wait(readers, return_when=asyncio.FIRST_COMPLETED)
                for task in done:
                    task.result()  # raises the reader's error
                raise _TopologyChanged("the slot map changed")
            except asyncio.CancelledError:
                raise
            except (RedisError, OSError) as exc:
                metrics.incr("broker.connection_errors")
                if shards and loop.time() - connected_at >= self._backoff_max:
                    delay = self._backoff_initial
                logger.warning(
                    "redis cluster pub/sub %s lost (%s: %s); reconnecting in %.1fs and resubscribing %d channels",
                    self._where,
                    type(exc).__name__,
                    exc,
                    delay,
                    len(self._channels),
                )
            except Exception:
                metrics.incr("broker.connection_errors")
                logger.exception("redis cluster pub/sub %s failed; reconnecting in %.1fs", self._where, delay)
            finally:
                for task in readers:
                    task.cancel()
                if readers:
                    await asyncio.wait(readers)
                self._shards = {}
                for shard in shards:
                    self._release(shard, None)
                    await shard.conn.disconnect(nowait=True)
            await asyncio.sleep(delay)
            delay = min(delay * 2, self._backoff_max)
            metrics.incr("broker.reconnects")

    def _notify_connected(self, channels: frozenset[str]) -> None:
        callback = self.on_connected
        if callback is None:
            return
        try:
            callback(channels)
        except Exception:
            metrics.incr("broker.callback_errors")
            logger.exception("broker on_connected callback failed")

    async def _connect(self) -> tuple[list[_Shard], frozenset[str]]:
        """One connection per master of the slot map, each held channel's SSUBSCRIBE written to its owner."""
        masters = {
            node.name: node
            for node in self._cluster.nodes_manager.nodes_cache.values()  # type: ignore[attr-defined]
            if node.server_type == "primary"
        }
        shards: list[_Shard] = []
        try:
            for name, node in masters.items():
                conn = Connection(
                    host=node.host,
                    port=node.port,
                    username=self._address.username,
                    password=self._address.password,
                    protocol=2,
                    socket_timeout=None,  # see the module docstring; the handshake is bounded below
                    socket_connect_timeout=self._command_timeout,
                    retry=Retry(NoBackoff(), 0),
                    client_name=self._client_name,
                    driver_info=DRIVER_INFO,
                )
                shards.append(_Shard(name, conn))  # disconnected below if anything fails
                async with asyncio.timeout(self._command_timeout):  # a frozen master accepts, never answers
                    await conn.connect()
            by_name = {shard.name: shard for shard in shards}
            async with self._lock:
                channels = list(self._channels)
                by_slot: dict[tuple[str, int], list[str]] = {}
                for channel in channels:
                    slot = key_slot(channel.encode())
                    owner = self._owner(channel)
                    if owner not in by_name:
                        raise _TopologyChanged(f"slot {slot} has no reachable master ({owner})")
                    by_slot.setdefault((str(owner), slot), []).append(channel)
                for (owner, _), names in by_slot.items():  # SSUBSCRIBE takes channels of one slot
                    await by_name[owner].conn.send_command("SSUBSCRIBE", *names, check_health=False)
                self._shards = by_name
                self.generation += 1
        except BaseException:
            for shard in shards:
                await shard.conn.disconnect(nowait=True)
            raise
        logger.info(
            "redis cluster pub/sub %s connected to %d masters; %d channels subscribed",
            self._where,
            len(shards),
            len(channels),
        )
        return shards, frozenset(channels)

    def _release(self, shard: _Shard, token: bytes | None) -> None:
        barriers = shard.barriers
        while barriers:
            sent, fut = barriers.popleft()
            if not fut.done():
                fut.set_result(None)
            if sent == token:
                return

    async def _read(self, shard: _Shard) -> None:
        """One shard's reader, with the same `_Liveness` as `RedisBroker._read`: a frozen master fails its
        connection within `ping_interval + pong_timeout`, which ends the generation for all."""
        channels = self._channels
        on_message = self._on_message
        conn = shard.conn

        async def send_ping() -> None:
            async with self._lock:
                await conn.send_command("PING", check_health=False)

        liveness = _Liveness(self._ping_interval, self._pong_timeout, send_ping, f"{shard.name}: ")
        while True:
            try:
                response = await liveness.next_reply(conn)
            except ResponseError as exc:  # MOVED (slot not here any more) or another refusal
                raise _TopologyChanged(f"{shard.name}: {exc}") from exc
            if not isinstance(response, list):
                # PONG on a connection holding no shard channel (not in subscribed mode): the
                # PING's argument as it was sent, or b"PONG".
                if response == b"PONG":
                    liveness.ponged()
                elif isinstance(response, bytes) and response.startswith(_BARRIER):
                    self._release(shard, response)
                continue
            kind = response[0]
            if kind == b"smessage":
                name = response[1].decode()
                if name not in channels:
                    continue
                metrics.incr("broker.messages")
                try:
                    on_message(name, response[2])
                except Exception:
                    metrics.incr("broker.callback_errors")
                    logger.exception("broker callback failed for a message on %s", name)
            elif kind == b"ssubscribe":
                fut = self._pending.pop(response[1].decode(), None)
                if fut is not None and not fut.done():
                    fut.set_result(None)
            elif kind == b"sunsubscribe":
                name = response[1].decode()
                sent = shard.unsubscribing.get(name, 0)
                if sent > 1:
                    shard.unsubscribing[name] = sent - 1
                elif sent == 1:
                    del shard.unsubscribing[name]
                elif name in channels:  # not ours: Redis moved the slot or demoted this master
                    raise _TopologyChanged(f"{shard.name} unsubscribed {name!r}")
            elif kind == b"pong":
                if not response[1]:  # our PING's
                    liveness.ponged()
                elif response[1].startswith(_BARRIER):
                    self._release(shard, response[1])
