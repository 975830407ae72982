"""The integration layer (apps/common/integration/): each operation against the real stores, both
compensation paths of saving an entity with its documents, and recovery of a save a crash cut in two."""

import datetime
from collections.abc import AsyncIterator
from dataclasses import replace
from decimal import Decimal
from typing import Any

import pytest
from asgiref.sync import sync_to_async
from bson import ObjectId
from django.conf import settings
from django.db import connections as db_connections
from pymongo import AsyncMongoClient
from pymongo.asynchronous.database import AsyncDatabase

from apps.common import integration
from apps.common.models import IntegrationIntent
from apps.leasing.models import Lease
from apps.properties.models import Property
from realtime import connections
from realtime.errors import ProtocolError
from tests.apps.api_world import World, build_world
from tests.factories import make_user

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
async def dead_mongo() -> AsyncIterator[None]:
    original = connections.current_settings()
    await connections.aclose_loop_clients()
    connections.configure(replace(original, mongo_url="mongodb://127.0.0.1:1/", mongo_timeout_ms=300))
    yield
    await connections.aclose_loop_clients()
    connections.configure(original)


# --- MongoDB -------------------------------------------------------------------------------


async def test_query_documents(world: World, mongo: Mongo) -> None:
    marker = str(ObjectId())
    inserted = await mongo["ai_training_data"].insert_many([{"dataType": marker, "n": 1}, {"dataType": marker, "n": 2}])
    found = await integration.query_documents(
        "ai_training_data", {"dataType": marker}, {"sort": [("n", -1)], "limit": 1, "projection": {"n": 1}}
    )
    assert [doc["n"] for doc in found] == [2]
    everything = await integration.query_documents("ai_training_data", {"dataType": marker}, {"sort": [("n", 1)]})
    assert [doc["_id"] for doc in everything] == inserted.inserted_ids
    with pytest.raises(ProtocolError, match="unknown collection"):
        await integration.query_documents("system.users", {})


# --- PostgreSQL and MongoDB together --------------------------------------------------------


async def test_get_entity_with_documents(world: World, mongo: Mongo) -> None:
    lease = await Lease.objects.aget(unit=world.unit)
    await mongo["documents"].insert_many(
        [
            {
                "documentType": "lease",
                "referenceId": str(lease.pk),
                "fileName": "a.pdf",
                "uploadedAt": datetime.datetime.now(datetime.UTC),
            },
            {"documentType": "maintenance", "referenceId": str(lease.pk), "fileName": "wrong type"},
        ]
    )
    found = await integration.get_entity_with_documents("lease", lease.pk)
    assert found is not None
    assert found["entity"]["id"] == lease.pk and found["entity"]["unit_id"] == world.unit.pk
    assert found["entity"]["monthly_rent"] == Decimal("1450.00")
    assert [doc["fileName"] for doc in found["documents"]] == ["a.pdf"]
    assert await integration.get_entity_with_documents("lease", "00000000-0000-0000-0000-000000000000") is None
    assert await integration.get_entity_with_documents("lease", "not-a-uuid") is None


def _new_property(world: World, **extra: Any) -> dict[str, Any]:
    return {
        "owner_id": world.landlord.pk,
        "property_name": "Integration Court",
        "street_address": "5 Elm St",
        "city": "Peoria",
        "state": "IL",
        "zip_code": "61602",
        "property_type": "condo",
        **extra,
    }


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
    # MongoDB could not be asked whether part of the insert landed: recovery will, once it is back.
    assert await _intents() == [(report["entityId"], "undoing")]


async def test_mongodb_failure_after_an_update_restores_the_previous_values(world: World, dead_mongo: None) -> None:
    lease = await Lease.objects.aget(unit=world.unit)
    with pytest.raises(ProtocolError) as caught:
        await integration.save_entity_with_documents(
            "lease",
            {"id": lease.pk, "monthly_rent": "1999.00", "special_terms": "No pets"},
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
            "property", _new_property(world, property_type="castle"), [{"fileName": marker}]
        )
    assert invalid.value.code == "bad_request" and invalid.value.http_status == 422
    assert any(field["field"] == "property_type" for field in invalid.value.data["fields"])
    with pytest.raises(ProtocolError) as conflict:  # a second unit with the same number in one property
        await integration.save_entity_with_documents(
            "unit",
            {
                "property_id": world.prop.pk,
                "unit_number": world.unit.unit_number,
                "bedrooms": 1,
                "bathrooms": "1.0",
                "square_footage": 500,
                "monthly_rent": "900.00",
            },
            [{"fileName": marker}],
        )
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


# --- a save cut in two by a crash: the intent, and recovery ---------------------------------


def _later(grace: datetime.timedelta = integration.INTENT_GRACE) -> datetime.datetime:
    """A clock past the grace period: recovery is driven by `now`, not by waiting."""
    return datetime.datetime.now(datetime.UTC) + grace + datetime.timedelta(seconds=1)


async def _intents() -> list[tuple[str, str]]:
    return [(i.entity_id, i.state) async for i in IntegrationIntent.objects.order_by("created_at")]


async def test_a_save_that_completes_leaves_no_intent(world: World, mongo: Mongo) -> None:
    await integration.save_entity_with_documents("property", _new_property(world), [{"fileName": "deed.pdf"}])
    assert await _intents() == []


async def test_a_crash_between_the_writes_is_undone_by_recovery_after_the_grace(world: World, mongo: Mongo) -> None:
    """The process died after the PostgreSQL half (row + intent committed), before MongoDB."""
    before = await Property.objects.acount()
    pk, created, _ = await sync_to_async(integration._begin_save)(
        "property", _new_property(world), [str(ObjectId())], []
    )
    assert created and await Property.objects.filter(pk=pk).aexists()
    # A save may still be running within the grace period: recovery leaves it alone.
    assert await integration.arecover_intents() == {"finished": 0, "undone": 0, "cleaned": 0}
    assert await integration.arecover_intents(now=_later()) == {"finished": 0, "undone": 1, "cleaned": 0}
    assert await Property.objects.acount() == before
    assert await _intents() == [(str(pk), "undone")]
    assert await integration.arecover_intents(now=_later()) == {"finished": 0, "undone": 0, "cleaned": 0}  # done once
    # Undone intents are purged a day later.
    await integration.arecover_intents(now=_later(integration.INTENT_GRACE + datetime.timedelta(days=1)))
    assert await _intents() == []


async def test_recovery_puts_back_the_previous_values_of_an_update(world: World, mongo: Mongo) -> None:
    lease = await Lease.objects.aget(unit=world.unit)
    new_end = lease.end_date + datetime.timedelta(days=365)
    await sync_to_async(integration._begin_save)(
        "lease",
        {"id": lease.pk, "monthly_rent": "1999.00", "special_terms": "No pets", "end_date": new_end},
        [str(ObjectId())],
        [],
    )
    changed = await Lease.objects.aget(pk=lease.pk)
    assert changed.monthly_rent == Decimal("1999.00") and changed.end_date == new_end
    assert await integration.arecover_intents(now=_later()) == {"finished": 0, "undone": 1, "cleaned": 0}
    restored = await Lease.objects.aget(pk=lease.pk)
    assert (restored.monthly_rent, restored.special_terms, restored.end_date) == (
        Decimal("1450.00"),
        None,
        lease.end_date,
    )


async def test_a_crash_after_both_writes_is_finished_by_recovery(world: World, mongo: Mongo) -> None:
    """The process died after MongoDB took the documents, before it deleted the intent."""
    lease = await Lease.objects.aget(unit=world.unit)
    doc_id = ObjectId()
    await sync_to_async(integration._begin_save)("lease", {"id": lease.pk, "special_terms": "Kept"}, [str(doc_id)], [])
    await mongo["documents"].insert_one({"_id": doc_id, "referenceId": str(lease.pk), "documentType": "lease"})
    assert await integration.arecover_intents(now=_later()) == {"finished": 1, "undone": 0, "cleaned": 0}
    assert (await Lease.objects.aget(pk=lease.pk)).special_terms == "Kept"
    assert await mongo["documents"].count_documents({"referenceId": str(lease.pk)}) == 1
    assert await _intents() == []


async def test_a_partial_insert_is_removed_by_recovery(world: World, mongo: Mongo) -> None:
    first, second = ObjectId(), ObjectId()
    pk, _, _ = await sync_to_async(integration._begin_save)(
        "property", _new_property(world), [str(first), str(second)], []
    )
    await mongo["documents"].insert_one({"_id": first, "referenceId": str(pk)})  # one of two landed
    assert await integration.arecover_intents(now=_later()) == {"finished": 0, "undone": 1, "cleaned": 0}
    assert await mongo["documents"].count_documents({"referenceId": str(pk)}) == 0
    assert not await Property.objects.filter(pk=pk).aexists()


async def test_a_save_that_outlived_the_grace_learns_it_was_undone(world: World, mongo: Mongo) -> None:
    pk, _, intent_id = await sync_to_async(integration._begin_save)(
        "property", _new_property(world), [str(ObjectId())], []
    )
    await integration.arecover_intents(now=_later())  # its document is not in MongoDB (yet): undone
    assert await sync_to_async(integration.entities._finish)(intent_id) == "undone"
    assert not await Property.objects.filter(pk=pk).aexists()


async def test_recovery_waits_while_mongodb_is_down(world: World, dead_mongo: None) -> None:
    pk, _, _ = await sync_to_async(integration._begin_save)("property", _new_property(world), [str(ObjectId())], [])
    assert await integration.arecover_intents(now=_later()) == {"finished": 0, "undone": 0, "cleaned": 0}
    assert await Property.objects.filter(pk=pk).aexists() and await _intents() == [(str(pk), "pending")]


async def test_recovery_finishes_an_undo_that_could_not_reach_mongodb(world: World, dead_mongo: None) -> None:
    with pytest.raises(ProtocolError):
        await integration.save_entity_with_documents("property", _new_property(world), [{"fileName": "deed.pdf"}])
    [(entity_id, state)] = await _intents()
    assert state == "undoing" and not await Property.objects.filter(pk=entity_id).aexists()
    assert await integration.arecover_intents() == {"finished": 0, "undone": 0, "cleaned": 0}  # still down
    await connections.aclose_loop_clients()
    connections.configure(replace(connections.current_settings(), mongo_url=settings.MONGO_URL))
    # No grace period: the save is over, only its cleanup is left.
    assert await integration.arecover_intents() == {"finished": 0, "undone": 0, "cleaned": 1}
    assert await _intents() == [(entity_id, "undone")]
