"""Presence on Redis, shared by every server process; each change is one atomic Lua script."""

import time
from collections.abc import Callable
from pathlib import Path

import redis.asyncio as aredis

from realtime.keys import chat_presence, chat_presence_connections
from realtime.pipelined import evalsha_many, round_trip, tick_pipeline
from realtime.presence.base import PresenceInfo, PresenceSettings, compute_status, iso_ms

_LUA = Path(__file__).resolve().parent.parent / "lua"


def _script(name: str) -> str:
    """A presence script with the shared prelude (presence_lib.lua) in front: one chunk, one EVALSHA."""
    return (_LUA / "presence_lib.lua").read_text() + "\n" + (_LUA / f"presence_{name}.lua").read_text()


_CONNECT, _TOUCH, _DISCONNECT = _script("connect"), _script("touch"), _script("disconnect")


def _flags(replies: list[object]) -> list[bool]:
    for reply in replies:
        if isinstance(reply, Exception):
            raise reply
    return [bool(reply) for reply in replies]


class RedisPresence:
    """`PresenceStore` on Redis: a user's sockets on any process count, and a dead process's sockets
    stop counting when their registrations expire (`settings.ttl_seconds`), with no call needed."""

    def __init__(
        self,
        redis: aredis.Redis,
        settings: PresenceSettings | None = None,
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        """`redis` must decode responses to str; `clock` gives epoch seconds (shared by all processes)."""
        self.settings = settings or PresenceSettings()
        self._redis = redis
        self._clock = clock
        self._connect = redis.register_script(_CONNECT)
        self._touch = redis.register_script(_TOUCH)
        self._disconnect = redis.register_script(_DISCONNECT)

    def _args(self, conn_id: str, times: tuple[int, str, str] | None = None) -> list[str | int]:
        now_ms, now_iso, away_cutoff = times or self._times()
        return [now_ms, self.settings.ttl_ms, conn_id, now_iso, away_cutoff]

    def _times(self) -> tuple[int, str, str]:
        """Now (ms), now as ISO and the away cutoff: computed once for a whole batch."""
        now_ms = int(self._clock() * 1000)
        return now_ms, iso_ms(now_ms), iso_ms(now_ms - self.settings.away_after_ms)

    async def connect(self, user_id: str, conn_id: str) -> bool:
        """Register a live socket and mark activity now; True when the user was not `online` before."""
        keys = [chat_presence(user_id), chat_presence_connections(user_id)]
        return bool(await self._connect(keys=keys, args=self._args(conn_id)))

    async def touch(self, user_id: str, conn_id: str, active: bool) -> bool:
        """Heartbeat (re-registers an expired socket); `active` sets lastActive to now. True on a status change."""
        keys = [chat_presence(user_id), chat_presence_connections(user_id)]
        return bool(await self._touch(keys=keys, args=[*self._args(conn_id), "1" if active else "0"]))

    async def connect_many(self, sockets: list[tuple[str, str]]) -> list[bool]:
        """`connect` for each (user id, connection id), in order, in one pipelined round trip."""
        if not sockets:
            return []
        times = self._times()
        calls = [
            ([chat_presence(user_id), chat_presence_connections(user_id)], self._args(conn_id, times))
            for user_id, conn_id in sockets
        ]
        return _flags(await evalsha_many(self._redis, self._connect, calls))

    async def touch_many(self, sockets: list[tuple[str, str, bool]]) -> list[bool]:
        """`touch` for each (user id, connection id, active), in order, in one pipelined round trip."""
        if not sockets:
            return []
        times = self._times()
        calls = [
            (
                [chat_presence(user_id), chat_presence_connections(user_id)],
                [*self._args(conn_id, times), "1" if active else "0"],
            )
            for user_id, conn_id, active in sockets
        ]
        return _flags(await evalsha_many(self._redis, self._touch, calls))

    async def disconnect(self, user_id: str, conn_id: str) -> bool:
        """Drop a socket; True when no live socket remains and the user was not already marked offline."""
        keys = [chat_presence(user_id), chat_presence_connections(user_id)]
        # Sockets closing in one loop tick (a client fleet dropping at once) share one round trip.
        return bool(await tick_pipeline(self._redis).evalsha(self._disconnect, keys, self._args(conn_id)))

    async def disconnect_many(self, sockets: list[tuple[str, str]]) -> list[bool]:
        """`disconnect` for each (user id, connection id), in order, in one pipelined round trip."""
        if not sockets:
            return []
        times = self._times()
        calls = [
            ([chat_presence(user_id), chat_presence_connections(user_id)], self._args(conn_id, times))
            for user_id, conn_id in sockets
        ]
        return _flags(await evalsha_many(self._redis, self._disconnect, calls))

    async def query(self, user_ids: list[str]) -> dict[str, PresenceInfo]:
        """Status and lastActive of each user (one round trip); unknown or expired users are `offline`."""
        unique = list(dict.fromkeys(user_ids))
        if not unique:
            return {}
        now_ms = int(self._clock() * 1000)
        away_cutoff = iso_ms(now_ms - self.settings.away_after_ms)
        # The lean path (hiredis packing, one checkout): a burst of opens asks this for every user
        # who came online, and redis-py's pipeline spent ~7 % of the connect path's CPU packing it.
        commands: list[tuple[str, ...]] = []
        for user_id in unique:
            commands.append(("HMGET", chat_presence(user_id), "status", "lastActive"))
            commands.append(("ZCOUNT", chat_presence_connections(user_id), f"({now_ms}", "+inf"))
        replies = await round_trip(self._redis, commands)
        for reply in replies:
            if isinstance(reply, Exception):
                raise reply
        answer: dict[str, PresenceInfo] = {}
        for index, user_id in enumerate(unique):
            stored, last_active = replies[2 * index]
            live = int(replies[2 * index + 1]) > 0
            status = compute_status(stored=stored, last_active=last_active, live=live, away_cutoff=away_cutoff)
            answer[user_id] = {"status": status, "lastActive": last_active}
        return answer
