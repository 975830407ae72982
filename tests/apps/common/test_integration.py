"""The integration layer (apps/common/integration.py): each operation against the real stores, and both
compensation paths of saving an entity with its documents."""

import datetime
import re
from collections.abc import AsyncIterator
from dataclasses import replace
from decimal import Decimal
from typing import Any

import pytest
import redis.asyncio as aredis
from asgiref.sync import sync_to_async
from bson import ObjectId
from django.conf import settings
from django.db import connections as db_connections
from pymongo import AsyncMongoClient
from pymongo.asynchronous.database import AsyncDatabase

from apps.common import integration
from apps.leasing.models import Lease
from apps.properties.models import Property
from realtime import connections, keys
from realtime.errors import ProtocolError
from tests.apps.api_world import World, build_world
from tests.factories import make_property, make_user

pytestmark = pytest.mark.django_db(transaction=True)

Mongo = AsyncDatabase[dict[str, Any]]


@pytest.fixture
async def world() -> AsyncIterator[World]:
    yield await sync_to_async(build_world)()
    await connections.aclose_loop_clients()
    await sync_to_async(db_connections.close_all)()


@pytest.fixture
async def mongo() -> AsyncIterator[Mongo]:
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(settings.MONGO_URL, serverSelectionTimeoutMS=3000)
    yield client[settings.MONGO_DATABASE]
    await client.close()


@pytest.fixture
async def rds() -> AsyncIterator[aredis.Redis]:
    client = aredis.Redis.from_url(settings.REDIS_URL, decode_responses=True)
    yield client
    await client.aclose()


@pytest.fixture
async def dead_mongo() -> AsyncIterator[None]:
    original = connections.current_settings()
    await connections.aclose_loop_clients()
    connections.configure(replace(original, mongo_url="mongodb://127.0.0.1:1/", mongo_timeout_ms=300))
    yield
    await connections.aclose_loop_clients()
    connections.configure(original)


# --- PostgreSQL ----------------------------------------------------------------------------


async def test_query_relational_data_returns_rows_as_dicts(world: World) -> None:
    rows = await integration.query_relational_data(
        "SELECT property_id, property_name FROM properties WHERE owner_id = %s ORDER BY property_name",
        [str(world.landlord.pk)],
    )
    assert rows == [{"property_id": world.prop.pk, "property_name": world.prop.property_name}]
    assert await integration.query_relational_data("SELECT 1 AS one;") == [{"one": 1}]


@pytest.mark.parametrize(
    ("sql", "message"),
    [("UPDATE properties SET property_name = 'x'", "read-only"),
     ("DELETE FROM properties", "read-only"),
     ("SELECT 1; DELETE FROM properties", re.escape(integration.ONE_STATEMENT)),
     ("COMMIT; DELETE FROM properties", re.escape(integration.ONE_STATEMENT))],
)
async def test_query_relational_data_refuses_writes(world: World, sql: str, message: str) -> None:
    with pytest.raises(ProtocolError, match=message) as caught:
        await integration.query_relational_data(sql)
    assert caught.value.code == "bad_request"
    assert await Property.objects.filter(pk=world.prop.pk, property_name=world.prop.property_name).aexists()
    # The connection is usable and writable again afterwards.
    await sync_to_async(make_property)(owner=world.landlord)


async def test_execute_transaction_commits_all_or_nothing(world: World) -> None:
    def rename(name: str) -> Any:
        return lambda: Property.objects.filter(pk=world.prop.pk).update(property_name=name)

    def fail() -> None:
        raise RuntimeError("boom")

    assert await integration.execute_transaction([rename("First"), lambda: Property.objects.count()]) == [1, 2]
    with pytest.raises(RuntimeError):
        await integration.execute_transaction([rename("Second"), fail])
    assert (await Property.objects.aget(pk=world.prop.pk)).property_name == "First"


# --- MongoDB -------------------------------------------------------------------------------


async def test_insert_and_query_documents(world: World) -> None:
    marker = str(ObjectId())
    first = await integration.insert_document("ai_training_data", {"dataType": marker, "n": 1})
    await integration.insert_document("ai_training_data", {"dataType": marker, "n": 2})
    found = await integration.query_documents("ai_training_data", {"dataType": marker},
                                              {"sort": [("n", -1)], "limit": 1, "projection": {"n": 1}})
    assert [doc["n"] for doc in found] == [2]
    everything = await integration.query_documents("ai_training_data", {"dataType": marker}, {"sort": [("n", 1)]})
    assert str(everything[0]["_id"]) == first and len(everything) == 2
    with pytest.raises(ProtocolError, match="unknown collection"):
        await integration.query_documents("system.users", {})


# --- Redis ---------------------------------------------------------------------------------


async def test_cached_data_round_trips_with_ttl(world: World, rds: aredis.Redis) -> None:
    assert await integration.set_cached_data("lookup:amenities:test", {"a": [1, 2]}, 60) is True
    assert await integration.get_cached_data("lookup:amenities:test") == {"a": [1, 2]}
    assert 0 < await rds.ttl("lookup:amenities:test") <= 60
    await rds.hset(keys.property_details("p1"), mapping={"name": "Maple", "unitCount": "3"})
    assert await integration.get_cached_data(keys.property_details("p1")) == {"name": "Maple", "unitCount": "3"}
    await rds.rpush(keys.transactions_recent("u1"), '{"id": 1}', '{"id": 2}')
    assert await integration.get_cached_data(keys.transactions_recent("u1")) == [{"id": 1}, {"id": 2}]
    assert await integration.get_cached_data("absent:key") is None


async def test_cache_reads_are_misses_and_writes_fail_softly_when_redis_is_down(world: World) -> None:
    original = connections.current_settings()
    await connections.aclose_loop_clients()
    connections.configure(replace(original, redis_url="redis://127.0.0.1:1/0", redis_socket_timeout=0.5))
    try:
        assert await integration.get_cached_data("property:x") is None
        assert await integration.set_cached_data("property:x", 1, 10) is False
        with pytest.raises(ProtocolError) as caught:
            await integration.invalidate_cache("property:*")
        assert caught.value.code == "unavailable"
    finally:
        await connections.aclose_loop_clients()
        connections.configure(original)


async def test_invalidate_cache_scans_and_counts(world: World, rds: aredis.Redis,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    for index in range(1200):  # more than one SCAN page and one delete batch
        await rds.set(keys.search_properties(f"h{index}"), "[]")
    await rds.set(keys.property_details("keep"), "x")

    def no_keys(*args: Any, **kwargs: Any) -> None:
        raise AssertionError("KEYS must never be used")

    monkeypatch.setattr(aredis.Redis, "keys", no_keys)
    assert await integration.invalidate_cache(keys.search_properties("*")) == 1200
    assert [key async for key in rds.scan_iter(match=keys.search_properties("*"))] == []
    assert await rds.exists(keys.property_details("keep"))
    assert await integration.invalidate_cache(keys.search_properties("*")) == 0
    for unsafe in ("*", "", "**", "?*"):
        with pytest.raises(ProtocolError, match="refusing"):
            await integration.invalidate_cache(unsafe)


async def test_refresh_cache_drops_exactly_the_entitys_keys(world: World, rds: aredis.Redis) -> None:
    prop, other = str(world.prop.pk), str(world.other_prop.pk)
    mine = [keys.property_details(prop), keys.unit_availability(prop), keys.maintenance_counts(prop),
            keys.search_properties("abc"), keys.lookup_cities("IL")]
    theirs = [keys.property_details(other), keys.unit_availability(other), keys.maintenance_counts(other),
              keys.subscription_status(str(world.tenant.pk))]
    for key in mine + theirs:
        await rds.set(key, "1")
    assert await integration.refresh_cache("property", prop) == len(mine)
    assert [await rds.exists(key) for key in mine] == [0] * len(mine)
    assert [await rds.exists(key) for key in theirs] == [1] * len(theirs)
    # A unit drops its property's details and availability.
    await rds.set(keys.unit_availability(other), "1")
    assert await integration.refresh_cache("unit", str(world.other_unit.pk)) == 2
    assert not await rds.exists(keys.property_details(other))
    # A user drops their own keys.
    await rds.set(keys.feature_access(str(world.tenant.pk), "f1"), "1")
    assert await integration.refresh_cache("user", str(world.tenant.pk)) == 2
    with pytest.raises(ProtocolError, match="unknown entity"):
        await integration.refresh_cache("spaceship", "1")


# --- PostgreSQL and MongoDB together --------------------------------------------------------


async def test_get_entity_with_documents(world: World, mongo: Mongo) -> None:
    lease = await Lease.objects.aget(unit=world.unit)
    await mongo["documents"].insert_many([
        {"documentType": "lease", "referenceId": str(lease.pk), "fileName": "a.pdf",
         "uploadedAt": datetime.datetime.now(datetime.UTC)},
        {"documentType": "maintenance", "referenceId": str(lease.pk), "fileName": "wrong type"},
    ])
    found = await integration.get_entity_with_documents("lease", lease.pk)
    assert found is not None
    assert found["entity"]["id"] == lease.pk and found["entity"]["unit_id"] == world.unit.pk
    assert found["entity"]["monthly_rent"] == Decimal("1450.00")
    assert [doc["fileName"] for doc in found["documents"]] == ["a.pdf"]
    assert await integration.get_entity_with_documents("lease", "00000000-0000-0000-0000-000000000000") is None
    assert await integration.get_entity_with_documents("lease", "not-a-uuid") is None


def _new_property(world: World, **extra: Any) -> dict[str, Any]:
    return {"owner_id": world.landlord.pk, "property_name": "Integration Court", "street_address": "5 Elm St",
            "city": "Peoria", "state": "IL", "zip_code": "61602", "property_type": "condo", **extra}


async def test_save_entity_with_documents_creates_both(world: World, mongo: Mongo) -> None:
    saved = await integration.save_entity_with_documents(
        "property", _new_property(world), [{"fileName": "deed.pdf", "documentType": "deed"}]
    )
    assert saved["created"] is True
    pk = saved["entity"]["id"]
    assert await Property.objects.filter(pk=pk, property_name="Integration Court").aexists()
    stored = await mongo["documents"].find_one({"referenceId": str(pk)})
    assert stored is not None and stored["fileName"] == "deed.pdf" and stored["isArchived"] is False
    # Update: same call with the id.
    again = await integration.save_entity_with_documents("property", {"id": pk, "city": "Springfield"}, [])
    assert again["created"] is False and again["entity"]["city"] == "Springfield"


async def test_mongodb_failure_after_a_create_deletes_the_new_row(world: World, dead_mongo: None) -> None:
    before = await Property.objects.acount()
    with pytest.raises(ProtocolError) as caught:
        await integration.save_entity_with_documents("property", _new_property(world), [{"fileName": "deed.pdf"}])
    error = caught.value
    assert error.code == "unavailable" and error.http_status == 503
    report = error.data["report"]
    assert report["postgres"] == "created" and report["compensation"] == "created row deleted"
    assert report["mongo"].startswith("failed")
    assert await Property.objects.acount() == before
    assert not await Property.objects.filter(pk=report["entityId"]).aexists()


async def test_mongodb_failure_after_an_update_restores_the_previous_values(world: World, dead_mongo: None) -> None:
    lease = await Lease.objects.aget(unit=world.unit)
    with pytest.raises(ProtocolError) as caught:
        await integration.save_entity_with_documents(
            "lease", {"id": lease.pk, "monthly_rent": "1999.00", "special_terms": "No pets"},
            [{"fileName": "addendum.pdf"}],
        )
    report = caught.value.data["report"]
    assert report["postgres"] == "updated" and report["compensation"] == "previous values restored"
    restored = await Lease.objects.aget(pk=lease.pk)
    assert restored.monthly_rent == Decimal("1450.00") and restored.special_terms is None


async def test_postgresql_failure_writes_nothing_to_mongodb(world: World, mongo: Mongo) -> None:
    marker = str(ObjectId())
    before = await Property.objects.acount()
    with pytest.raises(ProtocolError) as invalid:
        await integration.save_entity_with_documents(
            "property", _new_property(world, property_type="castle"), [{"fileName": marker}])
    assert invalid.value.code == "bad_request" and invalid.value.http_status == 422
    assert any(field["field"] == "property_type" for field in invalid.value.data["fields"])
    with pytest.raises(ProtocolError) as conflict:  # a second unit with the same number in one property
        await integration.save_entity_with_documents(
            "unit", {"property_id": world.prop.pk, "unit_number": world.unit.unit_number, "bedrooms": 1,
                     "bathrooms": "1.0", "square_footage": 500, "monthly_rent": "900.00"}, [{"fileName": marker}])
    assert conflict.value.code == "conflict"
    with pytest.raises(ProtocolError, match="unknown fields"):
        await integration.save_entity_with_documents("property", {"colour": "red"}, [{"fileName": marker}])
    assert await Property.objects.acount() == before
    assert await mongo["documents"].count_documents({"fileName": marker}) == 0


async def test_an_update_changed_again_meanwhile_is_not_overwritten_by_the_compensation(world: World) -> None:
    lease = await Lease.objects.aget(unit=world.unit)
    saved = await sync_to_async(integration._save_row)("lease", {"id": lease.pk, "special_terms": "A"})
    _, created, previous, written = saved
    await Lease.objects.filter(pk=lease.pk).aupdate(special_terms="B")  # someone else, after our commit
    outcome = await sync_to_async(integration._undo_row)("lease", lease.pk, created, previous, written)
    assert outcome == "not restored: the row was changed again meanwhile"
    assert (await Lease.objects.aget(pk=lease.pk)).special_terms == "B"


async def test_unknown_entity_types_are_refused(world: World) -> None:
    with pytest.raises(ProtocolError, match="unknown entity"):
        await integration.get_entity_with_documents("spaceship", "1")
    user = await sync_to_async(make_user)()
    assert user.pk is not None
