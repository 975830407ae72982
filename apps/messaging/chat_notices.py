"""Chat notifications: a message to a participant with no socket open notifies them, once per
conversation until they read it (docs/notifications.md).

Off the send path's per-message cost: `message_sent` only appends to this loop's batch; a
task drains the batch after the loop turn (all sends of one tick together): one presence
query (`chat:presence:*`, one round trip) for every recipient of the batch, one pipelined
`SET NX` of `chat:notified:{conversationId}:{userId}` for the offline ones, and one
`notify_on_commit` (one INSERT into the notice outbox) for those whose marker was new; the
notices are then delivered exactly once like every other (apps/events/delivery.py).

"Has a socket open" is presence's answer: `offline` means no live socket on any server
process (an `away` user has one). The marker lives as long as the notification
(`NOTICE_DAYS`) and is dropped by the recipient's `chat.read` of that conversation, which
also marks that chat notification read, so the next message after a read notifies again. A crash between the marker and the outbox
INSERT loses that one notification (the marker is dropped again when the INSERT fails).
A recipient with a socket open in this process is online without asking Redis.
Best effort in one more way: a recipient seen online is not asked about again for
`ONLINE_CACHE_SECONDS` (per process), so a message within seconds of their last socket
closing may not notify them; the next one after that does.
"""

import asyncio
import logging
import time
import weakref
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from asgiref.sync import sync_to_async

from apps.accounts.models import User
from apps.events.notices import Notice, notify_on_commit
from realtime import connections, keys, metrics
from realtime.presence.base import OFFLINE
from realtime.runtime import Realtime

logger = logging.getLogger(__name__)

NOTICE_CHAT = "chat_message"
REFERENCE_CONVERSATION = "conversation"
NOTICE_DAYS = 7
PREVIEW_CHARS = 140
# A recipient seen with a socket open is not asked about again for this long (a busy
# conversation costs one presence lookup per recipient per period, not one per tick).
ONLINE_CACHE_SECONDS = 5.0
_ONLINE_CACHE_MAX = 50_000


@dataclass(frozen=True)
class _Sent:
    conversation_id: str
    sender_id: str
    recipients: tuple[str, ...]
    text: str


class ChatNoticer:
    """One event loop's batch of sends waiting to be turned into chat notifications."""

    def __init__(self, realtime: Realtime) -> None:
        self._realtime = weakref.ref(realtime)
        self._pending: list[_Sent] = []
        self._task: asyncio.Task[None] | None = None
        self._online_until: dict[str, float] = {}  # user -> monotonic time until which they count as online

    def add(self, sent: _Sent) -> None:
        self._pending.append(sent)
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self._drain(), name="chat-notices")

    async def drain(self) -> None:
        """Wait until every send added so far was considered (tests, shutdown)."""
        while self._task is not None and not self._task.done():
            await asyncio.shield(self._task)

    async def _drain(self) -> None:
        await asyncio.sleep(0)  # the other sends of this loop turn join the batch
        while self._pending:
            batch, self._pending = self._pending, []
            try:
                await self._notify(batch)
            except Exception:
                metrics.incr("chat_notices.failed")
                logger.exception("chat notifications of %d message(s) not raised", len(batch))

    async def _notify(self, batch: list[_Sent]) -> None:
        realtime = self._realtime()
        if realtime is None or realtime.presence is None:
            return
        latest: dict[tuple[str, str], _Sent] = {}
        for sent in batch:
            for user in sent.recipients:
                if user != sent.sender_id:
                    latest[(sent.conversation_id, user)] = sent
        if not latest:
            return
        now = time.monotonic()
        # A socket of theirs open in this process answers without Redis (the sender's peers, mostly).
        unknown = [
            user
            for user in dict.fromkeys(user for _, user in latest)
            if not realtime.has_socket(user) and self._online_until.get(user, 0) <= now
        ]
        if not unknown:
            return
        presence = await realtime.presence.presence.query(unknown)
        if len(self._online_until) > _ONLINE_CACHE_MAX:
            self._online_until = {user: t for user, t in self._online_until.items() if t > now}
        offline_users = set()
        for user in unknown:
            if user in presence and presence[user]["status"] != OFFLINE:
                self._online_until[user] = now + ONLINE_CACHE_SECONDS
            else:
                offline_users.add(user)
        offline = [pair for pair in latest if pair[1] in offline_users]
        if not offline:
            return
        redis = connections.get_redis()
        ttl = NOTICE_DAYS * 86400
        async with redis.pipeline(transaction=False) as pipe:
            for conversation_id, user in offline:
                pipe.set(keys.chat_notified(conversation_id, user), "1", nx=True, ex=ttl)
            fresh = [pair for pair, new in zip(offline, await pipe.execute(), strict=True) if new]
        if not fresh:
            return
        try:
            await sync_to_async(_record)([(user, latest[(cid, user)]) for cid, user in fresh])
        except BaseException:
            await redis.delete(*(keys.chat_notified(cid, user) for cid, user in fresh))
            raise
        metrics.incr("chat_notices.raised", len(fresh))


def _record(items: list[tuple[str, _Sent]]) -> None:
    senders = {sent.sender_id for _, sent in items}
    names = {
        str(pk): f"{first} {last}".strip() or "Someone"
        for pk, first, last in User.objects.filter(pk__in=senders).values_list("pk", "first_name", "last_name")
    }
    expires = datetime.now(UTC) + timedelta(days=NOTICE_DAYS)
    notify_on_commit(
        *(
            Notice(
                user_id=user,
                type=NOTICE_CHAT,
                title=f"New message from {names.get(sent.sender_id, 'Someone')}",
                message=_preview(sent.text),
                reference_id=sent.conversation_id,
                reference_type=REFERENCE_CONVERSATION,
                priority="medium",
                actions=(
                    {
                        "label": "Open conversation",
                        "url": f"/api/v1/conversations/{sent.conversation_id}/messages",
                        "type": "link",
                    },
                ),
                expires_at=expires,
            )
            for user, sent in items
        )
    )


def _preview(text: str) -> str:
    text = " ".join(text.split())
    if not text:
        return "Sent an attachment."
    return text if len(text) <= PREVIEW_CHARS else text[: PREVIEW_CHARS - 1] + "…"


_noticers: "weakref.WeakKeyDictionary[Realtime, ChatNoticer]" = weakref.WeakKeyDictionary()


def noticer(realtime: Realtime) -> ChatNoticer:
    """The core's batch (one per realtime core, so one per event loop)."""
    found = _noticers.get(realtime)
    if found is None:
        found = _noticers[realtime] = ChatNoticer(realtime)
    return found


def message_sent(realtime: Realtime, *, conversation_id: str, participants: list[str], message: dict[str, Any]) -> None:
    """A stored message: its offline recipients may get a chat notification (after this loop turn)."""
    noticer(realtime).add(
        _Sent(
            conversation_id=conversation_id,
            sender_id=str(message.get("senderId")),
            recipients=tuple(participants),
            text=str(message.get("message") or ""),
        )
    )


async def aconversation_read(realtime: Realtime, *, conversation_id: str, reader_id: str) -> None:
    """The reader read the conversation: its chat notification is marked read (when one was
    raised: only then is MongoDB asked), and their next offline message notifies again."""
    if await connections.get_redis().delete(keys.chat_notified(conversation_id, reader_id)):
        if realtime.notifications is not None:
            await realtime.notifications.mark_read_about(reader_id, type=NOTICE_CHAT, reference_id=conversation_id)
