"""Per-topic recent history in Redis streams: offsets for stored events, and recovery after reconnect.

Layout per topic (keys from `realtime.keys`, both hash-tagged by the topic so a script
may touch them on Redis Cluster):
- `topic_epoch(topic)`: a hash `{epoch, last, r}`: a random token naming this life of the
  history, the stream id of the last stored event (`0-0` before the first one), and the
  replication id of the master that last wrote it (a replica promoted after a failover ends
  the epoch: `lua/history_life.lua`, docs/deployment.md "Failover").
- `topic_history(topic)`: a stream, one entry per stored event: `f` = the frame as
  MessagePack without its offset, `p` = the id of the event stored before it.

An offset is `"<epoch>-<ms>-<seq>"`: opaque to clients, increasing per topic within an
epoch. When Redis loses a topic's epoch hash (restart without persistence, expiry,
eviction), the next use starts a new epoch with an empty stream, so an old `since`
answers recovered=False instead of silently skipping events.

Bounds: each publish trims the stream to about `max_events` (`MAXLEN ~`, whole radix
nodes: never fewer than `max_events` are kept) and drops entries older than
`max_age_seconds` (`MINID ~`, by the Redis clock), then sets both keys to expire
`max_age_seconds` after that publish, so a quiet topic leaves nothing behind.
`position` refreshes the epoch hash's expiry so a watched but quiet topic keeps its
offsets valid; the stream may then expire before the hash, which `since` handles: with
no stream, only an offset equal to `last` is recovered. A gap is detected exactly: an
offset is recovered iff it is not older than the first held entry's `p` (the newest
event that trimming may have removed).

Payloads are binary MessagePack while the injected client decodes replies to `str`: the
scripts receive bytes arguments as they are (decoding applies to replies only), and
`since` reads its binary reply on the same client with redis-py's `NEVER_DECODE`
option (the one `DUMP` uses), so no second connection pool is opened.
"""

import random
import re
from pathlib import Path
from typing import Any, NamedTuple

import msgpack
import redis.asyncio as aredis
from redis.client import NEVER_DECODE
from redis.exceptions import NoScriptError

from realtime import keys
from realtime.codecs import pack
from realtime.connections import publish_command
from realtime.events import make_event
from realtime.pipelined import evalsha_many, round_trip

_LUA = Path(__file__).parent / "lua"


def script_text(name: str) -> str:
    """A history script (`realtime/lua/<name>.lua`) after the prelude every one of them shares
    (`history_life.lua`: the master's life, so a failover ends a topic's epoch)."""
    return (_LUA / "history_life.lua").read_text() + (_LUA / f"{name}.lua").read_text()


_PUBLISH = script_text("history_publish")
# On Redis Cluster the same script publishes with SPUBLISH: the channel is the stream keys' hash
# tag, so it hashes to their slot and the script stays on one shard, atomic.
_SPUBLISH = _PUBLISH.replace('redis.call("PUBLISH"', 'redis.call("SPUBLISH"')
assert _SPUBLISH.count('redis.call("SPUBLISH"') == 1


def _publish_script(client: Any) -> str:
    return _SPUBLISH if publish_command(client) == "SPUBLISH" else _PUBLISH


_POSITION = script_text("history_position")
_SINCE = script_text("history_since")

_SINCE_BATCH = 500  # topics per pipelined round trip in `since_many`

DEFAULT_MAX_EVENTS = 1000
DEFAULT_MAX_AGE_SECONDS = 24 * 60 * 60

# 15 digits keep stream ids exact in Lua's doubles (ms up to the year 33658).
_OFFSET = re.compile(r"([0-9a-f]{16})-([0-9]{1,15})-([0-9]{1,15})")


class Offset(NamedTuple):
    """A parsed offset; within one epoch, `(ms, seq)` orders events."""

    epoch: str
    ms: int
    seq: int

    @property
    def stream_id(self) -> str:
        return f"{self.ms}-{self.seq}"

    def __str__(self) -> str:
        return f"{self.epoch}-{self.ms}-{self.seq}"


def parse_offset(offset: object) -> Offset | None:
    """The offset's parts, or None for anything this module never hands out."""
    if not isinstance(offset, str):
        return None
    match = _OFFSET.fullmatch(offset)
    if match is None:
        return None
    return Offset(match[1], int(match[2]), int(match[3]))


def _new_epoch() -> str:
    # Unique, not secret: Python's own generator (seeded from the OS, reseeded in forked
    # children) instead of a getrandom() call per subscribe, which releases the GIL.
    return f"{random.getrandbits(64):016x}"


class RedisHistory:
    """Recent stored events per topic with gap-free recovery; each publish is one atomic Redis round trip."""

    def __init__(
        self,
        redis: aredis.Redis,
        *,
        max_events: int = DEFAULT_MAX_EVENTS,
        max_age_seconds: int = DEFAULT_MAX_AGE_SECONDS,
    ) -> None:
        if max_events < 1 or max_age_seconds < 1:
            raise ValueError("history bounds must be positive")
        self._redis = redis
        self.max_events = max_events
        self.max_age_seconds = max_age_seconds
        self._max_age_ms = max_age_seconds * 1000
        self._publish = redis.register_script(_publish_script(redis))
        self._publish_command = publish_command(redis)
        self._position = redis.register_script(_POSITION)
        self._since = redis.register_script(_SINCE)

    async def publish(self, topic: str, event: str, data: Any, *, ts: str | None = None) -> dict[str, Any]:
        """Store the event and PUBLISH it on channel `topic` atomically; returns the frame as subscribers decode it.

        Subscribers receive a MessagePack map of the whole frame, offset included. If the
        connection fails after Redis ran the script, the caller cannot tell and may publish
        again: delivery is at least once (clients deduplicate by `data.id`).
        """
        frame = make_event(topic, event, data, ts=ts)
        payload = pack(frame)
        offset = await self._publish(
            keys=[keys.topic_epoch(topic), keys.topic_history(topic)],
            args=[topic, payload, self.max_events, self._max_age_ms, _new_epoch()],
        )
        sent: dict[str, Any] = msgpack.unpackb(payload, raw=False)
        sent["offset"] = str(offset)
        return sent

    async def publish_many(
        self, events: list[tuple[str, str, Any]], *, event_keys: "list[str] | None" = None
    ) -> list[dict[str, Any] | Exception]:
        """`publish` for each (topic, event, data), in order, in one pipelined round trip.

        One outcome per event: its frame, or the exception it failed with (each event is
        its own atomic script, so one failure does not undo the others). With `event_keys`
        (one per event; "" for none) publishing is exactly once per key and epoch: an event
        whose key already went out is not published again, and its frame carries the first
        offset (see `offsets_of`).
        """
        payloads = [pack(make_event(topic, event, data)) for topic, event, data in events]
        names = event_keys if event_keys is not None else [""] * len(events)
        # One fresh token for the batch: only a topic that has no epoch takes it, and topics
        # sharing a token is harmless (an offset is only ever compared within its topic).
        epoch = _new_epoch()
        calls = [
            (
                [keys.topic_epoch(topic), keys.topic_history(topic), keys.topic_event_keys(topic)],
                [topic, payload, self.max_events, self._max_age_ms, epoch, name],
            )
            for (topic, _, _), payload, name in zip(events, payloads, names, strict=True)
        ]
        outcomes: list[dict[str, Any] | Exception] = []
        for payload, reply in zip(payloads, await evalsha_many(self._redis, self._publish, calls), strict=True):
            if isinstance(reply, Exception):
                outcomes.append(reply)
                continue
            sent: dict[str, Any] = msgpack.unpackb(payload, raw=False)
            sent["offset"] = str(reply)
            outcomes.append(sent)
        return outcomes

    async def offsets_of(self, topic: str, event_keys: list[str]) -> list[str | None]:
        """The offset each keyed event went out under in the topic's current epoch, or None (not published)."""
        if not event_keys:
            return []
        async with self._redis.pipeline(transaction=False) as pipe:
            pipe.hget(keys.topic_epoch(topic), "epoch")
            pipe.hmget(keys.topic_event_keys(topic), event_keys)
            epoch, found = await pipe.execute()
        if epoch is None:
            return [None] * len(event_keys)
        prefix = f"{epoch}-"
        return [value if isinstance(value, str) and value.startswith(prefix) else None for value in found]

    async def publish_ephemeral(self, topic: str, event: str, data: Any) -> dict[str, Any]:
        """PUBLISH the event on channel `topic` without storing it or giving it an offset; returns the frame."""
        frame = make_event(topic, event, data)
        await self._redis.execute_command(self._publish_command, topic, pack(frame))
        return frame

    async def publish_ephemeral_many(self, events: list[tuple[str, str, Any]]) -> None:
        """`publish_ephemeral` for each (topic, event, data), in one round trip on the lean path
        (`realtime.pipelined.round_trip`: packed by hiredis, one pooled connection per batch; a
        burst of connects announces its users' presence here, and redis-py's pipeline packed each
        argument in Python). Raises the first error a command met; an ephemeral event may go out
        twice when a dropped connection is retried (harmless: it carries state, not a change)."""
        if not events:
            return
        commands = [
            (self._publish_command, topic, pack(make_event(topic, event, data))) for topic, event, data in events
        ]
        for reply in await round_trip(self._redis, commands):
            if isinstance(reply, Exception):
                raise reply

    async def position(self, topic: str) -> str:
        """The topic's current offset: a valid `since` later, also before its first event."""
        offset = await self._position(
            keys=[keys.topic_epoch(topic), keys.topic_history(topic)],
            args=[_new_epoch(), self._max_age_ms],
        )
        return str(offset)

    async def since(self, topic: str, offset: str) -> tuple[bool, list[dict[str, Any]]]:
        """(True, every event stored after `offset`, in order, as sent live) or (False, []) if any may be lost.

        False when the offset is malformed, from another epoch, older than what the history
        still holds, after its last event, or not the predecessor of the entry that follows it
        (a failover lost it, and maybe events after it, before the replica got them).
        """
        parsed = parse_offset(offset)
        if parsed is None:
            return False, []
        reply = await self._eval_binary(
            self._since,
            [keys.topic_epoch(topic), keys.topic_history(topic)],
            [parsed.epoch, parsed.stream_id],
        )
        return _recovered(parsed, reply)

    async def since_many(self, positions: list[tuple[str, str]]) -> list[tuple[bool, list[dict[str, Any]]]]:
        """`since` for each (topic, offset), in order, pipelined `_SINCE_BATCH` topics per round trip.

        For a process's gap repair after a broker reconnect (rare, possibly thousands of
        topics): EVAL with the script's text, since a restarted Redis holds no scripts. Raises
        redis errors; a malformed offset answers (False, []) like `since`.
        """
        answers: list[tuple[bool, list[dict[str, Any]]]] = [(False, [])] * len(positions)
        parsed = [(i, topic, parse_offset(offset)) for i, (topic, offset) in enumerate(positions)]
        valid = [(i, topic, offset) for i, topic, offset in parsed if offset is not None]
        options: dict[str, Any] = {NEVER_DECODE: []}
        for start in range(0, len(valid), _SINCE_BATCH):
            chunk = valid[start : start + _SINCE_BATCH]
            async with self._redis.pipeline(transaction=False) as pipe:
                for _, topic, offset in chunk:
                    pipe.execute_command(
                        "EVAL",
                        self._since.script,
                        2,
                        keys.topic_epoch(topic),
                        keys.topic_history(topic),
                        offset.epoch,
                        offset.stream_id,
                        **options,
                    )
                replies = await pipe.execute()
            for (i, _, offset), reply in zip(chunk, replies, strict=True):
                answers[i] = _recovered(offset, reply)
        return answers

    async def _eval_binary(self, script: Any, script_keys: list[str], args: list[Any]) -> Any:
        """Run a registered script with its reply left as bytes."""
        options: dict[str, Any] = {NEVER_DECODE: []}
        try:
            return await self._redis.execute_command(
                "EVALSHA", script.sha, len(script_keys), *script_keys, *args, **options
            )
        except NoScriptError:
            # First use on this server (or after SCRIPT FLUSH): EVAL also caches it.
            return await self._redis.execute_command(
                "EVAL", script.script, len(script_keys), *script_keys, *args, **options
            )


def _recovered(offset: Offset, reply: Any) -> tuple[bool, list[dict[str, Any]]]:
    """`since`'s answer from the script's binary reply."""
    if not reply or int(reply[0]) != 1:
        return False, []
    prefix = f"{offset.epoch}-"
    missed: list[dict[str, Any]] = []
    for i in range(1, len(reply), 2):
        frame: dict[str, Any] = msgpack.unpackb(reply[i + 1], raw=False)
        frame["offset"] = prefix + reply[i].decode("ascii")
        missed.append(frame)
    return True, missed


def publish_sync(
    redis_client_sync: Any,
    topic: str,
    event: str,
    data: Any,
    *,
    max_events: int = DEFAULT_MAX_EVENTS,
    max_age_seconds: int = DEFAULT_MAX_AGE_SECONDS,
    ts: str | None = None,
) -> dict[str, Any]:
    """The blocking twin of `RedisHistory.publish` for sync code (ORM signals, commands, the outbox relay).

    Same script, keys, frame and offsets: the event enters the topic's history and is
    PUBLISHed on channel `topic` atomically; returns the frame with its offset. Takes any
    redis-py sync client (`realtime.connections.get_sync_redis()`; decoded replies or not).
    Raises redis' errors when Redis is unreachable: the caller keeps the event and retries.
    """
    if max_events < 1 or max_age_seconds < 1:
        raise ValueError("history bounds must be positive")
    frame = make_event(topic, event, data, ts=ts)
    payload = pack(frame)
    script = redis_client_sync.register_script(_publish_script(redis_client_sync))
    offset = script(
        keys=[keys.topic_epoch(topic), keys.topic_history(topic)],
        args=[topic, payload, max_events, max_age_seconds * 1000, _new_epoch()],
    )
    if isinstance(offset, bytes):
        offset = offset.decode("ascii")
    sent: dict[str, Any] = msgpack.unpackb(payload, raw=False)
    sent["offset"] = str(offset)
    return sent
