"""`auth.refresh`: a socket takes over a renewed session of its user without reconnecting."""

from typing import Any

from apps.accounts.services import Principal, asession_authenticate
from consumers.commands import NO_REPLY, CommandContext, command
from realtime import closecodes, errors
from realtime.chat_schema import iso
from realtime.errors import ProtocolError
from realtime.session import Identity

TOKEN_REQUIRED = "`token` must be a non-empty string."
OTHER_USER = "The token belongs to another user; a socket keeps its user: open a new socket for them."


def identity_of(principal: Principal) -> Identity:
    """What the realtime core keeps of a socket's principal."""
    return Identity(
        user_id=principal.user_id,
        user_type=principal.user_type,
        session_id=principal.session_id,
        expires_at=principal.expires_at,
        roles=principal.roles,
    )


@command("auth.refresh")
async def handle_auth_refresh(ctx: CommandContext, frame: dict[str, Any]) -> Any:
    """Swap the socket onto the session of `token` (from `POST /api/v1/auth/refresh`).

    Every subscription stays. From now on the socket is closed 4401 when the new session
    expires and 4409 when it is revoked; the old session's fate no longer touches it.
    Errors never close the socket: a missing token is `bad_request`, a bad, expired or
    revoked one `unauthorized`, another user's `bad_request`. Only a revocation of the new
    session racing the swap closes it (4409), as it would a moment later.
    """
    token = frame.get("token")
    if not isinstance(token, str) or not token:
        raise ProtocolError(errors.BAD_REQUEST, TOKEN_REQUIRED)
    principal = await asession_authenticate(token)
    session = ctx.session
    if principal.user_id != session.identity.user_id:
        raise ProtocolError(errors.BAD_REQUEST, OTHER_USER)
    before = session.identity
    ctx.realtime.reidentify(session, identity_of(principal))
    try:
        # A revocation of the new session that arrived while it was being checked was aimed at a
        # session this socket did not hold yet: look once more now that it does.
        await asession_authenticate(token)
    except ProtocolError:
        await session.close(closecodes.SESSION_REVOKED)
        return NO_REPLY
    if (before.user_type, before.roles) != (principal.user_type, principal.roles):
        # The renewed session carries the user's current type and roles: re-check what they see.
        await ctx.realtime.recheck_access(principal.user_id)
    return {"sessionId": principal.session_id, "expiresAt": iso(principal.expires_at)}
