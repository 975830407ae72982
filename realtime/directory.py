"""What the realtime core needs to know of the domain, declared here and implemented by `apps`."""

from typing import Protocol

from realtime.topics import Viewer


class Directory(Protocol):
    """Memberships (PostgreSQL behind a cache, in `apps.messaging`)."""

    async def participants(self, conversation_id: str) -> list[str]:
        """User ids of the conversation's participants (empty when it does not exist)."""
        ...

    async def conversations_of(self, user_id: str) -> list[str]:
        """Ids of the conversations the user takes part in."""
        ...

    async def conversations_of_many(self, user_ids: list[str]) -> dict[str, list[str]]:
        """`conversations_of` for each user, looked up together."""
        ...

    async def visible_users(self, viewer: Viewer, user_ids: list[str]) -> set[str]:
        """Those of `user_ids` who share a conversation or a property with the viewer (admins: all)."""
        ...
