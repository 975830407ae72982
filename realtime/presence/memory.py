"""Presence in one process's memory, for a single server process and unit tests.

Same rules as the Redis store (realtime/lua/presence_*.lua), step for step; every method
runs without awaiting, so it is atomic on one event loop. Not shared across processes.
"""

import time
from collections.abc import Callable
from dataclasses import dataclass, field

from realtime.presence.base import AWAY, OFFLINE, ONLINE, PresenceInfo, PresenceSettings, compute_status, iso_ms


@dataclass
class _UserPresence:
    """What Redis holds for one user: the hash (status, lastActive, expiry) and the socket registrations."""

    status: str | None = None
    last_active: str | None = None
    expires_ms: int = 0
    connections: dict[str, int] = field(default_factory=dict)


class MemoryPresence:
    """`PresenceStore` in memory: the Redis store's semantics, expiry included, for one process."""

    def __init__(self, settings: PresenceSettings | None = None, *, clock: Callable[[], float] = time.time) -> None:
        self.settings = settings or PresenceSettings()
        self._clock = clock
        self._users: dict[str, _UserPresence] = {}
        self._pruned_ms = 0

    def _now(self) -> tuple[int, str, str]:
        now_ms = int(self._clock() * 1000)
        if now_ms - self._pruned_ms >= self.settings.ttl_ms:
            self._prune(now_ms)
        return now_ms, iso_ms(now_ms), iso_ms(now_ms - self.settings.away_after_ms)

    def _prune(self, now_ms: int) -> None:
        """Drop every user whose hash and sockets all expired (at most once per ttl: memory stays bounded)."""
        self._pruned_ms = now_ms
        for user_id in list(self._users):
            self._forget_if_empty(user_id, self._state(user_id, now_ms))

    def _state(self, user_id: str, now_ms: int) -> _UserPresence:
        """The user's entry with expired registrations pruned, and the hash dropped if it expired."""
        state = self._users.setdefault(user_id, _UserPresence())
        state.connections = {conn: expiry for conn, expiry in state.connections.items() if expiry > now_ms}
        if state.expires_ms <= now_ms:
            state.status = state.last_active = None
        return state

    @staticmethod
    def _announced(state: _UserPresence) -> str:
        """The status last written (what was announced); offline with no live socket.

        A change is reported when the new status differs from this one or from the computed
        one (presence_lib.lua says why both)."""
        if state.status is None or not state.connections:
            return OFFLINE
        return state.status

    @staticmethod
    def _status(state: _UserPresence, away_cutoff: str) -> str:
        live = bool(state.connections)
        return compute_status(stored=state.status, last_active=state.last_active, live=live, away_cutoff=away_cutoff)

    async def connect(self, user_id: str, conn_id: str) -> bool:
        """Register a live socket and mark activity now; True when the user was not `online` before."""
        now_ms, now_iso, away_cutoff = self._now()
        state = self._state(user_id, now_ms)
        before = {self._status(state, away_cutoff), self._announced(state)}
        state.connections[conn_id] = now_ms + self.settings.ttl_ms
        state.status, state.last_active = ONLINE, now_iso
        state.expires_ms = now_ms + self.settings.ttl_ms
        return before != {ONLINE}

    async def touch(self, user_id: str, conn_id: str, active: bool) -> bool:
        """Heartbeat (re-registers an expired socket); `active` sets lastActive to now. True on a status change."""
        now_ms, now_iso, away_cutoff = self._now()
        state = self._state(user_id, now_ms)
        before = {self._status(state, away_cutoff), self._announced(state)}
        state.connections[conn_id] = now_ms + self.settings.ttl_ms
        if active or state.last_active is None:
            state.last_active = now_iso
        state.status = AWAY if state.last_active < away_cutoff else ONLINE
        state.expires_ms = now_ms + self.settings.ttl_ms
        return before != {state.status}

    async def connect_many(self, sockets: list[tuple[str, str]]) -> list[bool]:
        """`connect` for each (user id, connection id), in order."""
        return [await self.connect(user_id, conn_id) for user_id, conn_id in sockets]

    async def touch_many(self, sockets: list[tuple[str, str, bool]]) -> list[bool]:
        """`touch` for each (user id, connection id, active), in order."""
        return [await self.touch(user_id, conn_id, active) for user_id, conn_id, active in sockets]

    async def disconnect_many(self, sockets: list[tuple[str, str]]) -> list[bool]:
        """`disconnect` for each (user id, connection id), in order."""
        return [await self.disconnect(user_id, conn_id) for user_id, conn_id in sockets]

    async def disconnect(self, user_id: str, conn_id: str) -> bool:
        """Drop a socket; True when no live socket remains and the user was not already marked offline."""
        now_ms, _, _ = self._now()
        state = self._state(user_id, now_ms)
        state.connections.pop(conn_id, None)
        if state.connections or state.status in (None, OFFLINE):
            self._forget_if_empty(user_id, state)
            return False
        state.status = OFFLINE
        state.expires_ms = now_ms + self.settings.ttl_ms
        return True

    async def query(self, user_ids: list[str]) -> dict[str, PresenceInfo]:
        """Status and lastActive of each user; unknown or expired users are `offline`."""
        now_ms, _, away_cutoff = self._now()
        answer: dict[str, PresenceInfo] = {}
        for user_id in dict.fromkeys(user_ids):
            state = self._users.get(user_id)
            if state is None:
                answer[user_id] = {"status": OFFLINE, "lastActive": None}
                continue
            state = self._state(user_id, now_ms)
            answer[user_id] = {"status": self._status(state, away_cutoff), "lastActive": state.last_active}
            self._forget_if_empty(user_id, state)
        return answer

    def _forget_if_empty(self, user_id: str, state: _UserPresence) -> None:
        """Free users whose hash expired and who have no live socket, as Redis expiry would."""
        if state.status is None and not state.connections:
            self._users.pop(user_id, None)
