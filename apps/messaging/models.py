"""Messaging: conversations and their participants.

EXTENSION: the seed has no PostgreSQL tables for chat. It stores messages in MongoDB's
`chat_messages` (keyed by a free-form `conversationId`) and publishes them on Redis
`chat:messages:{conversationId}`. These two tables give that id a home: a
`conversation_id` here is the `conversationId` there, and who may read or subscribe to
`chat:messages:{conversationId}` is exactly the conversation's participants. Per-participant
read state for group conversations lives in `last_read_message_id` / `last_read_at`.
"""

from django.db import models

from apps.common.fields import (
    created_at_field,
    timestamp_now_field,
    updated_at_field,
    uuid_primary_key,
)


class Conversation(models.Model):
    """EXTENSION (not in the seed): a chat thread whose messages live in MongoDB `chat_messages`."""

    id = uuid_primary_key("conversation_id")
    subject = models.CharField(max_length=255, null=True, blank=True)
    property = models.ForeignKey(
        "properties.Property",
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="conversations",
        db_column="property_id",
    )
    created_by = models.ForeignKey(
        "accounts.User",
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="conversations_started",
        db_column="created_by",
    )
    created_at = created_at_field()
    updated_at = updated_at_field()

    class Meta:
        db_table = "conversations"

    def __str__(self) -> str:
        return self.subject or f"conversation {self.id}"


class ConversationParticipant(models.Model):
    """EXTENSION (not in the seed): a user in a conversation, with their last-read position."""

    id = uuid_primary_key("participant_id")
    conversation = models.ForeignKey(
        Conversation,
        on_delete=models.CASCADE,
        related_name="participants",
        db_column="conversation_id",
    )
    user = models.ForeignKey(
        "accounts.User",
        on_delete=models.CASCADE,
        related_name="conversation_memberships",
        db_column="user_id",
    )
    joined_at = timestamp_now_field("joined_at")
    # MongoDB ObjectId (24 hex characters) of the last chat_messages document read.
    last_read_message_id = models.CharField(max_length=24, null=True, blank=True)
    last_read_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        db_table = "conversation_participants"
        constraints = [
            models.UniqueConstraint(
                fields=["conversation", "user"],
                name="conversation_participants_conversation_id_user_id_key",
            )
        ]

    def __str__(self) -> str:
        return f"{self.user_id} in {self.conversation_id}"
