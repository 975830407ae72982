"""Per-socket state the core keeps: who is connected, with which codec, and their limits."""

import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime

from realtime.config import RealtimeSettings
from realtime.hub import Connection


@dataclass(frozen=True)
class Identity:
    """The authenticated user of one socket (what the core needs of the principal)."""

    user_id: str
    user_type: str
    session_id: str
    expires_at: datetime
    roles: tuple[str, ...] = ()


class CommandBudget:
    """Token bucket per socket: `rate` commands/s sustained, `burst` at once.

    `refused_for()` tells how long the socket has stayed over the limit: a streak of
    refusals that starts at the first refusal and ends only once a whole second passes
    without one (the protocol closes with 4429 past a bound).
    """

    __slots__ = ("rate", "burst", "_tokens", "_stamp", "_refusing_since", "_last_refusal")

    def __init__(self, rate: float, burst: int) -> None:
        self.rate = rate
        self.burst = burst
        self._tokens = float(burst)
        self._stamp = time.monotonic()
        self._refusing_since: float | None = None
        self._last_refusal = 0.0

    def take(self) -> bool:
        now = time.monotonic()
        self._tokens = min(self.burst, self._tokens + (now - self._stamp) * self.rate)
        self._stamp = now
        if self._refusing_since is not None and now - self._last_refusal > 1.0:
            self._refusing_since = None
        if self._tokens >= 1.0:
            self._tokens -= 1.0
            return True
        if self._refusing_since is None:
            self._refusing_since = now
        self._last_refusal = now
        return False

    def retry_after(self) -> float:
        return max(0.0, (1.0 - self._tokens) / self.rate)

    def refused_for(self) -> float:
        if self._refusing_since is None or time.monotonic() - self._last_refusal > 1.0:
            return 0.0
        return time.monotonic() - self._refusing_since


class StrikeCounter:
    """Counts events within a sliding window (oversize frames: the third in 60 s closes)."""

    __slots__ = ("limit", "window", "_times")

    def __init__(self, limit: int, window: float) -> None:
        self.limit = limit
        self.window = window
        self._times: deque[float] | None = None  # made at the first strike (an empty deque is 760 bytes)

    def strike(self) -> bool:
        """Record one; True when the limit is reached."""
        now = time.monotonic()
        if self._times is None:
            self._times = deque()
        self._times.append(now)
        while self._times and now - self._times[0] > self.window:
            self._times.popleft()
        return len(self._times) >= self.limit


@dataclass(eq=False)
class SocketSession:
    """One open, authenticated socket: its hub connection, identity and limits."""

    conn: Connection
    identity: Identity
    settings: RealtimeSettings
    closer: Callable[[int], Awaitable[None]]
    budget: CommandBudget = field(init=False)
    oversize: StrikeCounter = field(init=False)
    last_command_at: float = field(default_factory=time.monotonic)

    def __post_init__(self) -> None:
        self.budget = CommandBudget(self.settings.commands_per_second, self.settings.command_burst)
        self.oversize = StrikeCounter(self.settings.too_large_strikes, self.settings.too_large_window_seconds)

    def touch(self) -> None:
        """A command came from this socket (presence: not idle)."""
        self.last_command_at = time.monotonic()

    async def close(self, code: int) -> None:
        """Close the socket with `code`."""
        await self.closer(code)

    @property
    def conn_id(self) -> str:
        return self.conn.id

    @property
    def user_id(self) -> str:
        return self.identity.user_id
