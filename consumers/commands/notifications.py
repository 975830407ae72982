"""`notifications.read`."""

from typing import Any

from consumers.commands import CommandContext, command
from realtime import errors
from realtime.errors import ProtocolError

IDS_OR_ALL = "Send `ids` (a list of notification ids) or `all: true`."


@command("notifications.read")
async def handle_notifications_read(ctx: CommandContext, frame: dict[str, Any]) -> dict[str, Any]:
    service = ctx.realtime.notifications
    if service is None:
        raise ProtocolError(errors.UNAVAILABLE, "Notifications are not available on this server.")
    ids, everything = frame.get("ids"), frame.get("all")
    if everything is True and ids is None:
        unread = await service.mark_read(ctx.session.identity.user_id, all=True)
    elif isinstance(ids, list) and everything in (None, False):
        unread = await service.mark_read(ctx.session.identity.user_id, ids=ids)
    else:
        raise ProtocolError(errors.BAD_REQUEST, IDS_OR_ALL)
    return {"unread": unread}
