"""`subscribe` and `unsubscribe`."""

from typing import Any

from consumers.commands import NO_REPLY, CommandContext, command
from consumers.commands.fields import optional_str, required_str
from realtime import errors, topics
from realtime.errors import ProtocolError

MALFORMED_TOPIC = "Unknown or malformed topic name."
FORBIDDEN_TOPIC = "You may not subscribe to this topic."
TOO_MANY_SUBSCRIPTIONS = "At most {cap} subscriptions per socket."


@command("subscribe")
async def handle_subscribe(ctx: CommandContext, frame: dict[str, Any]) -> Any:
    name = required_str(frame, "topic", max_length=100)
    since = optional_str(frame, "since", max_length=100)
    topic = topics.parse(name)
    if topic is None:
        raise ProtocolError(errors.BAD_REQUEST, MALFORMED_TOPIC)
    realtime, session = ctx.realtime, ctx.session
    if not await realtime.allowed(session, topic):
        raise ProtocolError(errors.FORBIDDEN, FORBIDDEN_TOPIC)
    already = realtime.is_subscribed(session, topic.name)
    if not already and realtime.subscription_count(session) >= realtime.settings.max_subscriptions:
        raise ProtocolError(errors.CONFLICT, TOO_MANY_SUBSCRIPTIONS.format(cap=realtime.settings.max_subscriptions))
    if already:
        await realtime.unsubscribe(session, topic.name)
    try:
        result = await realtime.subscribe(session, topic.name, since)
    except Exception:
        await realtime.abort_subscribe(session, topic.name)
        raise
    ctx.reply(ctx.ref, result.as_reply())
    realtime.release_held(session, result)
    return NO_REPLY


@command("unsubscribe")
async def handle_unsubscribe(ctx: CommandContext, frame: dict[str, Any]) -> dict[str, Any]:
    name = required_str(frame, "topic", max_length=100)
    topic = topics.parse(name)
    if topic is None:
        raise ProtocolError(errors.BAD_REQUEST, MALFORMED_TOPIC)
    # By the canonical name, as `subscribe` stored it: any spelling `subscribe` accepted
    # (upper-case or dash-less ids) stops the same subscription.
    await ctx.realtime.unsubscribe(ctx.session, topic.name)
    return {}
