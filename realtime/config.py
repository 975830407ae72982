"""The realtime core's settings: a frozen object built by `pms.wiring`, never django.conf.

The defaults are the wire protocol's contract (PROTOCOL.md, "Limits and close codes").
"""

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
    # A reply on an open MongoDB socket: a frozen server fails the command after this long.
    mongo_socket_timeout_ms: int = 5000
    # How often a lost MongoDB server is re-checked (the driver's minimum is 500).
    mongo_heartbeat_ms: int = 1000
    mongo_retry_writes: bool = True
    mongo_write_concern: str = "1"
    # Chat `insert_many`s of one process in flight at once (realtime.batching.InsertOnce).
    mongo_inserts_in_flight: int = 1

    # Connection
    auth_timeout_seconds: float = 10.0
    # Frames
    max_frame_bytes: int = 64 * 1024
    hard_max_frame_bytes: int = 1024 * 1024
    too_large_strikes: int = 3
    too_large_window_seconds: float = 60.0
    # Commands per socket: token bucket, then close 4429 after this long of refusals.
    commands_per_second: float = 20.0
    command_burst: int = 40
    rate_limited_close_after_seconds: float = 10.0
    max_subscriptions: int = 200
    # Slow readers (close 4008)
    max_backlog_events: int = 1000
    max_backlog_bytes: int = 1024 * 1024
    # History (recovery)
    history_max_events: int = 1000
    history_max_age_seconds: int = 24 * 3600
    # Presence and workers
    presence_ttl_seconds: int = 300
    away_after_seconds: int = 300
    worker_ttl_seconds: int = 90
    # Housekeeping period: presence refresh, session expiry, pending publishes.
    housekeeping_seconds: float = 20.0
    # A socket gets `session.expiring` once its session has at most this long left (checked
    # each housekeeping round, so it comes up to `housekeeping_seconds` later).
    session_expiring_notice_seconds: float = 300.0
