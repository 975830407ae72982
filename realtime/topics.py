"""Pub/sub channel names: exactly the schema design's, plus the servers' own control channel."""

import re
import uuid
from dataclasses import dataclass
from typing import Protocol

SYSTEM_BROADCASTS = "system:broadcasts"
# Per-connection control between server processes (session revoked, ...); not a client topic.
CONTROL_CHANNEL = "pms:control"


def notifications(user_id: str) -> str:
    return f"notifications:{user_id}"


def chat_messages(conversation_id: str) -> str:
    return f"chat:messages:{conversation_id}"


def maintenance_updates(property_id: str) -> str:
    return f"maintenance:updates:{property_id}"


def property_changes(property_id: str) -> str:
    return f"property:changes:{property_id}"


def unit_changes(unit_id: str) -> str:
    return f"unit:changes:{unit_id}"


def lease_changes(lease_id: str) -> str:
    return f"lease:changes:{lease_id}"


# --- parsing and authorization -------------------------------------------------

CHAT = "chat:messages"
NOTIFICATIONS = "notifications"
MAINTENANCE = "maintenance:updates"
PROPERTY = "property:changes"
UNIT = "unit:changes"
LEASE = "lease:changes"
SYSTEM = "system:broadcasts"

FAMILIES = (CHAT, NOTIFICATIONS, MAINTENANCE, PROPERTY, UNIT, LEASE)
_TOPIC = re.compile(
    r"^(chat:messages|notifications|maintenance:updates|property:changes|unit:changes|lease:changes):([0-9a-fA-F-]{32,36})$"
)


@dataclass(frozen=True)
class Topic:
    """A parsed topic: its family (`chat:messages`, ...) and its id (a UUID string, None for broadcasts)."""

    family: str
    entity_id: str | None

    @property
    def name(self) -> str:
        return SYSTEM if self.family == SYSTEM else f"{self.family}:{self.entity_id}"


def parse(name: object) -> Topic | None:
    """The topic a client named, or None when the name is malformed (not a known family and UUID)."""
    if not isinstance(name, str) or len(name) > 80:
        return None
    if name == SYSTEM:
        return Topic(SYSTEM, None)
    match = _TOPIC.match(name)
    if match is None:
        return None
    try:
        entity_id = str(uuid.UUID(match.group(2)))
    except ValueError:
        return None
    return Topic(match.group(1), entity_id)


def family_of(name: str) -> str:
    """The family of a channel name, for metrics (`other` when unknown); called per event, so no parsing."""
    if name == SYSTEM:
        return SYSTEM
    family = name.rpartition(":")[0]
    return family if family in FAMILIES else "other"


@dataclass(frozen=True)
class Viewer:
    """Who asks to see a topic: the user id, and the user type as the socket saw it at connect.

    `user_type` is a copy that goes stale when an admin changes the user's type; an
    authorizer decides from the user's current type and roles, never from it.
    """

    user_id: str
    user_type: str

    @property
    def is_admin(self) -> bool:
        return self.user_type == "admin"


class TopicAuthorizer(Protocol):
    """Decides whether a viewer may subscribe to a topic. Unknown ids are simply not allowed.

    Implementations decide for the user's CURRENT type and roles (re-read, or cached only
    until a change of them), since `recheck_access` relies on it after a role change.
    """

    async def allowed(self, viewer: Viewer, topic: Topic) -> bool: ...
