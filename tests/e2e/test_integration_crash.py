"""A lease document upload cut in two by a real crash: the server process is SIGKILLed after its
PostgreSQL half (row + intent) committed and the file was stored, while MongoDB has not answered;
recovery then undoes what the dead process left (apps/common/integration/entities.py)."""

import asyncio
import datetime
import socket
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from asgiref.sync import sync_to_async
from django.db import connections as db_connections

from apps.common import integration
from apps.common.models import IntegrationIntent
from apps.leasing.models import Lease, LeaseDocument
from realtime import connections
from tests.apps.api_world import build_world
from tests.e2e.conftest import WAIT, ServerFactory, kill, login

pytestmark = pytest.mark.timeout(60)


@pytest.fixture
def unanswering_mongo() -> Iterator[str]:
    """A TCP port that accepts connections and never says a word: a MongoDB that hangs."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(16)
        yield f"mongodb://127.0.0.1:{listener.getsockname()[1]}/"


def _wait_for(condition: Any, what: str) -> None:
    deadline = datetime.datetime.now(datetime.UTC) + datetime.timedelta(seconds=WAIT)
    while not condition():
        if datetime.datetime.now(datetime.UTC) > deadline:
            raise AssertionError(f"no {what} within {WAIT} s")
        threading.Event().wait(0.02)


async def _recover_later() -> dict[str, int]:
    try:
        later = datetime.datetime.now(datetime.UTC) + integration.INTENT_GRACE + datetime.timedelta(seconds=1)
        return await integration.arecover_intents(now=later)
    finally:
        await connections.aclose_loop_clients()
        await sync_to_async(db_connections.close_all)()


def test_a_server_killed_between_the_writes_leaves_an_intent_that_recovery_undoes(
    start_servers: ServerFactory,
    server_env: dict[str, str],
    unanswering_mongo: str,
    tmp_path: Path,
    settings: Any,
) -> None:
    media = tmp_path / "media"
    settings.MEDIA_ROOT = str(media)  # the recovery below deletes files where the server wrote them
    server_env.update(PMS_MONGO_URL=unanswering_mongo, PMS_MEDIA_ROOT=str(media))
    world = build_world()
    lease = Lease.objects.get(unit=world.unit)
    [server] = start_servers(1)
    token = login(server, world.manager.email)["token"]

    def post() -> None:
        try:
            requests.post(
                f"{server.http_url}/api/v1/leases/{lease.pk}/document-uploads",
                headers={"Authorization": f"Bearer {token}"},
                files={"file": ("addendum.txt", b"Addendum: pets allowed.")},
                timeout=WAIT,
            )
        except requests.RequestException:
            pass  # the server dies under it

    uploading = threading.Thread(target=post)
    uploading.start()
    _wait_for(lambda: IntegrationIntent.objects.exists() and any(media.rglob("*.txt")), "committed first half")
    kill(server)  # MongoDB has not answered (it never does): the second write never happened
    uploading.join(WAIT)

    [intent] = IntegrationIntent.objects.all()
    assert intent.state == "pending" and intent.entity_type == "lease_document"
    assert LeaseDocument.objects.filter(pk=intent.entity_id, lease=lease).exists()
    assert [path.name for path in media.rglob("*.txt")] == [Path(intent.files[0]).name]

    assert asyncio.run(_recover_later()) == {"finished": 0, "undone": 1, "cleaned": 0}
    assert not LeaseDocument.objects.exists()
    assert list(media.rglob("*.txt")) == []
    assert IntegrationIntent.objects.get().state == "undone"
