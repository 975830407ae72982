"""`presence.query`."""

import uuid
from typing import Any

from consumers.commands import CommandContext, command
from realtime import errors
from realtime.errors import ProtocolError
from realtime.topics import Viewer

BAD_USER_IDS = "`userIds` must be a list of at most 200 user ids (UUID strings)."
MAX_USER_IDS = 200


def _is_uuid(value: object) -> bool:
    if not isinstance(value, str) or len(value) > 64:
        return False
    try:
        return str(uuid.UUID(value)) == value.lower()
    except ValueError:
        return False


@command("presence.query")
async def handle_presence_query(ctx: CommandContext, frame: dict[str, Any]) -> dict[str, Any]:
    user_ids = frame.get("userIds")
    if (
        not isinstance(user_ids, list)
        or len(user_ids) > MAX_USER_IDS
        or not all(_is_uuid(user_id) for user_id in user_ids)
    ):
        raise ProtocolError(errors.BAD_REQUEST, BAD_USER_IDS)
    realtime = ctx.realtime
    if realtime.presence is None or realtime.directory is None:
        raise ProtocolError(errors.UNAVAILABLE, "Presence is not available on this server.")
    identity = ctx.session.identity
    visible = await realtime.directory.visible_users(
        Viewer(user_id=identity.user_id, user_type=identity.user_type), list(dict.fromkeys(user_ids))
    )
    if not visible:
        return {}
    answers = await realtime.presence.presence.query(sorted(visible))
    return {user_id: dict(info) for user_id, info in answers.items()}
