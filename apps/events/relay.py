"""The outbox relay: publishes committed `event_outbox` rows to Redis, outside any transaction.

One pass (`outbox_relay`) runs on a connection in autocommit mode and never inside a
transaction (it refuses to): it takes a session-level advisory lock (`pg_try_advisory_lock`,
not a transaction: the connection stays idle between statements), reads the oldest
committed rows (a committed single-statement read: the claim), publishes each through
the same Lua script as `RedisHistory.publish` (offsets, recovery history), deletes the
published rows (autocommit), and repeats until none is left; then it unlocks. No
PostgreSQL transaction is open while it waits for Redis.

Guarantees:
- Per-topic order: one relay at a time in the whole deployment holds the lock, and it
  publishes in `id` order. A service writes its outbox row after the entity row in the
  same transaction, and a second writer of that entity waits for the first one's row
  lock, so for one entity `id` order is commit order. A relay that finds the lock taken
  returns at once; the holder looks again after unlocking, so a row committed while the
  lock was held is not left behind.
- At least once: a row is deleted only after Redis ran the script; a crash between the
  two publishes it again (the lock dies with its connection).
- A Redis outage delays, never loses: a pass stops at the first Redis error, records
  `attempts` / `last_error` on the rows left and returns; the rows wait for the next pass.
- No event for a rolled-back write: rows are written by the writer's transaction
  (`apps.events.outbox`) and the relay only ever sees committed rows.

Where it runs: `OutboxRelay`, an asyncio task per server process (`pms.wiring` starts it on
the server's loop), with one worker thread of its own for the ORM and the blocking Redis
client. A commit only signals it (`after_commit` -> `OutboxRelay.wake`, thread-safe), so the
HTTP response never waits for Redis. Besides the signals it sweeps every `sweep_seconds`
(rows another process's crash or an outage left). After a failed pass it waits
`retry_min_seconds`, doubling up to `retry_max_seconds`, before it tries Redis again,
however many commits signal it meanwhile. In a process with no relay task (management
commands, scripts, a future job worker before it starts one) `after_commit` relays at once
in the committing thread, after the commit, skipping that for `INLINE_BACKOFF_SECONDS` after
a Redis failure (the servers' sweeps pick the rows up).

Bound on the wait, while Redis and PostgreSQL are up: an event is published within the
relay pass in flight when it committed plus its own pass (one lock, one read, one script
call per row, one delete). Measured by `tests/apps/events/test_relay_latency.py` (run with
`-s`; the relay task on the test's loop, real PostgreSQL and Redis on this 2-core machine
shared with other work, 300 commits of one outbox row each, 20 ms apart; commit returned ->
a Redis subscriber got the frame), 2026-12-02, load average ~3.5 from other work: p50 3.0-3.3 ms,
p99 9.0-10.4 ms, max 10.4-12.3 ms (two runs; the worker keeps its database connection between
passes; when it reconnected every pass, p50 7.8 ms and p99 17.2 ms). The test fails above a p99
of 250 ms. After an outage: at most `retry_max_seconds` (plus the Redis socket timeout of
an attempt in flight) after Redis is back; after a relay crashed mid-pass: at most
`sweep_seconds`. `OUTBOX_RELAY` in Django settings (a dict of `OutboxRelay`'s keyword
arguments) tunes a server's relay.

The same task delivers the notice outbox (`apps.events.delivery`): after each outbox pass
it runs a notice pass on the loop (MongoDB and Redis through the process's realtime core,
the ORM on the relay's own thread). A failed notice pass backs off on its own (from
`retry_min_seconds`, doubling up to `retry_max_seconds`, retried by the next signal or sweep
after that), so a MongoDB outage does not hold the change events back.

Deployment note: the lock is a session lock, so the relay's connection must be a real
session (direct to PostgreSQL, or PgBouncer in session mode), not transaction pooling.
"""

import asyncio
import logging
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from django.db import DEFAULT_DB_ALIAS, DatabaseError, InterfaceError, OperationalError
from django.db import connections as db_connections
from django.db.backends.base.base import BaseDatabaseWrapper
from django.db.models import F
from django.db.transaction import TransactionManagementError
from redis.exceptions import RedisError

from apps.events import delivery
from apps.events.models import OutboxEvent
from realtime import connections, metrics
from realtime.history import publish_sync

logger = logging.getLogger(__name__)

DEFAULT_BATCH = 500
# Rows one call publishes at most; the next signal or sweep goes on.
MAX_ROWS_PER_CALL = 10_000
# Lock rounds per call: the holder looks again after unlocking (see the module docstring).
MAX_LOCK_ROUNDS = 20
SWEEP_SECONDS = 2.0
RETRY_MIN_SECONDS = 0.25
RETRY_MAX_SECONDS = 5.0
# In processes without a relay task: after a failed inline relay, commits skip theirs this
# long, so an outage does not cost every write a Redis timeout.
INLINE_BACKOFF_SECONDS = 5.0
# pg advisory lock key of the relay: "outbox" in ASCII.
RELAY_LOCK_KEY = 0x6F7574626F78
_ERROR_CHARS = 1000


@dataclass(frozen=True)
class RelayOutcome:
    """What one `relay` call did."""

    published: int
    redis_failed: bool = False
    locked: bool = True


def outbox_relay(limit: int = DEFAULT_BATCH, *, using: str = DEFAULT_DB_ALIAS) -> int:
    """Publish pending outbox rows in id order and delete them; returns how many were published.

    Precondition: not inside a transaction (raises TransactionManagementError). Returns 0 at
    once when another relay (any process) holds the lock. Stops at the first Redis failure,
    leaving that row and the later ones (attempts + 1, last_error). Raises only for database
    errors.
    """
    return relay(limit, using=using).published


def relay(limit: int = DEFAULT_BATCH, *, using: str = DEFAULT_DB_ALIAS, client: Any = None) -> RelayOutcome:
    """`outbox_relay` with the whole outcome (the relay task backs off on `redis_failed`).

    `client`: the blocking Redis client to publish with (default: the process's,
    `realtime.connections.get_sync_redis()`).
    """
    if limit < 1:
        raise ValueError("limit must be positive")
    connection = db_connections[using]
    if connection.in_atomic_block:
        raise TransactionManagementError("the outbox relay runs outside any transaction")
    published = 0
    stuck: set[int] = set()  # rows that failed for another reason than Redis: not retried in this call
    for _ in range(MAX_LOCK_ROUNDS):
        if not _try_lock(connection):
            return RelayOutcome(published, locked=False)
        try:
            count, redis_failed = _drain(limit, using, stuck, client)
        finally:
            _unlock(connection)
        published += count
        if redis_failed:
            return RelayOutcome(published, redis_failed=True)
        if published >= MAX_ROWS_PER_CALL:
            break
        # Unlocked: a row committed while we held the lock (its own relay found the lock
        # taken and returned) is visible now, so look again rather than leave it behind.
        if not OutboxEvent.objects.using(using).exclude(id__in=stuck).exists():
            break
    return RelayOutcome(published)


def _try_lock(connection: BaseDatabaseWrapper) -> bool:
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_try_advisory_lock(%s)", [RELAY_LOCK_KEY])
        row = cursor.fetchone()
    return bool(row and row[0])


def _unlock(connection: BaseDatabaseWrapper) -> None:
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_unlock(%s)", [RELAY_LOCK_KEY])
    except DatabaseError:
        # The server releases a session lock with its session: make sure that happens.
        logger.warning("outbox: could not unlock the relay lock; closing the connection")
        connection.close()


def _drain(limit: int, using: str, stuck: set[int], client: Any) -> tuple[int, bool]:
    """Publish and delete batches while the lock is held; (published, stopped on a Redis failure)."""
    config = connections.current_settings()
    if client is None:
        client = connections.get_sync_redis()
    published = 0
    while published < MAX_ROWS_PER_CALL:
        rows = list(OutboxEvent.objects.using(using).exclude(id__in=stuck).order_by("id")[:limit])
        if not rows:
            return published, False
        sent: list[int] = []
        failure: tuple[list[int], BaseException] | None = None
        for index, row in enumerate(rows):
            try:
                publish_sync(
                    client,
                    row.topic,
                    row.event,
                    row.data,
                    max_events=config.history_max_events,
                    max_age_seconds=config.history_max_age_seconds,
                )
            except RedisError as exc:
                failure = ([r.id for r in rows[index:]], exc)
                break
            except Exception as exc:
                # Not Redis: this row cannot go out as it is; keep it for a look, go on with the rest.
                logger.exception("outbox: event #%s (%s on %s) could not be published", row.id, row.event, row.topic)
                _record_failure(using, [row.id], exc)
                stuck.add(row.id)
                continue
            sent.append(row.id)
        if sent:
            OutboxEvent.objects.using(using).filter(id__in=sent).delete()
            published += len(sent)
            metrics.incr("outbox.published", len(sent))
        if failure is not None:
            _record_failure(using, *failure)
            metrics.incr("outbox.redis_failures")
            logger.warning(
                "outbox: Redis unavailable (%s); %d event(s) kept for a later relay", failure[1], len(failure[0])
            )
            return published, True
    return published, False


def _record_failure(using: str, ids: list[int], exc: BaseException) -> None:
    error = f"{type(exc).__name__}: {exc}"[:_ERROR_CHARS]
    OutboxEvent.objects.using(using).filter(id__in=ids).update(attempts=F("attempts") + 1, last_error=error)


class OutboxRelay:
    """The process's relay task: woken by commits (thread-safe `wake`), sweeping every `sweep_seconds`.

    Runs `relay` passes one at a time on a worker thread of its own (its own database
    connection, never in a transaction), driven by an asyncio task on the server's loop.
    Signals that arrive during a pass are coalesced into one more pass.
    """

    def __init__(
        self,
        *,
        using: str = DEFAULT_DB_ALIAS,
        batch: int = DEFAULT_BATCH,
        sweep_seconds: float = SWEEP_SECONDS,
        retry_min_seconds: float = RETRY_MIN_SECONDS,
        retry_max_seconds: float = RETRY_MAX_SECONDS,
        redis_client: Any = None,
    ) -> None:
        self.using = using
        # None: the process's blocking client (`realtime.connections.get_sync_redis()`).
        self.redis_client = redis_client
        self.batch = batch
        self.sweep_seconds = sweep_seconds
        self.retry_min_seconds = retry_min_seconds
        self.retry_max_seconds = retry_max_seconds
        self.passes = 0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._wakeup: asyncio.Event | None = None
        self._task: asyncio.Task[None] | None = None
        self._executor: ThreadPoolExecutor | None = None
        self._stopping = False
        self._notices_delay = 0.0
        self._notices_retry_at = 0.0

    @property
    def running(self) -> bool:
        """True while the task runs on a live loop (so `wake` reaches it)."""
        loop = self._loop
        return (
            loop is not None
            and self._task is not None
            and not self._task.done()
            and not loop.is_closed()
            and loop.is_running()
        )

    def start(self) -> None:
        """Start the task on the running loop (call from a coroutine or a loop callback)."""
        if self.running:
            return
        loop = asyncio.get_running_loop()
        if self._executor is not None:
            # Left by a loop that closed without `stop`: its thread closes its connection and ends.
            self._executor.submit(db_connections.close_all)
            self._executor.shutdown(wait=False)
        self._loop = loop
        self._stopping = False
        self._wakeup = asyncio.Event()
        self._wakeup.set()  # first pass at once: whatever an earlier process left
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="outbox-relay")
        self._task = loop.create_task(self._run(), name="outbox-relay")
        logger.info("outbox relay task started (sweep every %.1f s)", self.sweep_seconds)

    def wake(self) -> bool:
        """Ask for a pass soon; from any thread. False when no task runs (the caller relays itself)."""
        loop, wakeup = self._loop, self._wakeup
        if wakeup is None or loop is None or not self.running:
            return False
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is loop:
            wakeup.set()
        else:
            try:
                loop.call_soon_threadsafe(wakeup.set)
            except RuntimeError:  # the loop closed just now
                return False
        return True

    async def stop(self) -> None:
        """Cancel the task, let a pass in flight finish, and close the worker's database connection."""
        task, executor = self._task, self._executor
        self._task = None
        self._stopping = True  # the loop ends even if a cancellation is swallowed by a wait in flight
        if self._wakeup is not None:
            self._wakeup.set()
        if task is not None:
            task.cancel()
            await asyncio.wait({task}, timeout=10)
        if executor is not None:
            self._executor = None
            await asyncio.get_running_loop().run_in_executor(executor, db_connections.close_all)
            executor.shutdown(wait=False)

    async def _run(self) -> None:
        assert self._wakeup is not None
        loop = asyncio.get_running_loop()
        delay = 0.0
        while not self._stopping:
            try:
                async with asyncio.timeout(self.sweep_seconds):
                    await self._wakeup.wait()
            except TimeoutError:
                pass
            if self._stopping:
                return
            self._wakeup.clear()
            try:
                outcome = await loop.run_in_executor(self._executor, self._pass)
            except asyncio.CancelledError:
                raise
            except (OperationalError, InterfaceError) as error:
                # The database connection was lost (a restart, `pg_terminate_backend`, a network
                # cut): expected, and `_pass` already dropped it. One line, not a traceback per pass.
                metrics.incr("outbox.relay_failed")
                logger.warning("outbox: relay pass failed, database connection lost (%s); retrying", error)
                outcome = RelayOutcome(0, redis_failed=True)
            except Exception:
                metrics.incr("outbox.relay_failed")
                logger.exception("outbox: relay pass failed; retrying")
                outcome = RelayOutcome(0, redis_failed=True)
            await self._notices_pass()
            if outcome.redis_failed:
                delay = min(self.retry_max_seconds, max(self.retry_min_seconds, delay * 2))
                await asyncio.sleep(delay)
                self._wakeup.set()  # try again after the delay, signal or not
            else:
                delay = 0.0

    async def _notices_pass(self) -> None:
        """A notice pass, unless backing off after a failed one (its own backoff: a MongoDB outage
        does not slow the change events down; the sweep wakes the task to retry)."""
        now = time.monotonic()
        if now < self._notices_retry_at:
            return
        if await self._deliver_notices():
            self._notices_delay = min(self.retry_max_seconds, max(self.retry_min_seconds, self._notices_delay * 2))
            self._notices_retry_at = now + self._notices_delay
        else:
            self._notices_delay = 0.0
            self._notices_retry_at = 0.0

    async def _deliver_notices(self) -> bool:
        """One notice pass (`apps.events.delivery`); True when it stopped on a failure."""
        loop = asyncio.get_running_loop()
        executor = self._executor

        async def on_relay_thread(function: Any) -> Any:
            return await loop.run_in_executor(executor, function)

        try:
            _, failed = await delivery.adeliver_pending(using=self.using, run_sync=on_relay_thread)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            metrics.incr("notices.pass_failed")
            logger.exception("notices: delivery pass failed; retrying")
            if isinstance(exc, DatabaseError) and executor is not None:
                # A fresh connection on the relay's thread next pass (as `_pass` does).
                executor.submit(lambda: db_connections[self.using].close())
            return True
        return failed

    def _pass(self) -> RelayOutcome:
        # The worker thread keeps its connection between passes (whatever CONN_MAX_AGE says for
        # requests): a pass costs no connect. A database error closes it; the next pass reconnects.
        connection = db_connections[self.using]
        self.passes += 1
        try:
            return relay(self.batch, using=self.using, client=self.redis_client)
        except DatabaseError:
            connection.close()  # a fresh connection next pass (the lock went with the old one)
            raise


# --- one relay per process -------------------------------------------------------------

_relay_lock = threading.Lock()
_relay: OutboxRelay | None = None
_inline_backoff: tuple[object, float] | None = None  # (the realtime settings in force, monotonic deadline)


def install(instance: OutboxRelay | None) -> None:
    """Make `instance` the process's relay that commits signal (None: relay inline)."""
    global _relay
    with _relay_lock:
        _relay = instance


def current() -> OutboxRelay | None:
    """The process's relay, if one was installed."""
    return _relay


def after_commit(using: str = DEFAULT_DB_ALIAS) -> None:
    """Run by `on_commit` after a transaction that wrote outbox rows: signal the task, or relay here.

    Never raises into the committed request.
    """
    instance = _relay
    if instance is not None and instance.using == using and instance.wake():
        return
    if _inline_backing_off():
        return  # the servers' sweeps retry; a later commit after the backoff too
    try:
        outcome = relay(using=using)
    except Exception:
        logger.exception("outbox: relay after commit failed; rows stay for a later relay")
        return
    _set_inline_backoff(outcome.redis_failed)


def _inline_backing_off() -> bool:
    with _relay_lock:
        backoff = _inline_backoff
    return backoff is not None and backoff[0] is connections.current_settings() and time.monotonic() < backoff[1]


def _set_inline_backoff(failed: bool) -> None:
    global _inline_backoff
    with _relay_lock:
        if failed:
            _inline_backoff = (connections.current_settings(), time.monotonic() + INLINE_BACKOFF_SECONDS)
        else:
            _inline_backoff = None
