"""Presence of this process's sockets: online/away/offline changes told to the user's conversations,
and maintenance staff kept in `maintenance:active:workers` while they have a socket open.
"""

import logging
import time

from realtime import metrics, topics
from realtime.directory import Directory
from realtime.history import RedisHistory
from realtime.presence.base import PresenceStore
from realtime.session import SocketSession
from realtime.workers import ActiveWorkers

logger = logging.getLogger(__name__)

WORKER_ROLE = "maintenance_staff"
# A command refreshes `lastActive` at most this often per socket (not a Redis call per frame).
ACTIVITY_REFRESH_SECONDS = 15.0


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

    async def opened(self, session: SocketSession) -> None:
        user_id = session.identity.user_id
        try:
            if await self.presence.connect(user_id, session.conn_id):
                await self._announce(user_id)
            if self.workers is not None and WORKER_ROLE in session.identity.roles:
                await self.workers.join(user_id)
        except Exception:
            metrics.incr("presence.failed")
            logger.warning("presence update failed for %s on open", user_id, exc_info=True)
        self._last_activity[session.conn_id] = time.monotonic()

    async def active(self, session: SocketSession) -> None:
        """A command came: refresh `lastActive` (rate-limited per socket)."""
        now = time.monotonic()
        if now - self._last_activity.get(session.conn_id, 0.0) < ACTIVITY_REFRESH_SECONDS:
            return
        self._last_activity[session.conn_id] = now
        try:
            if await self.presence.touch(session.identity.user_id, session.conn_id, True):
                await self._announce(session.identity.user_id)
        except Exception:
            metrics.incr("presence.failed")
            logger.warning("presence refresh failed for %s", session.identity.user_id, exc_info=True)

    async def heartbeat(self, sessions: list[SocketSession]) -> None:
        """Keep every local socket registered; announce users who turned away."""
        announced: set[str] = set()
        for session in sessions:
            user_id = session.identity.user_id
            try:
                changed = await self.presence.touch(user_id, session.conn_id, False)
                if changed and user_id not in announced:
                    announced.add(user_id)
                    await self._announce(user_id)
                if self.workers is not None and WORKER_ROLE in session.identity.roles:
                    await self.workers.heartbeat(user_id)
            except Exception:
                metrics.incr("presence.failed")
                logger.warning("presence heartbeat failed for %s", user_id, exc_info=True)
        if self.workers is not None:
            try:
                await self.workers.sweep()
            except Exception:
                logger.warning("worker sweep failed", exc_info=True)

    async def closed(self, session: SocketSession) -> None:
        user_id = session.identity.user_id
        self._last_activity.pop(session.conn_id, None)
        try:
            if await self.presence.disconnect(user_id, session.conn_id):
                await self._announce(user_id)
                if self.workers is not None and WORKER_ROLE in session.identity.roles:
                    await self.workers.leave(user_id)
        except Exception:
            metrics.incr("presence.failed")
            logger.warning("presence update failed for %s on close", user_id, exc_info=True)

    async def _announce(self, user_id: str) -> None:
        """Tell each conversation of the user its new status (ephemeral: never stored)."""
        info = (await self.presence.query([user_id]))[user_id]
        data = {"userId": user_id, "status": info["status"], "lastActive": info["lastActive"]}
        for conversation_id in await self.directory.conversations_of(user_id):
            await self.history.publish_ephemeral(topics.chat_messages(conversation_id), "presence", data)
