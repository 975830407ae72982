"""Every Redis key of the schema design, built in one place (never format keys inline)."""


def user_session(session_id: str) -> str:
    return f"user:session:{session_id}"


def user_permissions(user_id: str) -> str:
    return f"user:permissions:{user_id}"


def login_rate_limit(ip: str) -> str:
    return f"auth:ratelimit:login:{ip}"


def api_rate_limit(user_id: str, endpoint: str) -> str:
    return f"ratelimit:api:{user_id}:{endpoint}"


# Recent history of a topic (our extension; the seed names none). The topic is the key's
# hash tag so both keys of one topic share a Redis Cluster slot (one Lua script touches both).
def topic_history(topic: str) -> str:
    """The topic's stream of recent stored events."""
    return f"history:{{{topic}}}:events"


def topic_epoch(topic: str) -> str:
    """The hash holding the topic history's epoch token and the id of its last stored event."""
    return f"history:{{{topic}}}:epoch"


def user_topic_access(user_id: str) -> str:
    """Extension: hash of topic -> "1"/"0", the user's cached subscribe decisions."""
    return f"user:access:{user_id}"
