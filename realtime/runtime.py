"""One process's realtime core: sockets, local fan-out, the Redis broker, and housekeeping.

Every event reaches this process once per topic (one Redis subscription per topic that
has local subscribers), is encoded once per codec and written to each local socket.
Control messages (session revoked, access changed) ride the same broker on the control
channel, so every process acts on them; after each broker (re)connect the process re-checks
its sockets against the source of truth, since those it missed meanwhile are gone
(`realtime.audit`).
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from realtime import closecodes, connections, metrics, topics
from realtime.audit import Auditor, Holding, Verdict
from realtime.chat import ChatService
from realtime.chat_schema import iso
from realtime.codecs import encode_once, unpack_control
from realtime.config import RealtimeSettings
from realtime.directory import Directory
from realtime.events import normalize_external
from realtime.history import Offset, RedisHistory, parse_offset
from realtime.hub import Connection, Hub
from realtime.notifications import NotificationService
from realtime.positions import Positions
from realtime.presence.tracker import PresenceTracker
from realtime.session import Identity, SocketSession
from realtime.topics import Topic, TopicAuthorizer, Viewer

logger = logging.getLogger(__name__)

RESYNC_EVERY_ROUNDS = 15  # unread counters re-counted every 15 housekeeping rounds (5 min by default)
# A gap repair whose history read fails is tried this often (0.2 s, 0.4 s, ... apart) before
# the topic's position counts as lost (its sockets closed 1012, to recover with `since`).
REPAIR_ATTEMPTS = 4
# A socket audit after a reconnect whose check fails (PostgreSQL down too) is tried this often,
# 0.5 s, 1 s, 2 s, 4 s, 5 s... apart (about a minute in all), before it waits for the next reconnect.
AUDIT_ATTEMPTS = 15
AUDIT_BACKOFF_MAX = 5.0


Held = list[tuple[dict[str, Any], dict[str, Any]]]  # (frame, messages by codec) in arrival order


def _not_after(offset: Offset, floor: Offset) -> bool:
    """True if `offset` is `floor` or precedes it in the same epoch.

    An offset of another epoch counts as after: the history was lost and started over, and
    pub/sub order puts every event of the floor's epoch before the new epoch's first one.
    """
    return offset.epoch == floor.epoch and (offset.ms, offset.seq) <= (floor.ms, floor.seq)


@dataclass(frozen=True)
class SubscribeResult:
    """The `subscribe` reply's data."""

    topic: str
    offset: str
    recovered: bool | None = None
    missed: list[dict[str, Any]] | None = None

    def as_reply(self) -> dict[str, Any]:
        data: dict[str, Any] = {"topic": self.topic, "offset": self.offset}
        if self.recovered is not None:
            data["recovered"] = self.recovered
            data["missed"] = self.missed or []
        return data


class Realtime:
    """The realtime core of one process (one event loop)."""

    def __init__(
        self,
        settings: RealtimeSettings,
        *,
        history: RedisHistory,
        authorizer: TopicAuthorizer,
        broker_factory: Callable[[Callable[[str, bytes], None]], Any],
        directory: Directory | None = None,
        chat: ChatService | None = None,
        notifications: NotificationService | None = None,
        presence: PresenceTracker | None = None,
        auditor: Auditor | None = None,
    ) -> None:
        self.settings = settings
        self.auditor = auditor
        self.history = history
        self.authorizer = authorizer
        self.directory = directory
        self.chat = chat
        self.notifications = notifications
        self.presence = presence
        self._rounds = 0
        self.hub = Hub(encode_once)
        self.broker = broker_factory(self._on_message)
        self.positions = Positions(history, self.broker)
        self.sessions: set[SocketSession] = set()
        self._users: dict[str, int] = {}  # user id -> how many of `sessions` are theirs
        # Per topic, its local sockets in their recovery window (see `subscribe`): the live
        # events held back while the socket's `subscribe` reads history, then, once the reply
        # is out, the reply's offset, at or before which live events are skipped. Only topics
        # with such a socket take the per-socket fan-out path (`_fan_out_recovering`).
        self._recovering: dict[str, dict[Connection, Held | Offset]] = {}
        # Floors set since the last broker barrier was sent; `_close_floors` ends them.
        self._floors: list[tuple[str, Connection, Offset]] = []
        self._closing_floors = False
        self._hooks: list[Callable[[str, dict[str, Any]], Awaitable[None]]] = []
        self._periodic: list[Callable[[], Awaitable[Any]]] = []
        self._opening: dict[SocketSession, asyncio.Future[None]] = {}
        # Per socket, the session it was last sent `session.expiring` for (once per session).
        self._warned: dict[SocketSession, str] = {}
        self._joining: dict[str, int] = {}
        self._tasks: set[asyncio.Task[Any]] = set()
        self._started = False
        # Gap repair after a broker reconnect (`_repair`). Per topic, the offset up to which
        # every stored event has reached this process's sockets of the topic: the last one
        # dispatched live or by repair, or, before the first such event, the lowest `subscribe`
        # reply offset (`_seed`; those topics are in `_seeded`). `_repairing` holds, per topic,
        # the live frames arriving while its history is read after a reconnect.
        self._last: dict[str, Offset] = {}
        self._seeded: set[str] = set()
        self._repairing: dict[str, list[dict[str, Any]]] = {}
        self._repair_generation = 0
        # Topics resubscribed while their first local subscriber's history read was still out:
        # held like the others, repaired from that read's offset once it is known (`_seed`).
        self._awaiting_seed: set[str] = set()
        # Socket audits after a reconnect (`_audit`): the one running, and whether another
        # reconnect came while it ran (then one more runs after it).
        self._auditing: asyncio.Task[None] | None = None
        self._audit_again = False
        if hasattr(self.broker, "on_connected"):
            self.broker.on_connected = self._on_broker_connected

    # --- lifecycle -------------------------------------------------------------------

    async def start(self) -> None:
        if self._started:
            return
        self._started = True
        await self.broker.start()
        await self.broker.subscribe(topics.CONTROL_CHANNEL)
        if self.chat is not None:
            try:
                await self.chat.ensure_indexes()
            except Exception:
                logger.exception("could not ensure chat indexes; sends stay idempotent per batch only")
        if self.directory is not None and hasattr(self.directory, "on_control"):
            self.on_control(self.directory.on_control)
        self._spawn(self._housekeeping())

    async def stop(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.wait(set(self._tasks), timeout=2)
        if self.chat is not None:
            await self.chat.aclose()
        await self.broker.stop()

    async def _housekeeping(self) -> None:
        """Periodic work: pending chat publishes, expired sessions (4401)."""
        while True:
            await asyncio.sleep(self.settings.housekeeping_seconds)
            try:
                await self.housekeep()
            except asyncio.CancelledError:
                raise
            except Exception:
                metrics.incr("housekeeping.failed")
                logger.exception("housekeeping failed; retrying next period")

    async def housekeep(self) -> None:
        """One round of periodic work (also called by tests)."""
        self._rounds += 1
        now = datetime.now(UTC)
        self.close_where(lambda s: s.identity.expires_at <= now, closecodes.UNAUTHORIZED)
        self.warn_expiring(now)
        if self.presence is not None:
            await self.presence.heartbeat(list(self.sessions))
        if self.chat is not None:
            await self.chat.publish_pending()
        if self.notifications is not None and self._rounds % RESYNC_EVERY_ROUNDS == 0:
            # TTL deletion of unread notifications would otherwise leave counters high.
            await self.notifications.resync_all({s.identity.user_id for s in self.sessions})
        for job in self._periodic:
            try:
                await job()
            except Exception:
                metrics.incr("housekeeping.failed")
                logger.exception("periodic job %r failed; retrying next round", job)

    def warn_expiring(self, now: datetime) -> int:
        """Send `session.expiring` to each live socket whose session ends within the notice
        setting, once per session (a socket that renews gets it again for its new session,
        when that one nears its end); returns how many were sent."""
        notice = now + timedelta(seconds=self.settings.session_expiring_notice_seconds)
        sent = 0
        for session in self.sessions:
            identity = session.identity
            if now < identity.expires_at <= notice and self._warned.get(session) != identity.session_id:
                self._warned[session] = identity.session_id
                frame = {
                    "type": "session.expiring",
                    "sessionId": identity.session_id,
                    "expiresAt": iso(identity.expires_at),
                }
                session.conn.send_direct(encode_once(frame)[session.conn.codec])
                sent += 1
        return sent

    def reidentify(self, session: SocketSession, identity: Identity) -> None:
        """The socket now speaks for `identity` (a renewed session of the same user).

        Its subscriptions stay; the expiry sweep (4401), `session.expiring` and revocation
        (4409) follow the new session from now on, and no longer the old one.
        """
        if identity.user_id != session.identity.user_id:
            raise ValueError("a socket cannot change its user")
        session.identity = identity
        self._warned.pop(session, None)

    def every_round(self, job: Callable[[], Awaitable[Any]]) -> None:
        """Run `job()` in every housekeeping round (failures are logged; the next round retries)."""
        self._periodic.append(job)

    def on_control(self, hook: Callable[[str, dict[str, Any]], Awaitable[None]]) -> None:
        """Run `hook(kind, message)` for every control message (after the core's own handling)."""
        self._hooks.append(hook)

    async def add(self, session: SocketSession) -> None:
        """A socket authenticated: count it and track it for control messages."""
        if session not in self.sessions:
            self.sessions.add(session)
            user_id = session.identity.user_id
            self._users[user_id] = self._users.get(user_id, 0) + 1
        metrics.incr("sockets.opened")
        if self.presence is not None:
            # Off the connect path: presence (and telling the user's conversations) must not
            # make a connect wait for Redis scripts and a membership lookup.
            opening = self.presence.open_later(session)
            self._opening[session] = opening
            opening.add_done_callback(lambda _: self._opening.pop(session, None))

    async def remove(self, session: SocketSession) -> None:
        """The socket closed: forget it and release the topics it alone held in this process."""
        if session in self.sessions:
            self.sessions.discard(session)
            user_id = session.identity.user_id
            left = self._users[user_id] - 1
            if left:
                self._users[user_id] = left
            else:
                del self._users[user_id]
        self._warned.pop(session, None)
        for topic in self.hub.topics_of(session.conn):
            self._end_recovery(topic, session.conn)
        for topic in self.hub.drop(session.conn):
            await self._release(topic)
        metrics.incr("sockets.closed")
        if self.presence is not None:
            opening = self._opening.pop(session, None)
            if opening is not None and not opening.done():
                await asyncio.wait({opening})  # never record "offline" before "online"
            await self.presence.closed(session)

    def has_socket(self, user_id: str) -> bool:
        """True while the user has an authenticated socket open in this process (so is not offline)."""
        return user_id in self._users

    # --- subscriptions ---------------------------------------------------------------

    def subscription_count(self, session: SocketSession) -> int:
        return len(self.hub.topics_of(session.conn))

    def is_subscribed(self, session: SocketSession, topic: str) -> bool:
        return topic in self.hub.topics_of(session.conn)

    async def allowed(self, session: SocketSession, topic: Topic) -> bool:
        viewer = Viewer(user_id=session.identity.user_id, user_type=session.identity.user_type)
        return await self.authorizer.allowed(viewer, topic)

    async def subscribe(self, session: SocketSession, topic: str, since: str | None) -> SubscribeResult:
        """Subscribe the socket; with `since`, recover what it missed with no gap and no duplicate.

        Order: hold Redis's subscription first, then register the socket with live events
        held back, then read the history, and only after the reply is sent release the held
        events newer than the reply's offset (`release_held`). No gap: an event stored after
        the history read is PUBLISHed after it, so it reaches the socket live. No duplicate:
        an event stored before the read is in `missed`, but its pub/sub copy travels on the
        broker's own connection and the reader may dispatch it only after the release (it
        lags behind under load). So the reply's offset stays the socket's floor, at or
        before which live events on the topic are skipped, until the live copy of the event
        at the floor or of a later one is dispatched (Redis delivers a channel's messages in
        the order their offsets were given: none older can follow), or until the reader has
        dispatched everything Redis published before the read (a broker barrier,
        `_close_floors`; only if the topic's position then covers the floor: after a lost
        pub/sub connection, the gap repair still has to pass it), whichever comes first.
        """
        # Counted while Redis confirms, so a last local subscriber leaving meanwhile does not
        # UNSUBSCRIBE the channel this socket is about to join (`_release`).
        self._joining[topic] = self._joining.get(topic, 0) + 1
        try:
            if not self.hub.subscribers(topic):
                await self.broker.subscribe(topic)
            self._recovering.setdefault(topic, {})[session.conn] = []
            self.hub.subscribe(topic, session.conn)
        finally:
            left = self._joining[topic] - 1
            if left:
                self._joining[topic] = left
            else:
                del self._joining[topic]
        if since is not None:
            recovered, missed = await self.history.since(topic, since)
            if recovered:
                offset = missed[-1]["offset"] if missed else since
                result = SubscribeResult(topic, offset, True, missed)
            else:
                result = SubscribeResult(topic, await self.history.position(topic), False, [])
        else:
            # Known in the process when it already held the topic, else read in the tick's round trip.
            result = SubscribeResult(topic, await self.positions.position(topic))
        self._seed(topic, result.offset)
        return result

    def _seed(self, topic: str, offset: str) -> None:
        """A socket's reply covers every stored event up to `offset`: the topic's repair start
        until its first live event, the lowest such reply (events above it may still be on
        their way to an earlier subscriber)."""
        parsed = parse_offset(offset)
        if parsed is None or not self.hub.subscribers(topic):
            return
        last = self._last.get(topic)
        if last is None:
            self._last[topic] = parsed
            self._seeded.add(topic)
            if topic in self._awaiting_seed:
                self._awaiting_seed.discard(topic)
                self._spawn(self._repair(self._repair_generation, [topic]))
        elif topic in self._seeded and (parsed.epoch != last.epoch or (parsed.ms, parsed.seq) < (last.ms, last.seq)):
            self._last[topic] = parsed

    def release_held(self, session: SocketSession, result: SubscribeResult) -> None:
        """After the reply: deliver the held live events that come after the reply's offset.

        The reply's offset then stays the socket's floor for later live events on the topic
        (`_fan_out_recovering`), unless the floor's event or a later one was already dispatched.
        """
        conn = session.conn
        recovering = self._recovering.get(result.topic)
        held = recovering.get(conn) if recovering is not None else None
        if recovering is None or not isinstance(held, list):
            return  # the socket left or unsubscribed meanwhile
        floor = parse_offset(result.offset)
        caught_up = False  # the floor's event or a later one was dispatched: none older can follow
        for frame, messages in held:
            seen = parse_offset(frame.get("offset"))
            if seen is not None and floor is not None:
                if _not_after(seen, floor):
                    caught_up = caught_up or seen == floor
                    continue
                caught_up = True
            conn.deliver(messages, frame)
        if floor is None or caught_up:
            self._end_recovery(result.topic, conn)
            return
        recovering[conn] = floor
        self._floors.append((result.topic, conn, floor))
        if not self._closing_floors:
            self._closing_floors = True
            self._spawn(self._close_floors())

    async def _close_floors(self) -> None:
        """Ends the recovery windows whose history read came before a broker barrier.

        The barrier's PING goes out after those reads completed, so once the reader has
        answered it, every late live copy of an event in their `missed` was dispatched
        (and skipped): the topic's position (`_last`) is at or past the floor. One barrier
        covers every floor set before it was sent.

        Not so when the pub/sub connection was down or replaced meanwhile: the barrier then
        returns without proving anything, and the events up to the floor that the process
        never heard live are delivered by the gap repair, from the topic's position, to every
        local socket of the topic. A window whose floor its topic's position has not reached
        stays open; the repair's (or a live) event at or after the floor ends it.
        """
        try:
            while self._floors:
                floors, self._floors = self._floors, []
                await self.broker.barrier()
                for topic, conn, floor in floors:
                    recovering = self._recovering.get(topic)
                    last = self._last.get(topic)
                    if (
                        recovering is not None
                        and recovering.get(conn) is floor
                        and last is not None
                        and _not_after(floor, last)
                    ):
                        self._end_recovery(topic, conn)
        except Exception:
            logger.exception("closing recovery windows failed; they close on their topic's next event")
        finally:
            self._closing_floors = False

    async def abort_subscribe(self, session: SocketSession, topic: str) -> None:
        """Undo a `subscribe` whose history read failed."""
        self._end_recovery(topic, session.conn)
        await self.unsubscribe(session, topic)

    async def unsubscribe(self, session: SocketSession, topic: str) -> None:
        self._end_recovery(topic, session.conn)
        if self.hub.unsubscribe(topic, session.conn):
            await self._release(topic)

    def _end_recovery(self, topic: str, conn: Connection) -> None:
        """The socket's live events on `topic` go straight out again (no-op outside its window)."""
        recovering = self._recovering.get(topic)
        if recovering is not None and recovering.pop(conn, None) is not None and not recovering:
            del self._recovering[topic]

    async def _release(self, topic: str) -> None:
        """Drop the process's Redis subscription of a topic no local socket holds or is joining."""
        if self.hub.subscribers(topic) or topic in self._joining:
            return
        self._last.pop(topic, None)
        self._seeded.discard(topic)
        self._repairing.pop(topic, None)
        self._awaiting_seed.discard(topic)
        self.positions.forget(topic)
        try:
            await self.broker.unsubscribe(topic)
        except Exception:
            logger.exception("could not unsubscribe %s from Redis", topic)

    # --- events ----------------------------------------------------------------------

    def _on_message(self, channel: str, payload: bytes) -> None:
        if channel == topics.CONTROL_CHANNEL:
            self._spawn(self._handle_control(payload))
            return
        frame = normalize_external(channel, payload)
        held = self._repairing.get(channel)
        if held is not None:
            held.append(frame)  # after the events the repair reads from history (`_repair`)
            return
        self._dispatch(channel, frame)

    def _dispatch(self, channel: str, frame: dict[str, Any]) -> None:
        """Fan one event out to the topic's local sockets, unless it is a stored event at or
        before the topic's position (delivered already, live or by a repair)."""
        offset = parse_offset(frame.get("offset"))
        if offset is not None:
            last = self._last.get(channel)
            if last is not None and _not_after(offset, last):
                metrics.incr("recovery.repair_duplicates_skipped")
                return
            self._last[channel] = offset
            self._seeded.discard(channel)
        self.positions.seen(channel, frame)
        family = topics.family_of(channel)
        metrics.incr(f"events.in.{family}")
        recovering = self._recovering.get(channel)
        if recovering:
            delivered = self._fan_out_recovering(channel, frame, recovering)
        else:
            delivered = self.hub.broadcast(channel, frame)
        metrics.incr(f"events.out.{family}", delivered)
        metrics.observe_delivery(frame.get("ts"))

    def _fan_out_recovering(
        self, channel: str, frame: dict[str, Any], recovering: dict[Connection, Held | Offset]
    ) -> int:
        """Fan-out on a topic some of whose local sockets are in their recovery window; returns how many got it.

        A socket whose `subscribe` still reads history gets the event held; one whose reply
        is out gets it only if it comes after the reply's offset (else it was in `missed`),
        and the event at that offset or the first one after it ends its window. Events
        without an offset (ephemeral, external) are never in `missed`: they always go out.
        """
        messages = encode_once(frame)
        offset = parse_offset(frame.get("offset"))  # once per event, not per socket
        delivered = 0
        for conn in self.hub.subscribers(channel):
            state = recovering.get(conn)
            if state is None:
                conn.deliver(messages, frame)
                delivered += 1
            elif isinstance(state, list):
                state.append((frame, messages))
            else:
                if offset is not None:
                    if _not_after(offset, state):
                        metrics.incr("recovery.late_duplicates_skipped")
                        if offset == state:
                            del recovering[conn]
                        continue
                    del recovering[conn]
                conn.deliver(messages, frame)
                delivered += 1
        if not recovering:
            del self._recovering[channel]
        return delivered

    # --- gap repair after a broker reconnect ----------------------------------------------

    def _on_broker_connected(self, channels: frozenset[str]) -> None:
        """The broker (re)subscribed `channels` on a new connection and has read nothing from it yet.

        Every topic with a position is held (its live events wait in `_repairing`) until
        `_repair` has delivered, from history, what was published while no connection was
        subscribed. Control messages published meanwhile are lost: the sockets are audited
        (`_audit`). Runs in the broker's reader, before it reads the new connection.
        """
        self._audit_soon()
        held = [topic for topic in channels if self.hub.subscribers(topic)]
        targets = [topic for topic in held if topic in self._last]
        if not held:
            return
        self._repair_generation += 1
        for topic in held:
            self._repairing.setdefault(topic, [])
            if topic not in self._last:
                self._awaiting_seed.add(topic)
        metrics.incr("recovery.repairs")
        if targets:
            self._spawn(self._repair(self._repair_generation, targets))

    async def _repair(self, generation: int, targets: list[str]) -> None:
        """Deliver each topic's stored events after its position, in order, then the held live ones.

        The barrier returns once Redis has run the new connection's SUBSCRIBEs, so an event
        stored after the history read is also published to it (live, held, deduplicated by
        offset in `_dispatch`). A topic whose history cannot prove continuity from its
        position (Redis restarted empty: a new epoch; trimmed meanwhile) loses its position:
        `_lose_positions`. Another reconnect meanwhile starts a newer repair, which takes over.
        """
        try:
            await self.broker.barrier()
            answers: list[tuple[bool, list[dict[str, Any]]]] | None = None
            for attempt in range(REPAIR_ATTEMPTS):
                if generation != self._repair_generation:
                    return
                positions = [(topic, str(self._last[topic])) for topic in targets if topic in self._last]
                try:
                    answers = await self.history.since_many(positions)
                    break
                except Exception as exc:
                    logger.warning("gap repair of %d topics: history read failed (%r)", len(positions), exc)
                    await asyncio.sleep(0.2 * 2**attempt)
            if generation != self._repair_generation:
                return
            lost: list[str] = []
            delivered = 0
            for (topic, _), answer in zip(positions, answers or [(False, [])] * len(positions), strict=True):
                held = self._repairing.pop(topic, None)
                if held is None:
                    continue  # released meanwhile
                recovered, missed = answer
                if not recovered:
                    lost.append(topic)
                    continue
                for frame in missed:
                    if self._dispatch_counted(topic, frame):
                        delivered += 1
                for frame in held:
                    self._dispatch(topic, frame)
            self._lose_positions(lost)
            metrics.incr("recovery.repaired_events", delivered)
            logger.info(
                "gap repair after a broker reconnect: %d topics, %d events delivered from history, %d positions lost",
                len(positions),
                delivered,
                len(lost),
            )
        finally:
            if generation == self._repair_generation:
                for topic in targets:
                    held = self._repairing.pop(topic, None)
                    for frame in held or ():
                        self._dispatch(topic, frame)

    def _dispatch_counted(self, topic: str, frame: dict[str, Any]) -> bool:
        """`_dispatch`, True if the event was new to the topic's position."""
        before = self._last.get(topic)
        self._dispatch(topic, frame)
        return self._last.get(topic) is not before

    def _lose_positions(self, lost: list[str]) -> None:
        """The history cannot show what this process's sockets of these topics missed: close them 1012.

        They stop getting the topics' events at once (a later event's offset must not
        become their bookmark), and the `since` they reconnect with answers
        `recovered: false` (PROTOCOL.md: the client reloads the topic's state). One log
        line for the lot.
        """
        if not lost:
            return
        closing: set[Connection] = set()
        for topic in lost:
            metrics.incr("recovery.positions_lost")
            conns = set(self.hub.subscribers(topic))
            closing |= conns
            self._last.pop(topic, None)
            self._seeded.discard(topic)
            for conn in conns:
                self._end_recovery(topic, conn)
                self.hub.unsubscribe(topic, conn)
            self._spawn(self._release(topic))
        sessions = [session for session in self.sessions if session.conn in closing]
        logger.warning(
            "position lost in %d topics (e.g. %s) while reconnecting to Redis (history restarted or trimmed); "
            "closing their %d local sockets with %d to recover with since",
            len(lost),
            lost[0],
            len(sessions),
            closecodes.SERVICE_RESTART,
        )
        for session in sessions:
            self._spawn(session_close(session, closecodes.SERVICE_RESTART))

    async def _handle_control(self, payload: bytes) -> None:
        try:
            message = unpack_control(payload)
        except ValueError:
            logger.warning("malformed control message ignored")
            return
        kind = message["kind"]
        if kind == "session.revoked":
            self.close_where(lambda s: s.identity.session_id == message.get("sessionId"), closecodes.SESSION_REVOKED)
        elif kind == "session.rotated":
            self._shorten(str(message.get("sessionId")), str(message.get("expiresAt")))
        elif kind in ("access.changed", "permissions.changed"):
            await self.recheck_access(str(message.get("userId")))
        await self._run_hooks(kind, message)

    async def _run_hooks(self, kind: str, message: dict[str, Any]) -> None:
        for hook in self._hooks:
            try:
                await hook(kind, message)
            except Exception:
                logger.exception("control hook failed for %s", kind)

    def _shorten(self, session_id: str, expires_at: str) -> None:
        """A refreshed session ends at `expires_at` (its grace): sockets still on it close then (4401)."""
        try:
            ends = datetime.fromisoformat(expires_at)
        except ValueError:
            logger.warning("session.rotated with a malformed expiresAt ignored")
            return
        if ends.tzinfo is None:
            ends = ends.replace(tzinfo=UTC)
        for session in self.sessions:
            if session.identity.session_id == session_id and ends < session.identity.expires_at:
                session.identity = dataclasses.replace(session.identity, expires_at=ends)

    async def recheck_access(self, user_id: str) -> None:
        """Re-authorize every subscription of the user's local sockets; tell and drop the lost ones."""
        for session in [s for s in self.sessions if s.identity.user_id == user_id]:
            for name in sorted(self.hub.topics_of(session.conn)):
                topic = topics.parse(name)
                if topic is None:
                    continue
                try:
                    allowed = await self.allowed(session, topic)
                except Exception:
                    logger.exception("re-checking %s for %s failed; keeping it", name, user_id)
                    continue
                if not allowed:
                    await self._forbid(session, name)

    async def _forbid(self, session: SocketSession, name: str) -> None:
        """The socket may no longer see topic `name`: drop it and tell the client (`unsubscribed`)."""
        if not self.is_subscribed(session, name):
            return
        await self.unsubscribe(session, name)
        session.conn.send_direct(
            encode_once({"type": "unsubscribed", "topic": name, "reason": "forbidden"})[session.conn.codec]
        )

    # --- socket audit after a broker reconnect (realtime/audit.py) -------------------------

    def _audit_soon(self) -> None:
        """Audit the sockets once the current audit (if any) is over; a no-op with none open."""
        if self.auditor is None or not self.sessions:
            return
        if self._auditing is not None and not self._auditing.done():
            self._audit_again = True
            return
        self._auditing = asyncio.ensure_future(self._audit_until_done())
        self._tasks.add(self._auditing)
        self._auditing.add_done_callback(self._tasks.discard)

    async def _audit_until_done(self) -> None:
        while True:
            self._audit_again = False
            await self._audit()
            if not self._audit_again:
                return

    async def _audit(self) -> None:
        """Apply what the control messages missed during a disconnect would have done, for every
        local socket at once (one batched check; see `realtime.audit`).

        A socket whose session is gone closes with 4409; one whose session now ends sooner
        gets the shorter expiry (4401 then, from housekeeping); every topic its user may no
        longer see is dropped with `unsubscribed`. It starts once Redis has run the new
        connection's SUBSCRIBEs (a broker barrier). Sockets opened after that are not touched
        (they authenticated and subscribed with the control channel heard, so any later control
        message reaches them), nor one that renewed its session meanwhile.
        """
        assert self.auditor is not None
        # Only once Redis has run the new connection's SUBSCRIBEs (the barrier's PING is answered
        # after them) is the control channel heard again. Without this wait the check could read
        # PostgreSQL before Redis took them, and a change committed in between, whose PUBLISH
        # Redis ran before the SUBSCRIBE, would be neither seen nor heard. The barrier also
        # returns when that connection fails; the next connection audits again. Cost: one
        # round trip to Redis per audit.
        await self.broker.barrier()
        sessions = list(self.sessions)
        holdings = []
        for session in sessions:
            held = tuple(
                topic for topic in map(topics.parse, sorted(self.hub.topics_of(session.conn))) if topic is not None
            )
            holdings.append(Holding(session.identity.session_id, session.identity.user_id, held))
        if not holdings:
            return
        verdict: Verdict | None = None
        for attempt in range(AUDIT_ATTEMPTS):
            try:
                verdict = await self.auditor.audit(holdings)
                break
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                delay = min(0.5 * 2**attempt, AUDIT_BACKOFF_MAX)
                logger.warning("socket audit of %d sockets failed (%r); retrying in %.1fs", len(holdings), exc, delay)
                await asyncio.sleep(delay)
        if verdict is None:
            metrics.incr("audit.failed")
            logger.error("socket audit of %d sockets gave up; the next broker reconnect tries again", len(holdings))
            return
        revoked = shortened = forbidden = 0
        for session, holding in zip(sessions, holdings, strict=True):
            if session not in self.sessions or session.identity.session_id != holding.session_id:
                continue  # closed, or renewed (its new session came after the reconnect)
            ends = verdict.sessions.get(holding.session_id)
            if ends is None:
                revoked += 1
                self._spawn(session_close(session, closecodes.SESSION_REVOKED))
                continue
            if ends < session.identity.expires_at:
                shortened += 1
                session.identity = dataclasses.replace(session.identity, expires_at=ends)
            for topic in holding.topics:
                if (holding.user_id, topic.name) in verdict.denied:
                    forbidden += 1
                    await self._forbid(session, topic.name)
        for user_id in sorted({user_id for user_id, _ in verdict.denied}):
            await self._run_hooks("access.changed", {"kind": "access.changed", "userId": user_id})
        metrics.incr("audit.runs")
        metrics.incr("audit.revoked", revoked)
        logger.info(
            "socket audit after a broker reconnect: %d sockets, %d closed (session gone), "
            "%d sessions shortened, %d subscriptions forbidden",
            len(holdings),
            revoked,
            shortened,
            forbidden,
        )

    def close_where(self, predicate: Callable[[SocketSession], bool], code: int) -> int:
        """Close every local socket matching `predicate` with `code`; returns how many."""
        matching = [s for s in self.sessions if predicate(s)]
        for session in matching:
            self._spawn(session_close(session, code))
        return len(matching)

    def _spawn(self, coro: Awaitable[Any]) -> None:
        task: asyncio.Task[Any] = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)


async def session_close(session: SocketSession, code: int) -> None:
    """Close one socket with `code`, ignoring a socket already gone."""
    try:
        await session.close(code)
    except Exception:
        logger.debug("closing %s with %d failed; already gone", session.conn_id, code)


# --- one core per event loop ---------------------------------------------------------

_factory: Callable[[], Realtime] | None = None
_instances: dict[asyncio.AbstractEventLoop, Realtime] = {}
_starting: dict[asyncio.AbstractEventLoop, asyncio.Future[Realtime]] = {}
# Cores built before the last `install`, still running: `get_realtime` builds a new one, and
# `stop_realtime` on their loop still stops them (a test that reconfigures while sockets are open).
_retired: dict[asyncio.AbstractEventLoop, list[Realtime]] = {}


def install(factory: Callable[[], Realtime]) -> None:
    """Set how the composition root builds the core (`pms.wiring`). Built instances are no longer
    handed out; they run until `stop_realtime` on their loop."""
    global _factory
    _factory = factory
    for loop, instance in _instances.items():
        _retired.setdefault(loop, []).append(instance)
    _instances.clear()
    _starting.clear()


async def get_realtime() -> Realtime:
    """The running loop's core, built and started on first use."""
    loop = asyncio.get_running_loop()
    instance = _instances.get(loop)
    if instance is not None:
        return instance
    pending = _starting.get(loop)
    if pending is not None:
        return await asyncio.shield(pending)
    if _factory is None:
        raise RuntimeError("realtime core not configured: call realtime.runtime.install() first")
    future: asyncio.Future[Realtime] = loop.create_future()
    _starting[loop] = future
    try:
        instance = _factory()
        await instance.start()
    except BaseException as exc:
        del _starting[loop]
        future.set_exception(exc)
        future.exception()  # retrieved: the caller gets it raised below
        raise
    _instances[loop] = instance
    del _starting[loop]
    future.set_result(instance)
    return instance


def current() -> Realtime | None:
    """The running loop's core if it was started, else None (metrics, health)."""
    try:
        return _instances.get(asyncio.get_running_loop())
    except RuntimeError:
        return None


async def stop_realtime() -> None:
    """Stop and forget the running loop's core, and those built before the last `install` (tests, shutdown)."""
    loop = asyncio.get_running_loop()
    instance = _instances.pop(loop, None)
    for retired in _retired.pop(loop, []):
        await retired.stop()
    if instance is not None:
        await instance.stop()
    await connections.aclose_loop_clients()
