"""Async JSON calls to /api/v1 for the messaging tests (AsyncClient: one event loop with the realtime core)."""

import json
from typing import Any

from django.test import AsyncClient

from tests.consumers.conftest import token_for

API = "/api/v1"


class AsyncApi:
    """One user's calls; the token comes from the real login service."""

    def __init__(self, user: Any, token: str) -> None:
        self.user, self.client = user, AsyncClient()
        self.headers = {"Authorization": f"Bearer {token}"}

    @classmethod
    async def login(cls, user: Any) -> "AsyncApi":
        return cls(user, await token_for(user))

    async def get(self, path: str, **params: Any) -> Any:
        data = {k: v for k, v in params.items() if v is not None}
        return await self.client.get(API + path, data=data, headers=self.headers)

    async def post(self, path: str, body: Any = None) -> Any:
        return await self.client.post(
            API + path,
            data=json.dumps(body if body is not None else {}),
            content_type="application/json",
            headers=self.headers,
        )

    async def delete(self, path: str) -> Any:
        return await self.client.delete(API + path, headers=self.headers)
