"""Usage patterns: page views and logins recorded from the API without a store round trip on the request
path, flushed in batches into `usage_patterns`; feature use reported by apps; admin and self reads."""

import asyncio
from dataclasses import replace
from typing import Any

import pytest
from django.test import AsyncClient
from pymongo.asynchronous.database import AsyncDatabase

from apps.documents import middleware, usage
from apps.documents.usage import UsageRecorder, pattern_id
from apps.documents.usage_api import ADMINS_ONLY
from realtime import connections
from tests.apps.api_world import World
from tests.apps.documents.conftest import API, AsyncApi
from tests.factories import DEFAULT_PASSWORD

pytestmark = pytest.mark.django_db(transaction=True)

Apis = dict[str, AsyncApi]
Mongo = AsyncDatabase[dict[str, Any]]
LIST = "GET /api/v1/properties"
DETAIL = "GET /api/v1/properties/{property_id}"


async def stored_for(mongo: Mongo, api: AsyncApi) -> dict[str, Any] | None:
    return await mongo["usage_patterns"].find_one({"userId": str(api.user.pk), "sessionId": api.session_id})


def views(doc: dict[str, Any]) -> dict[str, int]:
    return {view["page"]: view["viewCount"] for view in doc["pageViews"]}


async def test_api_calls_are_counted_per_route_and_written_only_by_the_flush(
    world: World, apis: Apis, recorder: UsageRecorder, mongo: Mongo
) -> None:
    api = apis["tenant"]
    for path in ("/properties", "/properties", f"/properties/{world.prop.pk}"):
        assert (await api.get(path)).status_code == 200
    assert recorder.pending() == 3
    assert await stored_for(mongo, api) is None  # nothing written on the request path
    assert await recorder.aflush() == 1 and recorder.pending() == 0
    doc = await stored_for(mongo, api)
    assert doc is not None and doc["_id"] == pattern_id(str(api.user.pk), api.session_id)
    assert views(doc) == {LIST: 2, DETAIL: 1}
    assert doc["features"] == [] and doc["loginHistory"] == [] and doc["createdAt"] and doc["updatedAt"]
    # The next batch adds to the stored counts.
    await api.get("/properties")
    await recorder.aflush()
    assert views(await stored_for(mongo, api) or {}) == {LIST: 3, DETAIL: 1}


async def test_recording_adds_no_redis_or_mongodb_call_to_the_request(
    world: World, apis: Apis, recorder: UsageRecorder, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[str] = []
    real_redis, real_mongo = connections.get_redis, connections.get_mongo

    def counting_redis() -> Any:
        calls.append("redis")
        return real_redis()

    def counting_mongo() -> Any:
        calls.append("mongo")
        return real_mongo()

    for module in ("realtime.connections", "apps.accounts.services", "apps.documents.usage"):
        monkeypatch.setattr(f"{module}.get_redis", counting_redis, raising=False)
        monkeypatch.setattr(f"{module}.get_mongo", counting_mongo, raising=False)
    api = apis["manager"]
    await api.get("/properties")  # warm: session cache filled
    calls.clear()
    await api.get("/properties")
    recorded = list(calls)
    calls.clear()
    monkeypatch.setattr(middleware, "observe", lambda request, response: False)
    await api.get("/properties")
    assert recorded == calls  # the same store calls with and without usage recording
    assert "mongo" not in recorded and recorder.pending() == 2


async def test_unauthenticated_calls_are_not_recorded(world: World, recorder: UsageRecorder) -> None:
    client = AsyncClient()
    forged = "00000000-0000-4000-8000-000000000000.forged"
    response = await client.get(f"{API}/properties", headers={"Authorization": f"Bearer {forged}"})
    assert response.status_code == 401
    assert (await client.get("/healthz")).status_code == 200
    assert recorder.pending() == 0


async def test_a_login_is_added_to_the_sessions_login_history(
    world: World, recorder: UsageRecorder, mongo: Mongo
) -> None:
    client = AsyncClient()
    response = await client.post(
        f"{API}/auth/login",
        {"email": world.tenant.email, "password": DEFAULT_PASSWORD},
        content_type="application/json",
        headers={"User-Agent": "pms-app/2.1"},
    )
    assert response.status_code == 200
    session_id = response.json()["sessionId"]
    await recorder.aflush()
    doc = await mongo["usage_patterns"].find_one({"sessionId": session_id})
    assert doc is not None and doc["userId"] == str(world.tenant.pk)
    [login] = doc["loginHistory"]
    assert login["ipAddress"] == "127.0.0.1" and login["userAgent"] == "pms-app/2.1" and login["timestamp"]
    assert set(login) == {"timestamp", "ipAddress", "userAgent", "duration"}


async def test_apps_report_feature_use(world: World, apis: Apis, recorder: UsageRecorder, mongo: Mongo) -> None:
    api = apis["landlord"]
    feature = "5b0b3a2e-0d2c-4a57-9a8e-3f2f0d5f4f11"
    for action, seconds in (("export", 2.5), ("export", 1.5), ("open", None)):
        body: dict[str, Any] = {"featureId": feature, "actionType": action, "metadata": {"format": "csv"}}
        if seconds is not None:
            body["durationSeconds"] = seconds
        response = await api.post("/usage-patterns/me/features", body)
        assert response.status_code == 202 and response.json() == {"accepted": True}
    assert (await api.post("/usage-patterns/me/features", {"featureId": "nope", "actionType": "x"})).status_code == 422
    await recorder.aflush()
    doc = await stored_for(mongo, api)
    assert doc is not None
    [item] = doc["features"]
    assert item["featureId"] == feature and item["usageCount"] == 3 and item["usageDuration"] == 4.0
    assert [action["actionType"] for action in item["actions"]] == ["export", "export", "open"]
    assert views(doc) == {"POST /api/v1/usage-patterns/me/features": 4}


async def test_two_processes_flushing_one_session_add_up(world: World, apis: Apis, mongo: Mongo) -> None:
    """Optimistic revisions: concurrent flushes of the same session never lose counts."""
    api = apis["tenant"]
    first, second = UsageRecorder(flush_seconds=3600), UsageRecorder(flush_seconds=3600)
    for recorder in (first, second, first):
        for _ in range(5):
            recorder.record_view(user_id=str(api.user.pk), session_id=api.session_id, page="GET /x")
        await asyncio.gather(first.aflush(), second.aflush())
    doc = await stored_for(mongo, api)
    assert doc is not None and views(doc) == {"GET /x": 15} and doc["rev"] >= 2


async def test_a_failed_flush_keeps_the_events_for_the_next_one(
    world: World, apis: Apis, recorder: UsageRecorder, mongo: Mongo
) -> None:
    api = apis["tenant"]
    await api.get("/properties")
    original = connections.current_settings()
    await connections.aclose_loop_clients()
    connections.configure(replace(original, mongo_url="mongodb://127.0.0.1:1/", mongo_timeout_ms=300))
    try:
        with pytest.raises(Exception, match=r"127\.0\.0\.1:1"):
            await recorder.aflush()
        assert recorder.pending() == 1
    finally:
        await connections.aclose_loop_clients()
        connections.configure(original)
    await api.get("/properties")
    assert await recorder.aflush() == 1
    assert views(await stored_for(mongo, api) or {}) == {LIST: 2}


async def test_the_async_middleware_starts_a_flusher_that_writes_full_batches(
    world: World, apis: Apis, monkeypatch: pytest.MonkeyPatch, mongo: Mongo
) -> None:
    recorder = UsageRecorder(flush_seconds=3600, batch_size=2)
    monkeypatch.setattr(usage, "_recorder", recorder)
    api = apis["manager"]
    try:
        await api.get("/properties")
        await api.get("/properties")  # the batch is full: the flusher wakes up
        for _ in range(100):
            if (doc := await stored_for(mongo, api)) is not None:
                break
            await asyncio.sleep(0.05)
        assert doc is not None and views(doc) == {LIST: 2}
    finally:
        await recorder.astop(flush=False)


async def test_usage_patterns_are_read_by_admins_and_by_their_owner(
    world: World, apis: Apis, recorder: UsageRecorder
) -> None:
    await apis["tenant"].get("/properties")
    await apis["manager"].get("/properties")
    await recorder.aflush()
    tenant_id = str(world.tenant.pk)
    listed = (await apis["admin"].get("/usage-patterns", userId=tenant_id)).json()
    assert listed["count"] == 1 and listed["items"][0]["userId"] == tenant_id
    assert listed["items"][0]["pageViews"][0]["page"] == LIST
    by_session = (await apis["admin"].get("/usage-patterns", sessionId=apis["manager"].session_id)).json()
    assert [item["userId"] for item in by_session["items"]] == [str(world.manager.pk)]
    for who in ("tenant", "landlord", "manager"):
        refused = await apis[who].get("/usage-patterns")
        assert refused.status_code == 403 and refused.json()["error"]["message"] == ADMINS_ONLY
    mine = (await apis["tenant"].get("/usage-patterns/me")).json()
    assert {item["userId"] for item in mine["items"]} == {tenant_id}
    assert (await apis["other_tenant"].get("/usage-patterns/me")).json()["count"] == 0
