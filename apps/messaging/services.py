"""Writes of the messaging domain outside chat (chat itself lives in `realtime.chat`): system broadcasts."""

import logging
import uuid
from typing import Any

import redis

from realtime import connections, topics
from realtime.errors import BAD_REQUEST, UNAVAILABLE, ProtocolError
from realtime.events import utc_now_iso
from realtime.history import RedisHistory

logger = logging.getLogger(__name__)

BROADCAST_EVENT = "broadcast"
PRIORITIES = ("low", "medium", "high")
DEFAULT_PRIORITY = "medium"
TITLE_MAX_LENGTH = 200
MESSAGE_MAX_LENGTH = 5000

BAD_PRIORITY = "priority must be one of: low, medium, high."
EMPTY_BROADCAST = "A broadcast needs a title (at most 200 characters) and a message (at most 5,000)."
BROADCAST_UNAVAILABLE = "Redis is unavailable; the broadcast was not sent. Retry shortly."


def _history() -> RedisHistory:
    config = connections.current_settings()
    return RedisHistory(
        connections.get_redis(),
        max_events=config.history_max_events,
        max_age_seconds=config.history_max_age_seconds,
    )


async def abroadcast_send(*, sender_id: str, title: str, message: str, priority: str = DEFAULT_PRIORITY) -> dict[str, Any]:
    """Publish a `broadcast` event on `system:broadcasts` to every connected user; returns the frame as sent.

    The event is stored in the topic's history first, so it carries an offset and a client
    that reconnects with `since` recovers it. Its data: `{id, title, message, priority,
    sentBy, sentAt}`; `sentAt` is also the frame's `ts`. Precondition: the caller checked
    that the sender is an admin. Raises `unavailable` when Redis is down; a timeout after
    Redis ran the publish cannot be told apart, so a retry may deliver twice (under a new id).
    """
    title, message = title.strip(), message.strip()
    if priority not in PRIORITIES:
        raise ProtocolError(BAD_REQUEST, BAD_PRIORITY)
    if not title or not message or len(title) > TITLE_MAX_LENGTH or len(message) > MESSAGE_MAX_LENGTH:
        raise ProtocolError(BAD_REQUEST, EMPTY_BROADCAST)
    sent_at = utc_now_iso()
    data = {
        "id": str(uuid.uuid4()),
        "title": title,
        "message": message,
        "priority": priority,
        "sentBy": str(sender_id),
        "sentAt": sent_at,
    }
    try:
        frame = await _history().publish(topics.SYSTEM_BROADCASTS, BROADCAST_EVENT, data, ts=sent_at)
    except redis.RedisError as exc:
        logger.warning("broadcast %s by %s not sent: Redis unavailable (%r)", data["id"], sender_id, exc)
        raise ProtocolError(UNAVAILABLE, BROADCAST_UNAVAILABLE) from exc
    logger.info("broadcast %s sent by %s at offset %s", data["id"], sender_id, frame["offset"])
    return frame
