"""Presence of this process's sockets: online/away/offline changes told to the user's conversations,
and maintenance staff kept in `maintenance:active:workers` while they have a socket open.
"""

import asyncio
import logging
import time

from redis.exceptions import RedisError

from realtime import metrics, topics
from realtime.directory import Directory
from realtime.history import RedisHistory
from realtime.presence.base import PresenceStore
from realtime.session import SocketSession
from realtime.workers import ActiveWorkers

logger = logging.getLogger(__name__)


def _failed(exc: Exception, message: str, count: int) -> None:
    """Count a failed presence batch and log it once: a Redis fault (down, stalled, restarting) is
    expected and gets one line without a traceback; anything else is a bug and keeps its traceback."""
    metrics.incr("presence.failed")
    if isinstance(exc, RedisError):
        logger.warning(message + " (%r)", count, exc)
    else:
        logger.warning(message, count, exc_info=exc)


WORKER_ROLE = "maintenance_staff"
# A command refreshes `lastActive` at most this often per socket (not a Redis call per frame).
ACTIVITY_REFRESH_SECONDS = 15.0
# Heartbeats and closes go to the store this many sockets per pipelined round trip.
HEARTBEAT_BATCH = 500
# A burst of closes whose store write fails is written again after these pauses (seconds),
# then given up with one error for the burst: Redis restarting, a pool momentarily short.
CLOSE_RETRY_DELAYS = (0.2, 0.5, 1.0, 2.0, 4.0)


class PresenceTracker:
    """Drives the presence store from socket life: open, activity, heartbeat, close. Never raises."""

    def __init__(
        self,
        presence: PresenceStore,
        *,
        history: RedisHistory,
        directory: Directory,
        workers: ActiveWorkers | None = None,
    ) -> None:
        self.presence = presence
        self.history = history
        self.directory = directory
        self.workers = workers
        self._last_activity: dict[str, float] = {}
        self._pending_opens: list[tuple[SocketSession, asyncio.Future[None]]] = []
        self._in_flight: list[tuple[SocketSession, asyncio.Future[None]]] = []
        self._flushing: asyncio.Task[None] | None = None
        self._pending_closes: list[tuple[SocketSession, asyncio.Future[None]]] = []
        self._closing: asyncio.Task[None] | None = None
        self._pending_active: list[SocketSession] = []
        self._activating: asyncio.Future[None] | None = None
        # Connection ids closed while a heartbeat runs: its touch (which re-registers a socket)
        # may reach Redis after their disconnect (a stalled Redis answers both late), so they are
        # unregistered again once it is done; else the user would stay `online` for the TTL.
        self._closed_during_heartbeat: set[str] | None = None

    def open_later(self, session: SocketSession) -> asyncio.Future[None]:
        """Register the socket with the sockets opening in the same loop turns: one round trip
        for the burst, one membership lookup and one publish pipeline for whoever came online.
        The future is done once this socket's registration is (successful or logged)."""
        # `connect` marks activity now, so the socket's first command need not touch again.
        self._last_activity[session.conn_id] = time.monotonic()
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._pending_opens.append((session, done))
        if self._flushing is None or self._flushing.done():
            self._flushing = asyncio.ensure_future(self._flush_opens())
        return done

    async def _flush_opens(self) -> None:
        await asyncio.sleep(0)  # let the other sockets accepted in this loop turn join the batch
        while self._pending_opens:
            batch, self._pending_opens = self._pending_opens, []
            self._in_flight = batch
            try:
                sessions = [session for session, _ in batch]
                changed = await self.presence.connect_many([(s.identity.user_id, s.conn_id) for s in sessions])
                await self._announce_many(
                    [s.identity.user_id for s, came in zip(sessions, changed, strict=True) if came]
                )
                if self.workers is not None:
                    for session in sessions:
                        if WORKER_ROLE in session.identity.roles:
                            await self.workers.join(session.identity.user_id)
            except Exception as exc:  # the heartbeat registers them again
                _failed(exc, "presence update failed for %d opening sockets", len(batch))
            finally:
                self._in_flight = []
                metrics.incr("presence.opens_settled", len(batch))
                for _, done in batch:
                    if not done.done():
                        done.set_result(None)

    async def active(self, session: SocketSession) -> None:
        """A command came: refresh `lastActive` (rate-limited per socket), off the command's path.

        The refreshes of one loop turn go out together (one round trip per `HEARTBEAT_BATCH`,
        then one announcement for the users who came back from `away`); the command does not
        wait for them. `activity_flushed()` waits until those queued so far are written.
        """
        now = time.monotonic()
        if now - self._last_activity.get(session.conn_id, 0.0) < ACTIVITY_REFRESH_SECONDS:
            return
        self._last_activity[session.conn_id] = now
        self._pending_active.append(session)
        if self._activating is None or self._activating.done():
            self._activating = asyncio.ensure_future(self._flush_active())

    async def activity_flushed(self) -> None:
        """Returns once every activity refresh queued so far was written (or failed and logged)."""
        while self._activating is not None and not self._activating.done():
            await asyncio.shield(self._activating)

    async def _flush_active(self) -> None:
        await asyncio.sleep(0)  # the other commands of this loop turn join the batch
        while self._pending_active:
            # A socket closed meanwhile is left out: its refresh would register it again.
            batch = [s for s in self._pending_active if s.conn_id in self._last_activity]
            self._pending_active = []
            for start in range(0, len(batch), HEARTBEAT_BATCH):
                chunk = batch[start : start + HEARTBEAT_BATCH]
                try:
                    changed = await self.presence.touch_many([(s.identity.user_id, s.conn_id, True) for s in chunk])
                    await self._announce_many(
                        sorted({s.identity.user_id for s, flag in zip(chunk, changed, strict=True) if flag})
                    )
                except Exception as exc:
                    _failed(exc, "presence refresh failed for %d active sockets", len(chunk))

    async def heartbeat(self, sessions: list[SocketSession]) -> None:
        """Keep every local socket registered; announce users who turned away. Sockets that close
        while it runs are unregistered again after it (`_closed_during_heartbeat`)."""
        closed: set[str] = set()
        self._closed_during_heartbeat = closed
        try:
            await self._heartbeat(sessions)
        finally:
            self._closed_during_heartbeat = None
        late = [session for session in sessions if session.conn_id in closed]
        if late:
            await asyncio.gather(*(self.closed(session) for session in late))

    async def _heartbeat(self, sessions: list[SocketSession]) -> None:
        announced: set[str] = set()
        for start in range(0, len(sessions), HEARTBEAT_BATCH):
            chunk = sessions[start : start + HEARTBEAT_BATCH]
            try:
                changed = await self.presence.touch_many([(s.identity.user_id, s.conn_id, False) for s in chunk])
                turned = {s.identity.user_id for s, flag in zip(chunk, changed, strict=True) if flag} - announced
                announced |= turned
                await self._announce_many(sorted(turned))
                if self.workers is not None:
                    for session in chunk:
                        if WORKER_ROLE in session.identity.roles:
                            await self.workers.heartbeat(session.identity.user_id)
            except Exception as exc:  # the next round registers the sockets again
                _failed(exc, "presence heartbeat failed for %d sockets", len(chunk))
        if self.workers is not None:
            try:
                await self.workers.sweep()
            except RedisError as exc:
                logger.warning("worker sweep failed (%r)", exc)
            except Exception:
                logger.warning("worker sweep failed", exc_info=True)

    async def closed(self, session: SocketSession) -> None:
        """The socket closed: unregister it with the sockets closing in the same loop turns (one
        round trip per `HEARTBEAT_BATCH` of a burst, retried, one log line per burst), and tell
        the conversations of whoever went offline. Returns once this socket's write is done
        (successful or given up and logged)."""
        self._last_activity.pop(session.conn_id, None)
        if self._closed_during_heartbeat is not None:
            self._closed_during_heartbeat.add(session.conn_id)
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._pending_closes.append((session, done))
        if self._closing is None or self._closing.done():
            self._closing = asyncio.ensure_future(self._flush_closes())
        await asyncio.shield(done)

    async def _flush_closes(self) -> None:
        await asyncio.sleep(0)  # let the other sockets closed in this loop turn join the batch
        while self._pending_closes:
            batch, self._pending_closes = self._pending_closes, []
            try:
                for start in range(0, len(batch), HEARTBEAT_BATCH):
                    await self._close_chunk([session for session, _ in batch[start : start + HEARTBEAT_BATCH]])
            finally:
                for _, done in batch:
                    if not done.done():
                        done.set_result(None)

    async def _close_chunk(self, sessions: list[SocketSession]) -> None:
        users = {s.identity.user_id for s in sessions}
        # Another socket of a user still registering would be missed by the disconnect's
        # "was that the last live socket?" check, and the user announced offline.
        opening = [
            done
            for other, done in (*self._in_flight, *self._pending_opens)
            if other.identity.user_id in users and not done.done()
        ]
        if opening:
            await asyncio.wait(opening)
        if self._activating is not None and not self._activating.done():
            await asyncio.wait({self._activating})  # a refresh in flight must not follow the close
        sockets = [(s.identity.user_id, s.conn_id) for s in sessions]
        gone: list[bool] | None = None
        for attempt, delay in enumerate((*CLOSE_RETRY_DELAYS, None)):
            try:
                gone = await self.presence.disconnect_many(sockets)  # idempotent: safe to write again
                break
            except Exception as exc:
                metrics.incr("presence.failed")
                if delay is None:
                    logger.error(
                        "presence update failed for %d closing sockets after %d attempts; their users count "
                        "as online until their registrations expire",
                        len(sockets),
                        attempt + 1,
                        exc_info=True,
                    )
                    return
                if attempt == 0:
                    logger.warning(
                        "presence update failed for %d closing sockets (%s: %s); retrying",
                        len(sockets),
                        type(exc).__name__,
                        exc,
                    )
                await asyncio.sleep(delay)
        if gone is None:
            return
        offline = sorted({s.identity.user_id for s, flag in zip(sessions, gone, strict=True) if flag})
        try:
            await self._announce_many(offline)
            if self.workers is not None:
                for session, flag in zip(sessions, gone, strict=True):
                    if flag and WORKER_ROLE in session.identity.roles:
                        await self.workers.leave(session.identity.user_id)
        except Exception as exc:
            _failed(exc, "telling %d users' conversations they went offline failed", len(offline))

    async def _announce(self, user_id: str) -> None:
        await self._announce_many([user_id])

    async def _announce_many(self, user_ids: list[str]) -> None:
        """Tell each conversation of the users their new status (ephemeral: never stored)."""
        if not user_ids:
            return
        infos = await self.presence.query(user_ids)
        conversations = await self.directory.conversations_of_many(list(infos))
        events = []
        for user_id, info in infos.items():
            data = {"userId": user_id, "status": info["status"], "lastActive": info["lastActive"]}
            for conversation_id in conversations.get(user_id, ()):
                events.append((topics.chat_messages(conversation_id), "presence", data))
        await self.history.publish_ephemeral_many(events)
