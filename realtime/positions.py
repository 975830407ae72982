"""A topic's position answered from what the process already knows, else read with its tick's other commands.

`subscribe` without `since` replies with the topic's current offset. Reading it from Redis
is a script call per subscribe; but a process that holds the topic's Redis subscription
already knows it: the position it last read, or the offset of the last stored event it
dispatched since, whichever is later. That answer is as good as a fresh read:

- every event after it was published after the read (or after that dispatched event),
  while the process held the channel (its subscription confirmed before the read), so it
  reaches the new subscriber live;
- an event at or before it whose pub/sub copy is still on its way is skipped by the
  socket's floor, exactly as after a fresh read (`Realtime.release_held`).

The knowledge is kept only while that holds: it is dropped when the process releases
the channel, is not trusted across a reconnect of the broker's pub/sub connection (messages
published while it was down never arrived: `RedisBroker.generation`), and is re-read from
Redis after `max_age_seconds` (the read also keeps a quiet topic's epoch alive, see
`realtime/lua/history_position.lua`). When the last read and the last dispatched event
belong to different epochs (the history started over), Redis is asked again.

Reads that do go to Redis are sent with the other commands of the loop tick
(`TickPipeline`): a burst of sockets subscribing costs one round trip, not one each.
"""

import random
import time
from typing import Any, Protocol

from realtime import keys
from realtime.history import RedisHistory, parse_offset, script_text
from realtime.pipelined import LuaScript, tick_pipeline

_POSITION = LuaScript(script_text("history_position"))
DEFAULT_MAX_AGE_SECONDS = 30.0


class Generational(Protocol):
    """A broker whose `generation` changes whenever its pub/sub connection is made anew."""

    @property
    def generation(self) -> int: ...

    def confirmed(self, channel: str) -> bool: ...


class _Known:
    __slots__ = ("read", "read_at", "generation", "last")

    def __init__(self, read: str, read_at: float, generation: int) -> None:
        self.read = read  # the offset Redis answered
        self.read_at = read_at
        self.generation = generation
        self.last: str | None = None  # the offset of the last stored event dispatched since


class Positions:
    """Topic positions for `subscribe` replies: known in the process, or read in the tick's round trip."""

    def __init__(
        self, history: RedisHistory, broker: Generational, *, max_age_seconds: float = DEFAULT_MAX_AGE_SECONDS
    ) -> None:
        self._history = history
        self._broker = broker
        self._max_age = max_age_seconds
        self._max_age_ms = history.max_age_seconds * 1000
        self._known: dict[str, _Known] = {}
        self.reads = 0  # how many went to Redis (tests, metrics)

    async def position(self, topic: str) -> str:
        """The topic's current offset. Precondition: the process holds the topic's Redis
        subscription (confirmed) and keeps holding it until the caller has its answer."""
        generation = self._broker.generation
        known = self._known.get(topic)
        if known is not None:
            answer = self._answer(known, generation)
            if answer is not None:
                return answer
            del self._known[topic]
        self.reads += 1
        read_at = time.monotonic()
        offset = str(
            await tick_pipeline(self._history_client()).evalsha(
                _POSITION,
                [keys.topic_epoch(topic), keys.topic_history(topic)],
                [f"{random.getrandbits(64):016x}", self._max_age_ms],
            )
        )
        # Learnt only under a confirmed subscription that has not been interrupted since the read began.
        if self._broker.generation == generation and topic not in self._known and self._broker.confirmed(topic):
            self._known[topic] = _Known(offset, read_at, generation)
        return offset

    def _answer(self, known: _Known, generation: int) -> str | None:
        if known.generation != generation or time.monotonic() - known.read_at > self._max_age:
            return None
        if known.last is None:
            return known.read
        read, last = parse_offset(known.read), parse_offset(known.last)
        if read is None or last is None or read.epoch != last.epoch:
            return None
        return known.last if (last.ms, last.seq) > (read.ms, read.seq) else known.read

    def seen(self, topic: str, frame: dict[str, Any]) -> None:
        """An event of `topic` was dispatched (in pub/sub order: its offset is the latest seen)."""
        known = self._known.get(topic)
        if known is not None:
            offset = frame.get("offset")
            if isinstance(offset, str):
                known.last = offset

    def forget(self, topic: str) -> None:
        """The process released the topic's Redis subscription: what it knew may go stale."""
        self._known.pop(topic, None)

    def _history_client(self) -> Any:
        return self._history._redis
