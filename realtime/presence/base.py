"""Presence: who is online, away or offline, counted over every socket of a user on every process.

A user is `online` while any of their sockets is live and a command came within
`away_after` seconds, `away` while a socket is live but idle, and `offline` once the last
socket disconnected or every live socket's registration expired (its server process died).
"""

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Protocol, TypedDict

ONLINE = "online"
AWAY = "away"
OFFLINE = "offline"
STATUSES = (ONLINE, AWAY, OFFLINE)

# The seed's presence hash TTL and PROTOCOL.md's idle time before `away`.
DEFAULT_TTL_SECONDS = 300.0
DEFAULT_AWAY_AFTER_SECONDS = 300.0


class PresenceInfo(TypedDict):
    """One user's answer to `presence.query`: status, and lastActive (ISO 8601 UTC) or None when unknown."""

    status: str
    lastActive: str | None


@dataclass(frozen=True)
class PresenceSettings:
    """Timings of presence; tests shorten them and still run real expiry.

    `ttl_seconds` bounds both the presence hash and each socket's registration: a socket
    must `touch` more often than that (the server's heartbeat) or it counts as gone.
    """

    ttl_seconds: float = DEFAULT_TTL_SECONDS
    away_after_seconds: float = DEFAULT_AWAY_AFTER_SECONDS

    def __post_init__(self) -> None:
        if self.ttl_seconds < 0.01 or self.away_after_seconds < 0:
            raise ValueError("presence ttl must be >= 10 ms and away_after >= 0")

    @property
    def ttl_ms(self) -> int:
        return max(1, int(self.ttl_seconds * 1000))

    @property
    def away_after_ms(self) -> int:
        return int(self.away_after_seconds * 1000)


def iso_ms(epoch_ms: int) -> str:
    """Fixed-width ISO 8601 UTC with milliseconds (`2026-01-02T03:04:05.678Z`): sorts as time does."""
    moment = datetime.fromtimestamp(epoch_ms / 1000, tz=UTC)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def compute_status(*, stored: str | None, last_active: str | None, live: bool, away_cutoff: str) -> str:
    """The status the protocol reports from a stored status, lastActive and whether any socket is live."""
    if stored is None or stored == OFFLINE or not live:
        return OFFLINE
    if last_active is None or last_active < away_cutoff:
        return AWAY
    return ONLINE


class PresenceStore(Protocol):
    """Multi-device presence; every method is atomic per user, across processes for shared stores.

    Connection ids must be unique per socket (across processes). The caller touches each
    live socket more often than `ttl_seconds`; a socket that stops touching (its process
    died) stops counting after `ttl_seconds` with no call at all.
    """

    settings: PresenceSettings

    async def connect(self, user_id: str, conn_id: str) -> bool:
        """Register a live socket and mark activity now; True when the user was not `online` before."""
        ...

    async def touch(self, user_id: str, conn_id: str, active: bool) -> bool:
        """Heartbeat of a live socket (re-registering it if it had expired); `active` means a command
        came, so lastActive becomes now. True when the user's status changed with this call."""
        ...

    async def connect_many(self, sockets: list[tuple[str, str]]) -> list[bool]:
        """`connect` for each (user id, connection id), in order: one round trip for a burst of opens."""
        ...

    async def touch_many(self, sockets: list[tuple[str, str, bool]]) -> list[bool]:
        """`touch` for each (user id, connection id, active), in order: one round trip per heartbeat batch."""
        ...

    async def disconnect(self, user_id: str, conn_id: str) -> bool:
        """Drop a socket; True when no live socket remains and the user was not already marked offline
        (by an earlier disconnect, or by expiry). lastActive is kept until the hash expires."""
        ...

    async def disconnect_many(self, sockets: list[tuple[str, str]]) -> list[bool]:
        """`disconnect` for each (user id, connection id), in order: one round trip for a burst of closes."""
        ...

    async def query(self, user_ids: list[str]) -> dict[str, PresenceInfo]:
        """Status and lastActive of each user; unknown or expired users are `offline`."""
        ...
