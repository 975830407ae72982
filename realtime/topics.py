"""Pub/sub channel names: exactly the schema design's, plus the servers' own control channel."""

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
