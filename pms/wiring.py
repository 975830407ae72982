"""The composition root: builds the realtime core's objects from Django settings."""

from dataclasses import fields

from asgiref.sync import sync_to_async
from django.conf import settings
from django.db import close_old_connections

from apps.accounts.services import asession_revocations_relay
from apps.common.integration import arecover_intents
from apps.messaging.directory import ParticipantDirectory
from apps.messaging.outbox import aoutbox_relay
from apps.messaging.topic_access import CachedTopicAuthorizer
from realtime import connections, runtime
from realtime.broker import RedisBroker
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
        **overrides,
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
        broker_factory=lambda on_message: RedisBroker(config.redis_url, on_message),
        directory=directory,
        chat=ChatService(database, history),
        notifications=NotificationService(database, redis, history),
        presence=presence,
    )
    # Model change events an outage (or a crash after commit) left in the outbox.
    rt.every_round(aoutbox_relay)
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
    connections.configure(config or realtime_settings())
    runtime.install(build_realtime)
