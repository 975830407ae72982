"""End-to-end: an HTTP write on one uvicorn process reaches a socket on another through the outbox
relay task that the server process runs (started by `pms.wiring.WithOutboxRelay`)."""

import asyncio
import json
import urllib.request
from typing import Any

import pytest

from realtime import topics
from tests.e2e.conftest import WAIT, Client, ClientFactory, ServerFactory, ServerProcess, alogin
from tests.factories import make_property, make_user

pytestmark = pytest.mark.django_db(transaction=True)


def patch(server: ServerProcess, path: str, token: str, body: dict[str, Any]) -> dict[str, Any]:
    request = urllib.request.Request(  # noqa: S310
        f"{server.http_url}/api/v1{path}",
        data=json.dumps(body).encode(),
        headers={"Content-Type": "application/json", "Authorization": f"Bearer {token}"},
        method="PATCH",
    )
    with urllib.request.urlopen(request, timeout=WAIT) as response:  # noqa: S310
        answer: dict[str, Any] = json.loads(response.read())
    return answer


@pytest.fixture
def world(start_servers: ServerFactory) -> tuple[Any, Any, ServerProcess, ServerProcess]:
    """A landlord and their property committed (sync, in the test thread), then servers A and B up."""
    landlord = make_user(user_type="landlord")
    prop = make_property(owner=landlord)
    a, b = start_servers(2)
    return landlord, prop, a, b


async def test_http_write_on_one_process_reaches_a_socket_on_the_other(
    world: tuple[Any, Any, ServerProcess, ServerProcess], open_client: ClientFactory
) -> None:
    landlord, prop, a, b = world
    socket: Client = await open_client(a, await alogin(a, landlord.email))
    topic = topics.property_changes(str(prop.pk))
    await socket.ok({"type": "subscribe", "topic": topic})

    token = await alogin(b, landlord.email)
    changed = await asyncio.to_thread(patch, b, f"/properties/{prop.pk}", token, {"city": "Capital City"})
    assert changed["city"] == "Capital City"
    event = await socket.next_event(lambda frame: frame["event"] == "property.updated")
    assert event["topic"] == topic and event["data"]["city"] == "Capital City"
    assert event["data"]["id"] == str(prop.pk)
