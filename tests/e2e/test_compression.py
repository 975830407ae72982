"""Per-message deflate is declined unless PMS_WS_DEFLATE is on (pms/server.py says why), checked on
the production command line with a client that offers it, as every browser does. Declined, the
offer costs nothing: the handshake takes the lean path and the socket works uncompressed."""

import json
from typing import Any

import pytest
from websockets.asyncio.client import connect

from pms.server import ws_options
from tests.e2e.conftest import WAIT, ServerProcess, StartServer, alogin
from tests.factories import make_user


def test_the_flag_follows_the_setting() -> None:
    assert ws_options({}) == ["--ws-per-message-deflate", "false"]
    assert ws_options({"PMS_WS_DEFLATE": "0"}) == ["--ws-per-message-deflate", "false"]
    assert ws_options({"PMS_WS_DEFLATE": "1"}) == ["--ws-per-message-deflate", "true"]
    assert ws_options({"PMS_WS_DEFLATE": " Yes "}) == ["--ws-per-message-deflate", "true"]


async def _authenticated_extensions(server: ServerProcess, token: str) -> tuple[list[str], str | None]:
    """Opens a socket offering permessage-deflate (websockets' default), authenticates with a frame
    and returns the extensions in use and the 101's `Sec-WebSocket-Extensions` header."""
    async with connect(
        server.ws_url,
        subprotocols=["pms.v1.json"],  # type: ignore[list-item]
        compression="deflate",
        open_timeout=WAIT,
        close_timeout=2,
    ) as ws:
        await ws.send(json.dumps({"type": "auth", "token": token, "ref": 1}))
        reply = json.loads(await ws.recv(decode=True))
        assert reply["ok"], reply
        assert ws.response is not None
        return [extension.name for extension in ws.protocol.extensions], ws.response.headers.get(
            "Sec-WebSocket-Extensions"
        )


@pytest.fixture
def user(transactional_db: None) -> Any:
    return make_user()


async def test_an_offer_of_deflate_is_declined_by_default_and_accepted_when_configured(
    start_production_server: StartServer, user: Any
) -> None:
    plain = start_production_server()
    extensions, header = await _authenticated_extensions(plain, await alogin(plain, user.email))
    assert extensions == [] and header is None
    compressing = start_production_server(PMS_WS_DEFLATE="1")
    extensions, header = await _authenticated_extensions(compressing, await alogin(compressing, user.email))
    assert extensions == ["permessage-deflate"]
    assert header is not None and header.startswith("permessage-deflate")
