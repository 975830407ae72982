"""The composition root: builds the realtime core's objects from Django settings."""

from django.conf import settings

from realtime import connections
from realtime.config import RealtimeSettings


def realtime_settings() -> RealtimeSettings:
    return RealtimeSettings(
        redis_url=settings.REDIS_URL,
        mongo_url=settings.MONGO_URL,
        mongo_database=settings.MONGO_DATABASE,
    )


def configure() -> None:
    """Point the realtime core at the configured stores (called once at start-up)."""
    connections.configure(realtime_settings())
