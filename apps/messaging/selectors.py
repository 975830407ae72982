"""Reads of conversations: memberships from PostgreSQL, unread counts from MongoDB `chat_messages`.

A user sees the conversations they take part in; an admin may open any conversation
(read-only unless a participant), like the socket's `chat.history`. Others get `not_found`.

Unread (ours, DESIGN.md): the messages of a conversation after the participant's
`last_read_message_id` (all of them when there is none) that someone else sent and that
are not deleted. Read positions move with `chat.read` over the socket and
`POST /conversations/{id}/read`, both through the same services.
"""

import asyncio
from collections.abc import Iterable
from typing import Any
from uuid import UUID

from bson import ObjectId
from django.db import connection
from django.db.models import OuterRef, QuerySet, Subquery

from apps.accounts.services import Principal
from apps.common import policy
from apps.common.pgarrays import is_canonical_uuid, uuid_array
from apps.common.visibility import not_found
from apps.messaging.models import Conversation, ConversationParticipant
from realtime import connections
from realtime.chat_schema import to_message
from realtime.documents import CHAT_MESSAGES

UNREAD_COUNT_CONCURRENCY = 8
MAX_UNREAD_COUNTED = 999
_NOT_TRUE = {"$nin": [True, 1]}  # the stand-in reads a $set boolean back as 1 (DESIGN.md)


# The sockets' chat facts: one statement each per batch, no ORM, ids as one array literal
# (apps/common/pgarrays.py): `topic_allowed_many`'s decisions and the presence directory's lists.
_EXISTING = (
    f"SELECT {Conversation._meta.pk.column}::text FROM {Conversation._meta.db_table}"
    f" WHERE {Conversation._meta.pk.column} = ANY(%s::uuid[])"
)
_PARTICIPANT_USER = ConversationParticipant._meta.get_field("user").column
_PARTICIPANT_CONVERSATION = ConversationParticipant._meta.get_field("conversation").column
_PARTICIPATIONS = (
    f"SELECT {_PARTICIPANT_USER}::text, {_PARTICIPANT_CONVERSATION}::text"
    f" FROM {ConversationParticipant._meta.db_table}"
    f" WHERE {_PARTICIPANT_USER} = ANY(%s::uuid[]) AND {_PARTICIPANT_CONVERSATION} = ANY(%s::uuid[])"
)


def conversations_existing(*, conversation_ids: Iterable[str]) -> set[str]:
    """The ids among `conversation_ids` (canonical UUID strings) of conversations that exist."""
    ids = sorted(set(conversation_ids))
    if not ids:
        return set()
    with connection.cursor() as cursor:
        cursor.execute(_EXISTING, [uuid_array(ids)])
        return {pk for (pk,) in cursor.fetchall()}


def participations(*, user_ids: Iterable[str], conversation_ids: Iterable[str]) -> set[tuple[str, str]]:
    """(user, conversation) for each of the users taking part in each of the conversations
    (canonical UUID strings both): one query for a whole batch of pairs."""
    users, conversations = sorted(set(user_ids)), sorted(set(conversation_ids))
    if not users or not conversations:
        return set()
    with connection.cursor() as cursor:
        cursor.execute(_PARTICIPATIONS, [uuid_array(users), uuid_array(conversations)])
        return {(user_id, conversation_id) for user_id, conversation_id in cursor.fetchall()}


_MEMBERSHIPS = (
    f"SELECT {_PARTICIPANT_USER}::text, {_PARTICIPANT_CONVERSATION}::text"
    f" FROM {ConversationParticipant._meta.db_table} WHERE {_PARTICIPANT_USER} = ANY(%s::uuid[])"
)


def conversation_ids_of(*, user_ids: Iterable[str]) -> dict[str, list[str]]:
    """Each user's conversation ids, by the id as given (one that is not a canonical UUID has none)."""
    found: dict[str, list[str]] = {user_id: [] for user_id in user_ids}
    valid = [user_id for user_id in found if is_canonical_uuid(user_id)]
    if valid:
        with connection.cursor() as cursor:
            cursor.execute(_MEMBERSHIPS, [uuid_array(valid)])
            for user_id, conversation_id in cursor.fetchall():
                found[user_id].append(conversation_id)
    return found


def conversation_list_for_user(*, user_id: str) -> QuerySet[Conversation]:
    """The user's conversations, most recently changed first, each with `my_last_read` annotated."""
    mine = ConversationParticipant.objects.filter(conversation=OuterRef("pk"), user_id=user_id)
    return (
        Conversation.objects.filter(participants__user_id=user_id)
        .annotate(my_last_read=Subquery(mine.values("last_read_message_id")[:1]))
        .prefetch_related("participants__user")
        .order_by("-updated_at", "-created_at", "-pk")
    )


def access_conversation(*, caller: Principal, conversation_id: UUID) -> Conversation:
    """The conversation if the caller takes part (or is an admin), with `my_last_read` annotated; else `not_found`."""
    mine = ConversationParticipant.objects.filter(conversation=OuterRef("pk"), user_id=caller.user_id)
    conversations = Conversation.objects.filter(pk=conversation_id).annotate(
        my_last_read=Subquery(mine.values("last_read_message_id")[:1]),
        is_participant=Subquery(mine.values("pk")[:1]),
    )
    found = conversations.prefetch_related("participants__user").first()
    if found is None or (found.is_participant is None and not policy.sees_all(caller, "chat.use")):
        raise not_found()
    return found


def conversation_participant_ids(*, conversation_id: Any) -> list[str]:
    """Current participants straight from PostgreSQL (no cache: authorizes HTTP writes)."""
    return [
        str(user_id)
        for user_id in ConversationParticipant.objects.filter(conversation_id=conversation_id)
        .order_by("joined_at", "pk")
        .values_list("user_id", flat=True)
    ]


def _unread_query(conversation_id: str, user_id: str, last_read: str | None) -> dict[str, Any]:
    query: dict[str, Any] = {"conversationId": conversation_id, "senderId": {"$ne": user_id}, "isDeleted": _NOT_TRUE}
    if last_read:
        query["_id"] = {"$gt": ObjectId(last_read)}
    return query


async def aconversation_unread_counts(*, user_id: str, positions: dict[str, str | None]) -> dict[str, int]:
    """Unread messages per conversation for the user, given their last-read message id in each,
    exact up to MAX_UNREAD_COUNTED (then that number: apps show "999+").

    Counted by reading the matching ids (projection `_id` only, at most the cap), not with
    `count`/`count_documents`: the stand-in server cannot compare ObjectIds in those
    (measured with nx-27017 0.8.1: "type 'ObjectId' is not supported", and 0), while `find`
    is exact on both it and mongod, and is what `ChatService.history` pages with.
    """
    messages = connections.get_mongo()[connections.current_settings().mongo_database][CHAT_MESSAGES]
    limit = asyncio.Semaphore(UNREAD_COUNT_CONCURRENCY)

    async def count(conversation_id: str, last_read: str | None) -> tuple[str, int]:
        query = _unread_query(conversation_id, user_id, last_read)
        async with limit:
            found = await messages.find(query, {"_id": 1}).limit(MAX_UNREAD_COUNTED).to_list()
        return conversation_id, len(found)

    return dict(await asyncio.gather(*(count(cid, last) for cid, last in positions.items())))


async def aconversation_last_messages(*, conversation_ids: list[str]) -> dict[str, dict[str, Any]]:
    """The newest message of each conversation, in the wire form of chat history (a deleted one as
    its tombstone); conversations without messages are left out. For inboxes: the caller already
    decided which conversations the user may see.

    One `find` per conversation, newest `_id` first, limit 1: the `(conversationId, _id)` order
    `ChatService.history` pages with, so each is one index step; at most
    UNREAD_COUNT_CONCURRENCY at a time, like the unread counts.
    """
    messages = connections.get_mongo()[connections.current_settings().mongo_database][CHAT_MESSAGES]
    limit = asyncio.Semaphore(UNREAD_COUNT_CONCURRENCY)

    async def newest(conversation_id: str) -> tuple[str, dict[str, Any] | None]:
        async with limit:
            found = await messages.find({"conversationId": conversation_id}).sort("_id", -1).limit(1).to_list()
        return conversation_id, to_message(found[0]) if found else None

    pairs = await asyncio.gather(*(newest(cid) for cid in dict.fromkeys(conversation_ids)))
    return {cid: message for cid, message in pairs if message is not None}
