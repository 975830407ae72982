"""Documents, usage patterns and AI data over HTTP, on one event loop (Django's AsyncClient), as under ASGI.

The endpoints reach MongoDB (settings.MONGO_URL, database settings.MONGO_DATABASE) through
the loop's client, which each test closes at its end; files go to a fresh MEDIA_ROOT.
"""

import asyncio
import datetime
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import pytest
from asgiref.sync import sync_to_async
from django.conf import settings
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import connections as db_connections
from django.test import AsyncClient
from pymongo import AsyncMongoClient
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import OperationFailure

from apps.accounts.services import asession_login
from apps.documents import usage
from apps.hud.models import HudApplication, HudForm
from apps.leasing.models import Lease
from apps.maintenance.models import MaintenanceRequest
from realtime import connections
from realtime.documents import ensure_indexes
from tests.apps.api_world import World, build_world
from tests.factories import DEFAULT_PASSWORD

API = "/api/v1"
USERS = ("admin", "landlord", "manager", "tenant", "other_landlord", "other_manager", "other_tenant")


class AsyncApi:
    """One user's calls with a bearer token from the real login service."""

    def __init__(self, user: Any, token: str) -> None:
        self.user, self.token, self.client = user, token, AsyncClient()
        self.session_id = token.split(".")[0]
        self.headers = {"Authorization": f"Bearer {token}"}

    @classmethod
    async def login(cls, user: Any) -> "AsyncApi":
        _, token = await asession_login(email=user.email, password=DEFAULT_PASSWORD, ip="127.0.0.1", user_agent="tests")
        return cls(user, token)

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

    async def upload(
        self, kind: str, reference: Any, *, name: str = "notes.txt", content: bytes = b"hello world", **fields: Any
    ) -> Any:
        """POST /documents as multipart/form-data."""
        data = {
            "documentType": kind,
            "referenceId": str(getattr(reference, "pk", reference)),
            "file": SimpleUploadedFile(name, content),
            **fields,
        }
        return await self.client.post(f"{API}/documents", data=data, headers=self.headers)


@dataclass
class Entities:
    """One entity of each document type under `prop`, and under `other_prop` (`other_*`; no HUD form)."""

    lease: Lease
    maintenance: MaintenanceRequest
    application: HudApplication
    hud_form: HudForm
    other_lease: Lease
    other_maintenance: MaintenanceRequest
    other_application: HudApplication

    def of(self, kind: str, *, other: bool = False) -> Any:
        return getattr(self, f"other_{kind}" if other else kind)


def _entities_of(world: World) -> Entities:
    def for_unit(unit: Any, tenant_user: Any) -> tuple[Lease, MaintenanceRequest, HudApplication]:
        tenant = world.tenant_record(tenant_user)
        lease = Lease.objects.get(unit=unit)
        request = MaintenanceRequest.objects.create(
            unit=unit, tenant=tenant, category="plumbing", description="Leaky faucet"
        )
        application = HudApplication.objects.create(tenant=tenant, application_date=datetime.date(2026, 3, 1))
        return lease, request, application

    lease, request, application = for_unit(world.unit, world.tenant)
    other_lease, other_request, other_application = for_unit(world.other_unit, world.other_tenant)
    form = HudForm.objects.create(application=application, form_type="HUD-50058")
    return Entities(lease, request, application, form, other_lease, other_request, other_application)


@pytest.fixture
async def loop_clients() -> AsyncIterator[None]:
    """Close this loop's Redis/MongoDB clients and the ORM's thread connection when the test ends."""
    yield
    await connections.aclose_loop_clients()
    await sync_to_async(db_connections.close_all)()


@pytest.fixture
def recorder(monkeypatch: pytest.MonkeyPatch) -> usage.UsageRecorder:
    """A fresh usage recorder per test (a long period: tests flush explicitly)."""
    fresh = usage.UsageRecorder(flush_seconds=3600)
    monkeypatch.setattr(usage, "_recorder", fresh)
    return fresh


@pytest.fixture
async def stop_flushers(recorder: usage.UsageRecorder) -> AsyncIterator[None]:
    """Cancel the flusher task the async middleware starts on the test's loop."""
    yield
    await recorder.astop(flush=False)


@pytest.fixture
async def world(loop_clients: None, stop_flushers: None, seed_indexes: None) -> World:
    return await sync_to_async(build_world)()


@pytest.fixture
async def entities(world: World) -> Entities:
    return await sync_to_async(_entities_of)(world)


@pytest.fixture
async def apis(world: World) -> dict[str, AsyncApi]:
    return {name: await AsyncApi.login(getattr(world, name)) for name in USERS}


@pytest.fixture(autouse=True)
def media_root(settings: Any, tmp_path: Path) -> Path:
    """Uploaded files go to a fresh folder per test."""
    root = tmp_path / "media"
    root.mkdir()
    settings.MEDIA_ROOT = str(root)
    return root


def stored_files(root: Path) -> list[Path]:
    return sorted(path for path in root.rglob("*") if path.is_file())


@pytest.fixture(scope="session")
def seed_indexes() -> None:
    """The seed's indexes (the text index on documents.textContent above all) in the test database, once."""

    async def create() -> None:
        client: AsyncMongoClient[Any] = AsyncMongoClient(settings.MONGO_URL, serverSelectionTimeoutMS=3000)
        try:
            await ensure_indexes(client[settings.MONGO_DATABASE])
        except OperationFailure:
            # nx-27017 0.8.1 refuses to re-create its text index once the collection holds
            # documents ("constraint failed"); the index from the earlier run is still there.
            pass
        finally:
            await client.close()

    asyncio.run(create())


@pytest.fixture
async def mongo(seed_indexes: None) -> AsyncIterator["AsyncDatabase[dict[str, Any]]"]:
    """The test database, to check what the endpoints stored."""
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(
        settings.MONGO_URL, serverSelectionTimeoutMS=3000, tz_aware=True
    )
    yield client[settings.MONGO_DATABASE]
    await client.close()


@pytest.fixture
async def dead_mongo(loop_clients: None) -> AsyncIterator[None]:
    """Point the app's MongoDB client at a closed port (Redis and PostgreSQL stay up)."""
    original = connections.current_settings()
    await connections.aclose_loop_clients()
    connections.configure(replace(original, mongo_url="mongodb://127.0.0.1:1/", mongo_timeout_ms=300))
    yield
    await connections.aclose_loop_clients()
    connections.configure(original)
