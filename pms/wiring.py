"""The composition root: builds the realtime core's objects from Django settings."""

from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import fields
from typing import Any

from asgiref.sync import sync_to_async
from django.conf import settings
from django.db import close_old_connections

from apps.accounts.services import asession_revocations_relay
from apps.common.integration import arecover_intents
from apps.events import relay as outbox_relay
from apps.messaging.directory import ParticipantDirectory
from apps.messaging.topic_access import CachedTopicAuthorizer, PolicyAuditor
from realtime import connections, keys, runtime
from realtime.broker import make_broker
from realtime.chat import ChatService
from realtime.config import RealtimeSettings
from realtime.history import RedisHistory
from realtime.notifications import NotificationService
from realtime.presence.base import PresenceSettings
from realtime.presence.redis import RedisPresence
from realtime.presence.tracker import PresenceTracker
from realtime.workers import ActiveWorkers


def realtime_settings() -> RealtimeSettings:
    """Defaults of RealtimeSettings, overridden by `settings.REALTIME` (a dict of the same names)."""
    overrides = dict(getattr(settings, "REALTIME", {}))
    known = {field.name for field in fields(RealtimeSettings)}
    unknown = set(overrides) - known
    if unknown:
        raise ValueError(f"unknown REALTIME settings: {sorted(unknown)}")
    return RealtimeSettings(
        redis_url=settings.REDIS_URL,
        mongo_url=settings.MONGO_URL,
        mongo_database=settings.MONGO_DATABASE,
        **{  # type: ignore[arg-type]  # each value has its field's type
            "mongo_timeout_ms": settings.MONGO_TIMEOUT_MS,
            "mongo_socket_timeout_ms": settings.MONGO_SOCKET_TIMEOUT_MS,
            "mongo_heartbeat_ms": settings.MONGO_HEARTBEAT_MS,
            "mongo_retry_writes": settings.MONGO_RETRY_WRITES,
            "mongo_write_concern": settings.MONGO_WRITE_CONCERN,
            "mongo_inserts_in_flight": settings.MONGO_INSERTS_IN_FLIGHT,
        }
        | overrides,
    )


def build_realtime() -> runtime.Realtime:
    """One process's realtime core, wired to Redis, MongoDB and the apps' authorizer."""
    config = connections.current_settings()
    history = RedisHistory(
        connections.get_redis(),
        max_events=config.history_max_events,
        max_age_seconds=config.history_max_age_seconds,
    )
    database = connections.get_mongo()[config.mongo_database]
    redis = connections.get_redis()
    directory = ParticipantDirectory()
    presence = PresenceTracker(
        RedisPresence(redis, PresenceSettings(config.presence_ttl_seconds, config.away_after_seconds)),
        history=history,
        directory=directory,
        workers=ActiveWorkers(redis, ttl_seconds=config.worker_ttl_seconds),
    )
    rt = runtime.Realtime(
        config,
        history=history,
        authorizer=CachedTopicAuthorizer(),
        auditor=PolicyAuditor(),
        broker_factory=lambda on_message: make_broker(
            config.redis_url, on_message, command_timeout=config.redis_socket_timeout
        ),
        directory=directory,
        chat=ChatService(database, history, inserts_in_flight=config.mongo_inserts_in_flight),
        notifications=NotificationService(database, redis, history),
        presence=presence,
    )
    # The outbox relay is the process's own task (`start_outbox_relay`), not a housekeeping job.
    # Sessions deleted where no service saw it (raw SQL deactivation, a cascade): close their
    # sockets (4409) and drop their cache within one housekeeping period.
    rt.every_round(asession_revocations_relay)
    # Saves across PostgreSQL and MongoDB a crash (or an outage) left half done: finished or undone.
    rt.every_round(arecover_intents)
    # Sockets live for hours; the ORM thread's connection must not outlive a database
    # restart or CONN_MAX_AGE (HTTP requests get this from Django's request signals).
    rt.every_round(sync_to_async(close_old_connections))
    return rt


def configure(config: RealtimeSettings | None = None) -> None:
    """Point the realtime core at the configured stores (called once at start-up, and by tests)."""
    config = config or realtime_settings()
    connections.configure(config)
    if connections.cluster_url(config.redis_url):
        keys.cache_epoch_of_slot(0)  # the slot tag table (80 ms) now, not inside the first cache miss
    runtime.install(build_realtime)


def start_outbox_relay() -> outbox_relay.OutboxRelay:
    """Start this process's outbox relay task on the running loop (idempotent); commits signal it."""
    instance = outbox_relay.current()
    if instance is None:
        instance = outbox_relay.OutboxRelay(**dict(getattr(settings, "OUTBOX_RELAY", {})))
        outbox_relay.install(instance)
    instance.start()
    return instance


async def stop_outbox_relay() -> None:
    """Stop the process's relay task (shutdown, tests); later commits relay inline until it restarts."""
    instance = outbox_relay.current()
    if instance is not None:
        await instance.stop()


Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]


class WithOutboxRelay:
    """ASGI wrapper: the outbox relay runs on the server's loop from its first scope on.

    Handles `lifespan` (start at startup, stop at shutdown) where the server sends it, and
    starts the relay lazily on the first HTTP or WebSocket scope where it does not
    (`--lifespan off`, daphne).
    """

    def __init__(self, app: Callable[..., Awaitable[None]]) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self._lifespan(receive, send)
            return
        instance = outbox_relay.current()
        if instance is None or not instance.running:
            start_outbox_relay()
        await self.app(scope, receive, send)

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                start_outbox_relay()
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await stop_outbox_relay()
                await send({"type": "lifespan.shutdown.complete"})
                return
