"""`chat.send`, `chat.edit`, `chat.delete`, `chat.history`, `chat.read`, `chat.typing`."""

from typing import Any

from apps.messaging import services
from consumers.commands import CommandContext, command
from consumers.commands.fields import required_str, required_uuid
from realtime import errors, topics
from realtime.errors import ProtocolError
from realtime.hub import FrameMatch

NOT_A_PARTICIPANT = services.CALLER_NOT_A_PARTICIPANT
BAD_LIMIT = "`limit` must be an integer from 1 to 100."
BAD_ATTACHMENTS = "`attachments` must be a list."


async def _authorize_reader(ctx: CommandContext, conversation_id: str) -> None:
    """A participant, or an admin who may see the conversation's topic, may read its history."""
    realtime, session = ctx.realtime, ctx.session
    assert realtime.directory is not None
    if session.identity.user_id in await realtime.directory.participants(conversation_id):
        return
    # Non-participants (admins) are decided by the authorizer, for the user's current role: the
    # session's connect-time user type may be stale.
    topic = topics.parse(topics.chat_messages(conversation_id))
    if topic is not None and await realtime.allowed(session, topic):
        return
    raise ProtocolError(errors.FORBIDDEN, NOT_A_PARTICIPANT)


def _chat(ctx: CommandContext) -> Any:
    return services.chat_service(ctx.realtime)


def _own_message(topic: str, sender_id: str, client_message_id: str) -> FrameMatch:
    """Matches the `chat.message` event of this sender's send with this clientMessageId."""

    def match(frame: dict[str, Any]) -> bool:
        if frame.get("topic") != topic or frame.get("event") != "chat.message":
            return False
        data = frame.get("data")
        return (
            isinstance(data, dict)
            and data.get("clientMessageId") == client_message_id
            and data.get("senderId") == sender_id
        )

    return match


@command("chat.send")
async def handle_chat_send(ctx: CommandContext, frame: dict[str, Any]) -> Any:
    conversation_id = required_uuid(frame, "conversationId")
    attachments = frame.get("attachments")
    if attachments is not None and not isinstance(attachments, list):
        raise ProtocolError(errors.BAD_REQUEST, BAD_ATTACHMENTS)
    client_message_id = frame.get("clientMessageId")
    if isinstance(client_message_id, str):
        # The sender's socket gets the message's event and the reply; when the event comes
        # first (it usually does: Redis publishes it before the script's reply), both go out
        # in one write (`Connection.hold_for`; the consumer releases when the command ends).
        own = _own_message(topics.chat_messages(conversation_id), ctx.session.identity.user_id, client_message_id)
        ctx.session.conn.hold_for(own)
    return await services.achat_send(
        realtime=ctx.realtime,
        conversation_id=conversation_id,
        sender_id=ctx.session.identity.user_id,
        message=frame.get("message", ""),
        client_message_id=frame.get("clientMessageId"),
        attachments=attachments,
    )


@command("chat.edit")
async def handle_chat_edit(ctx: CommandContext, frame: dict[str, Any]) -> Any:
    return await _chat(ctx).edit(
        message_id=required_str(frame, "messageId", max_length=64),
        editor_id=ctx.session.identity.user_id,
        message=frame.get("message"),
    )


@command("chat.delete")
async def handle_chat_delete(ctx: CommandContext, frame: dict[str, Any]) -> Any:
    await _chat(ctx).delete(
        message_id=required_str(frame, "messageId", max_length=64), deleter_id=ctx.session.identity.user_id
    )
    return {}


@command("chat.history")
async def handle_chat_history(ctx: CommandContext, frame: dict[str, Any]) -> Any:
    conversation_id = required_uuid(frame, "conversationId")
    limit = frame.get("limit", 50)
    if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= 100:
        raise ProtocolError(errors.BAD_REQUEST, BAD_LIMIT)
    before = frame.get("before")
    await _authorize_reader(ctx, conversation_id)
    return await _chat(ctx).history(conversation_id=conversation_id, before=before, limit=limit)


@command("chat.read")
async def handle_chat_read(ctx: CommandContext, frame: dict[str, Any]) -> Any:
    conversation_id = required_uuid(frame, "conversationId")
    message_id = required_str(frame, "messageId", max_length=64)
    marked = await services.achat_read(
        realtime=ctx.realtime,
        conversation_id=conversation_id,
        reader_id=ctx.session.identity.user_id,
        message_id=message_id,
    )
    return {"readAt": marked["readAt"]}


@command("chat.typing")
async def handle_chat_typing(ctx: CommandContext, frame: dict[str, Any]) -> Any:
    conversation_id = required_uuid(frame, "conversationId")
    await services.achat_typing(
        realtime=ctx.realtime, conversation_id=conversation_id, user_id=ctx.session.identity.user_id
    )
    return {}
