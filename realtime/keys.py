"""Every Redis key of the schema design, built in one place (never format keys inline)."""


def user_session(session_id: str) -> str:
    return f"user:session:{session_id}"


def user_permissions(user_id: str) -> str:
    return f"user:permissions:{user_id}"


def login_rate_limit(ip: str) -> str:
    return f"auth:ratelimit:login:{ip}"


def api_rate_limit(user_id: str, endpoint: str) -> str:
    return f"ratelimit:api:{user_id}:{endpoint}"
