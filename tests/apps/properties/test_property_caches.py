"""The seed's property caches: each is filled by a read, dropped after the commit of any change of its
source made through a service (HTTP or the admin site's services), so the read after a write equals
the database; Redis down changes nothing the client sees.

Changed in issue 10: the drops are explicit calls of the services, no longer model signals, so the
cases that wrote with the bare ORM now write through the admin's services; a bare ORM write drops
nothing (documented by `test_a_bare_orm_write_drops_nothing`)."""

from collections.abc import Callable, Iterator
from dataclasses import replace
from decimal import Decimal
from typing import Any

import pytest
import redis
from django.test import Client

from apps.properties import services
from apps.properties.models import Amenity, Property, Unit
from realtime import connections
from tests.apps.api_world import World
from tests.factories import make_lease, make_property, make_unit, make_user

pytestmark = pytest.mark.django_db


# What each cache must say, computed straight from PostgreSQL.


def db_summary(property_id: Any) -> dict[str, Any]:
    prop = Property.objects.select_related("owner").get(pk=property_id)
    return {
        "id": str(prop.pk),
        "name": prop.property_name,
        "address": prop.street_address,
        "city": prop.city,
        "state": prop.state,
        "zipCode": prop.zip_code,
        "unitCount": Unit.objects.filter(property=prop).count(),
        "ownerName": f"{prop.owner.first_name} {prop.owner.last_name}" if prop.owner else None,
    }


def db_availability(property_id: Any) -> tuple[int, int]:
    units = Unit.objects.filter(property_id=property_id)
    return units.count(), units.filter(is_available=True).count()


def db_cities(state: str) -> dict[str, int]:
    counts: dict[str, int] = {}
    for city in Property.objects.filter(state__iexact=state, is_active=True).values_list("city", flat=True):
        counts[city] = counts.get(city, 0) + 1
    return counts


def summary(world: World, client: Client, who: str = "landlord") -> dict[str, Any]:
    response = world.api(client, who).get(f"/properties/{world.prop.pk}/summary")
    assert response.status_code == 200, response.content
    return response.json()


def availability(world: World, client: Client, property_id: Any = None) -> tuple[int, int]:
    response = world.api(client, "admin").get(f"/properties/{property_id or world.prop.pk}/availability")
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["lastUpdated"]
    return body["totalUnits"], body["availableUnits"]


def cities(world: World, client: Client, state: str) -> dict[str, int]:
    response = world.api(client, "tenant").get(f"/lookup/cities/{state}")
    assert response.status_code == 200, response.content
    assert response.json()["stateCode"] == state.upper()
    return {row["name"]: row["propertyCount"] for row in response.json()["cities"]}


def amenity_list(world: World, client: Client) -> list[dict[str, Any]]:
    response = world.api(client, "tenant").get("/amenities")
    assert response.status_code == 200, response.content
    return response.json()


def db_amenities() -> list[dict[str, Any]]:
    return [{"id": a.pk, "name": a.name} for a in Amenity.objects.order_by("name", "pk")]


# property:{id}


def test_summary_fills_the_property_hash_with_the_seed_fields(
    world: World, client: Client, clean_redis: redis.Redis
) -> None:
    make_unit(property=world.prop)
    key = f"property:{world.prop.pk}"
    assert summary(world, client) == db_summary(world.prop.pk)
    cached = clean_redis.hgetall(key)
    assert set(cached) == {"name", "address", "city", "state", "zipCode", "unitCount", "ownerName"}
    assert cached["unitCount"] == "2"
    assert 0 < clean_redis.ttl(key) <= 1800
    clean_redis.hset(key, "name", "from the cache")  # the next read is served from Redis
    assert summary(world, client)["name"] == "from the cache"


PROPERTY_WRITES: dict[str, Callable[[World, Client, Unit], Any]] = {
    "patch_property": lambda w, c, spare: w.api(c, "landlord").patch(
        f"/properties/{w.prop.pk}", {"propertyName": "New"}
    ),
    "create_unit": lambda w, c, spare: w.api(c, "manager").post(
        f"/properties/{w.prop.pk}/units",
        {"unitNumber": "X1", "bedrooms": 1, "bathrooms": "1", "squareFootage": 500, "monthlyRent": "900"},
    ),
    "delete_unit": lambda w, c, spare: w.api(c, "manager").delete(f"/units/{spare.pk}"),
    "admin_unit_delete": lambda w, c, spare: services.unit_admin_delete(unit=spare),
    "owner_renamed": lambda w, c, spare: w.api(c, "admin").patch(f"/users/{w.landlord.pk}", {"lastName": "Renamed"}),
    "owner_changed": lambda w, c, spare: w.api(c, "admin").patch(
        f"/properties/{w.prop.pk}", {"ownerId": str(w.other_landlord.pk)}
    ),
    "admin_property_save": lambda w, c, spare: services.property_admin_save(
        prop=_with(Property.objects.get(pk=w.prop.pk), street_address="2 Side St")
    ),
}


def _with(obj: Any, **fields: Any) -> Any:
    for name, value in fields.items():
        setattr(obj, name, value)
    return obj


@pytest.mark.parametrize("write", list(PROPERTY_WRITES))
def test_property_hash_is_never_stale_after_a_write(
    world: World, client: Client, clean_redis: redis.Redis, django_capture_on_commit_callbacks, write: str
) -> None:
    spare = make_unit(property=world.prop)
    summary(world, client, "admin")
    assert clean_redis.exists(f"property:{world.prop.pk}")
    with django_capture_on_commit_callbacks(execute=True):
        response = PROPERTY_WRITES[write](world, client, spare)
    assert getattr(response, "status_code", 200) < 300
    assert not clean_redis.exists(f"property:{world.prop.pk}")
    assert summary(world, client, "admin") == db_summary(world.prop.pk)


# unit:availability:{id}


def test_availability_fills_the_hash(world: World, client: Client, clean_redis: redis.Redis) -> None:
    make_unit(property=world.prop, is_available=False)
    assert availability(world, client) == db_availability(world.prop.pk) == (2, 1)
    key = f"unit:availability:{world.prop.pk}"
    cached = clean_redis.hgetall(key)
    assert cached["totalUnits"] == "2" and cached["availableUnits"] == "1" and cached["lastUpdated"]
    assert 0 < clean_redis.ttl(key) <= 300


AVAILABILITY_WRITES: dict[str, Callable[[World, Client, Unit], Any]] = {
    "patch_unit": lambda w, c, spare: w.api(c, "manager").patch(f"/units/{w.unit.pk}", {"isAvailable": False}),
    "create_unit": lambda w, c, spare: w.api(c, "landlord").post(
        f"/properties/{w.prop.pk}/units",
        {"unitNumber": "Y", "bedrooms": 1, "bathrooms": "1", "squareFootage": 1, "monthlyRent": "1"},
    ),
    "delete_unit": lambda w, c, spare: w.api(c, "admin").delete(f"/units/{spare.pk}"),
    "admin_save": lambda w, c, spare: services.unit_admin_save(
        unit=_with(Unit.objects.get(pk=w.unit.pk), is_available=False)
    ),
    "unit_moved_in": lambda w, c, spare: services.unit_admin_save(
        unit=_with(Unit.objects.get(pk=w.other_unit.pk), property_id=w.prop.pk)
    ),
}


@pytest.mark.parametrize("write", list(AVAILABILITY_WRITES))
def test_availability_is_never_stale_after_a_unit_change(
    world: World, client: Client, clean_redis: redis.Redis, django_capture_on_commit_callbacks, write: str
) -> None:
    spare = make_unit(property=world.prop)
    availability(world, client)
    availability(world, client, world.other_prop.pk)
    with django_capture_on_commit_callbacks(execute=True):
        response = AVAILABILITY_WRITES[write](world, client, spare)
    assert getattr(response, "status_code", 200) < 300
    assert availability(world, client) == db_availability(world.prop.pk)
    assert availability(world, client, world.other_prop.pk) == db_availability(world.other_prop.pk)


# lookup:cities:{STATE}


def test_cities_lookup_fills_the_hash_of_active_property_counts(
    world: World, client: Client, clean_redis: redis.Redis
) -> None:
    make_property(owner=world.landlord, city="Peoria", state="il")
    make_property(owner=world.landlord, city="Peoria", state="IL")
    make_property(owner=world.landlord, city="Peoria", state="IL", is_active=False)
    make_property(owner=world.landlord, city="Austin", state="TX")
    assert cities(world, client, "il") == db_cities("IL") == {"Springfield": 2, "Peoria": 2}
    assert clean_redis.hgetall("lookup:cities:IL") == {"Springfield": "2", "Peoria": "2"}
    assert 23 * 3600 < clean_redis.ttl("lookup:cities:IL") <= 24 * 3600
    assert cities(world, client, "ZZ") == {}


NEW = {
    "propertyName": "N",
    "streetAddress": "1 A St",
    "city": "Peoria",
    "state": "IL",
    "zipCode": "1",
    "propertyType": "condo",
}
CITY_WRITES: dict[str, Callable[[World, Client], Any]] = {
    "create": lambda w, c: w.api(c, "landlord").post("/properties", NEW),
    "change_city": lambda w, c: w.api(c, "landlord").patch(f"/properties/{w.prop.pk}", {"city": "Peoria"}),
    "change_state": lambda w, c: w.api(c, "landlord").patch(f"/properties/{w.prop.pk}", {"state": "TX"}),
    "deactivate": lambda w, c: w.api(c, "landlord").delete(f"/properties/{w.prop.pk}"),
    "reactivate": lambda w, c: w.api(c, "admin").patch(f"/properties/{w.other_prop.pk}", {"isActive": True}),
    "admin_delete": lambda w, c: services.property_admin_delete(prop=Property.objects.get(pk=w.prop.pk)),
}


@pytest.mark.parametrize("write", list(CITY_WRITES))
def test_cities_lookup_is_never_stale_in_the_old_or_new_state(
    world: World, client: Client, clean_redis: redis.Redis, django_capture_on_commit_callbacks, write: str
) -> None:
    make_property(owner=world.landlord, city="Austin", state="TX")
    Property.objects.filter(pk=world.other_prop.pk).update(is_active=False)  # for "reactivate"
    cities(world, client, "IL")
    cities(world, client, "TX")
    with django_capture_on_commit_callbacks(execute=True):
        response = CITY_WRITES[write](world, client)
    assert getattr(response, "status_code", 200) < 300
    assert cities(world, client, "IL") == db_cities("IL")
    assert cities(world, client, "TX") == db_cities("TX")


# lookup:amenities


def test_amenities_lookup_fills_the_hash_and_is_never_stale(
    world: World, client: Client, clean_redis: redis.Redis, django_capture_on_commit_callbacks
) -> None:
    pool = Amenity.objects.create(name="Pool", category="outdoor")
    assert amenity_list(world, client) == db_amenities() == [{"id": pool.pk, "name": "Pool"}]
    assert clean_redis.hgetall("lookup:amenities") == {str(pool.pk): "Pool"}
    assert 23 * 3600 < clean_redis.ttl("lookup:amenities") <= 24 * 3600
    admin = world.api(client, "admin")
    steps: list[Callable[[], Any]] = [
        lambda: admin.post("/amenities", {"name": "Gym", "category": "indoor"}),
        lambda: admin.patch(f"/amenities/{pool.pk}", {"name": "Lido"}),
        lambda: services.amenity_admin_save(amenity=Amenity(name="Bike room", category="indoor")),
        lambda: admin.delete(f"/amenities/{pool.pk}"),
    ]
    for step in steps:
        amenity_list(world, client)
        assert clean_redis.exists("lookup:amenities")
        with django_capture_on_commit_callbacks(execute=True):
            step()
        assert amenity_list(world, client) == db_amenities()
    assert [a["name"] for a in amenity_list(world, client)] == ["Bike room", "Gym"]


def test_a_bare_orm_write_drops_nothing(
    world: World, client: Client, clean_redis: redis.Redis, django_capture_on_commit_callbacks
) -> None:
    """Documented behaviour (issue 10): no model signal drops these caches any more. A row written
    with the bare ORM (a shell, a script) leaves them until their TTL; code that writes outside the
    services must call the drops of `apps/properties/caches.py` itself."""
    Amenity.objects.create(name="Pool", category="outdoor")  # an empty lookup is not cached
    summary(world, client, "admin")
    availability(world, client)
    amenity_list(world, client)
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        _with(Property.objects.get(pk=world.prop.pk), street_address="2 Side St").save()
        _with(Unit.objects.get(pk=world.unit.pk), is_available=False).save()
        Amenity.objects.create(name="Sauna", category="indoor")
    assert callbacks == []
    assert clean_redis.exists(f"property:{world.prop.pk}")
    assert clean_redis.exists(f"unit:availability:{world.prop.pk}")
    assert clean_redis.exists("lookup:amenities")


# search:properties:{queryHash}


def search(world: World, client: Client, who: str, **params: Any) -> list[str]:
    response = world.api(client, who).get("/properties/search", **params)
    assert response.status_code == 200, response.content
    return [hit["propertyName"] for hit in response.json()["items"]]


def test_search_caches_one_json_string_per_normalized_query_and_scope(
    world: World, client: Client, clean_redis: redis.Redis
) -> None:
    assert search(world, client, "landlord", q="Property") == [world.prop.property_name]
    keys = list(clean_redis.scan_iter("search:properties:*"))
    assert len(keys) == 1 and clean_redis.type(keys[0]) == "string"
    assert len(keys[0].removeprefix("search:properties:")) == 64
    assert 0 < clean_redis.ttl(keys[0]) <= 300
    search(world, client, "landlord", q="  property ")  # same normalized query: same key
    assert len(list(clean_redis.scan_iter("search:properties:*"))) == 1
    search(world, client, "other_landlord", q="property")  # another scope: another key
    assert len(list(clean_redis.scan_iter("search:properties:*"))) == 2


def test_search_is_never_stale_after_property_visibility_or_lease_changes(
    world: World, client: Client, clean_redis: redis.Redis, django_capture_on_commit_callbacks
) -> None:
    landlord = world.api(client, "landlord")
    assert search(world, client, "landlord", q="harbor") == []
    with django_capture_on_commit_callbacks(execute=True):
        landlord.patch(f"/properties/{world.prop.pk}", {"propertyName": "Harbor View"})
    assert search(world, client, "landlord", q="harbor") == ["Harbor View"]
    assert search(world, client, "other_manager", q="harbor") == []
    # Visibility changes change the key itself: no drop needed, none captured.
    landlord.post(f"/properties/{world.prop.pk}/managers", {"userId": str(world.other_manager.pk)})
    assert search(world, client, "other_manager", q="harbor") == ["Harbor View"]
    newcomer = make_user()
    from tests.apps.api_world import Api

    assert [
        h["propertyName"] for h in Api(client, newcomer).get("/properties/search", q="harbor").json()["items"]
    ] == []
    make_lease(unit=world.unit, tenants=(newcomer,))
    assert [h["propertyName"] for h in Api(client, newcomer).get("/properties/search", q="harbor").json()["items"]] == [
        "Harbor View"
    ]
    with django_capture_on_commit_callbacks(execute=True):
        landlord.delete(f"/properties/{world.prop.pk}")
    assert search(world, client, "landlord", q="harbor") == []


# Real commits (no captured callbacks): the drop runs when the service's transaction commits.


@pytest.mark.django_db(transaction=True)
def test_drops_happen_on_real_commit(client: Client, clean_redis: redis.Redis) -> None:
    from tests.apps.api_world import build_world

    world = build_world()
    summary(world, client)
    availability(world, client)
    cities(world, client, "IL")
    search(world, client, "landlord", q="property")
    response = world.api(client, "landlord").patch(f"/properties/{world.prop.pk}", {"city": "Peoria"})
    assert response.status_code == 200
    assert not clean_redis.exists(f"property:{world.prop.pk}")
    assert not clean_redis.exists("lookup:cities:IL")
    assert not list(clean_redis.scan_iter("search:properties:*"))
    assert summary(world, client)["city"] == "Peoria"
    assert cities(world, client, "IL") == db_cities("IL")
    world.api(client, "manager").patch(f"/units/{world.unit.pk}", {"isAvailable": False})
    assert availability(world, client) == db_availability(world.prop.pk) == (1, 0)


# Redis down


@pytest.fixture
def redis_down() -> Iterator[None]:
    """Point the realtime core at a port where no Redis listens."""
    original = connections.current_settings()
    connections.configure(replace(original, redis_url="redis://127.0.0.1:1/0", redis_socket_timeout=0.5))
    yield
    connections.configure(original)


def test_every_cached_endpoint_answers_from_postgres_while_redis_is_down(
    world: World, client: Client, django_capture_on_commit_callbacks, request: pytest.FixtureRequest
) -> None:
    Amenity.objects.create(name="Pool", category="outdoor")
    make_unit(property=world.prop, is_available=False, monthly_rent=Decimal("999.00"))
    for who in ("landlord", "tenant", "admin", "manager"):
        world.api(client, who)  # log in while Redis is up (login also works without it)
    request.getfixturevalue("redis_down")
    assert summary(world, client) == db_summary(world.prop.pk)
    assert availability(world, client) == db_availability(world.prop.pk)
    assert cities(world, client, "IL") == db_cities("IL")
    assert amenity_list(world, client) == db_amenities()
    assert search(world, client, "landlord", q="property") == [world.prop.property_name]
    with django_capture_on_commit_callbacks(execute=True):
        response = world.api(client, "landlord").patch(f"/properties/{world.prop.pk}", {"propertyName": "Still works"})
    assert response.status_code == 200
    assert summary(world, client)["name"] == "Still works"
    assert search(world, client, "landlord", q="still") == ["Still works"]
