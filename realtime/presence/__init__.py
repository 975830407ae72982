"""Presence of users over all their sockets: the `PresenceStore` interface and its two stores."""

from realtime.presence.base import (
    AWAY,
    OFFLINE,
    ONLINE,
    PresenceInfo,
    PresenceSettings,
    PresenceStore,
)
from realtime.presence.memory import MemoryPresence
from realtime.presence.redis import RedisPresence

__all__ = [
    "AWAY",
    "OFFLINE",
    "ONLINE",
    "MemoryPresence",
    "PresenceInfo",
    "PresenceSettings",
    "PresenceStore",
    "RedisPresence",
]
