"""The realtime core's settings: a frozen object built by `pms.wiring`, never django.conf."""

from dataclasses import dataclass


@dataclass(frozen=True)
class RealtimeSettings:
    redis_url: str = "redis://127.0.0.1:6379/0"
    mongo_url: str = "mongodb://127.0.0.1:27017/"
    mongo_database: str = "pms"
    # Bounds every Redis call so a dead Redis answers `unavailable` instead of hanging.
    redis_socket_timeout: float = 5.0
    redis_max_connections: int = 200
    mongo_timeout_ms: int = 3000
