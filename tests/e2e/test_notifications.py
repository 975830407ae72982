"""End-to-end: notifications raised by domain writes reach a tenant's real socket on a real uvicorn
process, through the notice outbox, whether the write ran in the server (HTTP, the server's relay
task delivers) or in another process with no relay task (as the job worker: the commit delivers);
and the count over HTTP matches."""

import asyncio
import json
import subprocess
import sys
import urllib.request
from typing import Any

import pytest

from apps.leasing.models import Tenant
from apps.maintenance import notices as maintenance_notices
from apps.maintenance.models import MaintenanceRequest
from realtime import topics
from tests.apps.api_world import World, build_world
from tests.e2e.conftest import ROOT, WAIT, ClientFactory, ServerFactory, ServerProcess, alogin

pytestmark = pytest.mark.django_db(transaction=True)


def call(server: ServerProcess, method: str, path: str, token: str, body: dict[str, Any] | None = None) -> Any:
    request = urllib.request.Request(  # noqa: S310
        f"{server.http_url}/api/v1{path}",
        data=None if body is None else json.dumps(body).encode(),
        headers={"Content-Type": "application/json", "Authorization": f"Bearer {token}"},
        method=method,
    )
    with urllib.request.urlopen(request, timeout=WAIT) as response:  # noqa: S310
        return json.loads(response.read())


@pytest.fixture
def world(start_servers: ServerFactory) -> tuple[World, MaintenanceRequest, ServerProcess]:
    """The world committed, a request filed by its tenant (before the server: no notice raised), one uvicorn."""
    world = build_world()
    tenant = Tenant.objects.get(user=world.tenant)
    filed = MaintenanceRequest.objects.create(
        unit=world.unit, tenant=tenant, category="plumbing", description="The sink leaks"
    )
    [server] = start_servers(1)
    return world, filed, server


async def test_a_tenant_socket_is_notified_when_a_manager_changes_their_request_over_http(
    world: tuple[World, MaintenanceRequest, ServerProcess], open_client: ClientFactory
) -> None:
    w, filed, server = world
    tenant_token = await alogin(server, w.tenant.email)
    socket = await open_client(server, tenant_token)
    await socket.ok({"type": "subscribe", "topic": topics.notifications(str(w.tenant.pk))})

    manager_token = await alogin(server, w.manager.email)
    changed = await asyncio.to_thread(
        call, server, "PATCH", f"/maintenance-requests/{filed.pk}", manager_token, {"status": "in_progress"}
    )
    assert changed["status"] == "in_progress"
    event = await socket.next_event(lambda frame: frame["event"] == "notification")
    assert event["topic"] == topics.notifications(str(w.tenant.pk))
    data = event["data"]
    assert data["type"] == maintenance_notices.NOTICE_REQUEST_STATUS and data["referenceId"] == str(filed.pk)
    assert data["userId"] == str(w.tenant.pk) and data["isRead"] is False
    count = await asyncio.to_thread(call, server, "GET", "/notifications/unread-count", tenant_token)
    assert count == {"unread": 1}

    completed = await asyncio.to_thread(
        call, server, "PATCH", f"/maintenance-requests/{filed.pk}", manager_token, {"status": "completed"}
    )
    assert completed["status"] == "completed"
    done = await socket.next_event(lambda frame: frame["event"] == "notification")
    assert done["data"]["type"] == maintenance_notices.NOTICE_REQUEST_COMPLETED
    listed = await asyncio.to_thread(call, server, "GET", "/notifications", tenant_token)
    assert [n["id"] for n in listed["notifications"]] == [done["data"]["id"], data["id"]]
    count = await asyncio.to_thread(call, server, "GET", "/notifications/unread-count", tenant_token)
    assert count == {"unread": 2}


WORKER_SCRIPT = """
import django
django.setup()
from pms import wiring
wiring.configure()
from django.utils import timezone
from apps.accounts.services import Principal
from apps.accounts.models import User
from apps.maintenance import services
manager = User.objects.get(pk={manager!r})
caller = Principal(
    user_id=str(manager.pk), session_id="worker", email=manager.email, first_name="", last_name="",
    user_type=manager.user_type, roles=(), expires_at=timezone.now(),
)
services.maintenance_request_update(caller=caller, request_id={request!r}, changes={{"status": "assigned"}})
from apps.events.models import NoticeOutbox
print("left", NoticeOutbox.objects.count())
"""


async def test_a_change_made_in_another_process_without_a_relay_reaches_the_socket(
    world: tuple[World, MaintenanceRequest, ServerProcess], open_client: ClientFactory, server_env: dict[str, str]
) -> None:
    # As the job worker: a plain process (no server loop, no relay task) runs a service.
    w, filed, server = world
    tenant_token = await alogin(server, w.tenant.email)
    socket = await open_client(server, tenant_token)
    await socket.ok({"type": "subscribe", "topic": topics.notifications(str(w.tenant.pk))})
    script = WORKER_SCRIPT.format(manager=str(w.manager.pk), request=str(filed.pk))
    finished = await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-c", script],
        cwd=ROOT,
        env=server_env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert finished.returncode == 0, finished.stderr
    assert "left 0" in finished.stdout  # delivered by the commit itself, in that process
    event = await socket.next_event(lambda frame: frame["event"] == "notification")
    assert event["data"]["type"] == maintenance_notices.NOTICE_REQUEST_ASSIGNED
    count = await asyncio.to_thread(call, server, "GET", "/notifications/unread-count", tenant_token)
    assert count == {"unread": 1}
