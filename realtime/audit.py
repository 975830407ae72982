"""Re-checking a process's sockets after its control channel was deaf (a broker reconnect).

Control messages (`session.revoked`, `session.rotated`, `access.changed`,
`permissions.changed`) are plain PUBLISHes on `pms:control`, and Redis keeps no copy: one
published while this process's pub/sub connection was down, or up again but not yet
resubscribed, reaches none of its sockets. Those messages cut access, so losing one is a
security hole (a revoked session keeps its socket, a tenant who moved out keeps receiving).
Their publishers cannot know which processes missed them (the revocations relay keeps its
rows while Redis refuses the PUBLISH, but a PUBLISH Redis took may still have reached
nobody here), so the deaf side repairs it: after every (re)connect of the broker, the
process asks once, for all its sockets together, which of their sessions still live (and
until when) and which of their subscriptions are still allowed, decided from the source of
truth (PostgreSQL, never a cache an outage may have left stale), then closes the revoked
sockets (4409), shortens the rotated sessions (closed 4401 at their new end) and
unsubscribes the forbidden topics (`unsubscribed`, reason `forbidden`), as the lost
messages would have.

Cost: one batched check per reconnect (one query for the sessions, the access policy's
batched decisions for the topics: `apps.messaging.topic_access.topic_allowed_many`), not
one per socket, and none while the connection holds.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol

from realtime.topics import Topic


@dataclass(frozen=True)
class Holding:
    """What one socket holds: its session, its user and the topics it is subscribed to."""

    session_id: str
    user_id: str
    topics: tuple[Topic, ...]


@dataclass(frozen=True)
class Verdict:
    """The source of truth's answer for a batch of holdings."""

    # Sessions that still exist with their user active: their current expiry (the runtime's
    # expiry sweep closes those past it with 4401). Absent: revoked or the user deactivated.
    sessions: dict[str, datetime]
    # (user id, topic name) pairs the user may no longer subscribe to.
    denied: frozenset[tuple[str, str]] = field(default_factory=frozenset)


class Auditor(Protocol):
    """Decides, from the source of truth and in one batch, what the holdings may keep."""

    async def audit(self, holdings: Sequence[Holding]) -> Verdict: ...
