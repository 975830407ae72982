"""Every Redis key of the schema design, built in one place (never format keys inline).

Redis Cluster: every script and transaction names keys of one hash slot only. The seed's
names stay exact; a key of ours that a script uses together with a seed key carries that
key's full name as its hash tag (`{...}`): Redis hashes only the tag, so the companion lands
in the seed key's slot (`chat:presence:conns:{chat:presence:<userId>}` beside
`chat:presence:<userId>`). A topic's history keys carry the topic (the channel name) as their
tag, so the script that appends and publishes (SPUBLISH on a cluster) stays on one shard.
"""

import functools
from binascii import crc_hqx

CLUSTER_SLOTS = 16384


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


def topic_event_keys(topic: str) -> str:
    """The hash {event key -> offset} of the topic's keyed events (exactly-once publishing of stored changes)."""
    return f"history:{{{topic}}}:keys"


def user_topic_access(user_id: str) -> str:
    """Extension: hash of topic -> "1"/"0", the user's cached subscribe decisions."""
    return f"user:access:{user_id}"


# Presence, unread counters and active maintenance workers. The seed's names exactly,
# except the connection set, which is ours.

MAINTENANCE_ACTIVE_WORKERS = "maintenance:active:workers"
NOTIFICATIONS_COUNT_PATTERN = "notifications:count:*"


def chat_presence(user_id: str) -> str:
    """The seed's presence hash `{status, lastActive}`."""
    return f"chat:presence:{user_id}"


def chat_presence_connections(user_id: str) -> str:
    """Ours: the user's live sockets, a sorted set of connection ids scored by expiry (ms); in
    the slot of `chat:presence:{userId}` (its hash tag), which the presence scripts touch with it."""
    return f"chat:presence:conns:{{{chat_presence(user_id)}}}"


def notifications_count(user_id: str) -> str:
    """The seed's unread counter (a decimal string)."""
    return f"notifications:count:{user_id}"


def notifications_count_until(user_id: str) -> str:
    """Ours: when the earliest notification counted in `notifications:count:{userId}` expires
    (ms since the epoch); the counter is recounted from then on. In the counter's slot (its hash tag)."""
    return f"notifications:count-until:{{{notifications_count(user_id)}}}"


def notifications_count_user(key: str) -> str:
    """The user id of a `notifications:count:{userId}` key."""
    return key.removeprefix("notifications:count:")


def chat_notified(conversation_id: str, user_id: str) -> str:
    """Ours: set while the user has an unread chat notification for the conversation (one per
    conversation until they read it); dropped by their `chat.read`, expires with the notification."""
    return f"chat:notified:{conversation_id}:{user_id}"


def maintenance_worker(user_id: str) -> str:
    """A worker's liveness key; its expiry takes the worker out of the active set at the next sweep.
    In the slot of `maintenance:active:workers` (its hash tag): the sweep script and the join/leave
    transactions touch both."""
    return f"maintenance:worker:{{{MAINTENANCE_ACTIVE_WORKERS}}}:{user_id}"


# The seed's application caches (read through and dropped by apps/common/cache.py users).
def property_details(property_id: str) -> str:
    return f"property:{property_id}"


def unit_availability(property_id: str) -> str:
    return f"unit:availability:{property_id}"


def maintenance_counts(property_id: str) -> str:
    return f"maintenance:counts:{property_id}"


def transactions_recent(user_id: str) -> str:
    return f"transactions:recent:{user_id}"


def lookup_cities(state_code: str) -> str:
    return f"lookup:cities:{state_code.upper()}"


LOOKUP_AMENITIES = "lookup:amenities"


def search_properties(query_hash: str) -> str:
    return f"search:properties:{query_hash}"


def subscription_status(user_id: str) -> str:
    return f"subscription:status:{user_id}"


def feature_access(user_id: str, feature_id: str) -> str:
    return f"feature:access:{user_id}:{feature_id}"


# The epochs guarding read-through fills (apps/common/cache.py). One Redis: one global counter.
# A Redis Cluster: one counter per hash slot, named with a hash tag of that slot, so a fill's
# script reads the epoch and writes the cache key in one slot while the seed's cache key
# names stay exact.
CACHE_EPOCH = "cache:epoch"


def cache_epoch_of_slot(slot: int) -> str:
    """The epoch guarding the cache keys of Redis Cluster hash slot `slot` (0 to 16383); in that slot."""
    return f"cache:epoch:{{{_slot_tags()[slot]}}}"


@functools.cache
def _slot_tags() -> tuple[str, ...]:
    """For each slot, the smallest decimal number whose CRC16 lands in it: the same table in every
    process (found once, lazily: about 110,000 candidates, 80 ms measured on this machine)."""
    tags: list[str | None] = [None] * CLUSTER_SLOTS
    left, number = CLUSTER_SLOTS, 0
    while left:
        tag = str(number)
        slot = crc_hqx(tag.encode(), 0) % CLUSTER_SLOTS  # Redis Cluster's key hash (CRC16/XMODEM)
        if tags[slot] is None:
            tags[slot] = tag
            left -= 1
        number += 1
    return tuple(tag for tag in tags if tag is not None)


def user_conversations(user_id: str) -> str:
    """Extension: JSON list of the user's conversation ids (presence announcements), TTL 1 h."""
    return f"user:conversations:{user_id}"
