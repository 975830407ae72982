"""Socket fixtures: the real ASGI application under Channels' WebsocketCommunicator."""

from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import replace
from typing import Any

import pytest
from asgiref.sync import sync_to_async
from channels.testing import WebsocketCommunicator
from django.db import connections as db_connections

from apps.accounts.services import asession_login
from pms import wiring
from pms.asgi import application
from realtime import connections
from realtime.runtime import stop_realtime
from tests.factories import DEFAULT_PASSWORD, make_user

Connect = Callable[..., Awaitable[WebsocketCommunicator]]


@pytest.fixture
async def realtime_core() -> AsyncIterator[None]:
    """Stop this test loop's realtime core (broker reader, tasks) when the test ends."""
    yield
    await stop_realtime()
    await wiring.stop_outbox_relay()
    # The ORM ran in asgiref's shared thread: close its connection so the test DB can be dropped.
    await sync_to_async(db_connections.close_all)()


@pytest.fixture
def tune() -> Iterator[Callable[..., None]]:
    """Change realtime settings (limits, timeouts) for one test; restored afterwards."""
    original = connections.current_settings()

    def apply(**changes: Any) -> None:
        wiring.configure(replace(original, **changes))

    yield apply
    wiring.configure(original)


async def close_code(socket: WebsocketCommunicator, timeout: float = 3) -> int | None:
    """Read frames until the server closes; returns the close code."""
    while True:
        output = await socket.receive_output(timeout)
        if output["type"] == "websocket.close":
            return output.get("code")


@pytest.fixture
def new_user(transactional_db: Any) -> Callable[..., Awaitable[Any]]:
    async def create(**fields: Any) -> Any:
        return await sync_to_async(make_user)(**fields)

    return create


async def token_for(user: Any) -> str:
    _, token = await asession_login(email=user.email, password=DEFAULT_PASSWORD, ip="127.0.0.1", user_agent="tests")
    return token


@pytest.fixture
async def connect(realtime_core: None) -> AsyncIterator[Connect]:
    opened: list[WebsocketCommunicator] = []

    async def open_socket(
        token: str | None = None,
        *,
        subprotocols: list[str] | None = None,
        headers: list[tuple[bytes, bytes]] | None = None,
        expect_accept: bool = True,
    ) -> WebsocketCommunicator:
        all_headers = list(headers or [])
        if token is not None:
            all_headers.append((b"authorization", f"Bearer {token}".encode()))
        communicator = WebsocketCommunicator(application, "/ws/", headers=all_headers, subprotocols=subprotocols)
        opened.append(communicator)
        connected, _ = await communicator.connect(timeout=3)
        assert connected is expect_accept
        return communicator

    yield open_socket
    for communicator in opened:
        await communicator.disconnect(timeout=2)
