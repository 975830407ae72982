"""Socket command handlers, one module per area; `COMMANDS` maps a frame `type` to its handler.

A handler is `async def handle_<type with dots as underscores>(ctx, frame) -> data`;
it raises `ProtocolError` for a failure the client must see, and returns `NO_REPLY`
when it has already replied itself (subscribe replies before releasing held events).
"""

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from realtime.runtime import Realtime
from realtime.session import SocketSession


class _NoReply:
    def __repr__(self) -> str:
        return "NO_REPLY"


NO_REPLY: Any = _NoReply()


@dataclass(frozen=True)
class CommandContext:
    realtime: Realtime
    session: SocketSession
    ref: Any
    reply: Callable[[Any, Any], None]


Handler = Callable[[CommandContext, dict[str, Any]], Awaitable[Any]]

COMMANDS: dict[str, Handler] = {}


def command(name: str) -> Callable[[Handler], Handler]:
    """Register a handler for frame type `name`."""

    def register(handler: Handler) -> Handler:
        COMMANDS[name] = handler
        return handler

    return register


from consumers.commands import chat, notifications, presence, session, subscriptions  # noqa: E402,F401  (register their handlers)
