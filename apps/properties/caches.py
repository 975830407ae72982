"""The seed's property caches: read through by the endpoints, dropped after the commit of any change.

| key | type | TTL | holds | dropped when |
|---|---|---|---|---|
| `property:{id}` | hash | 30 min | name, address, city, state, zipCode, unitCount, ownerName | the property, its units or its owner (name) change |
| `unit:availability:{id}` | hash | 5 min | totalUnits, availableUnits, lastUpdated | any unit of the property changes |
| `lookup:cities:{STATE}` | hash | 24 h | city -> number of active properties | a property is created, deleted, deactivated or moves city/state (old and new state) |
| `lookup:amenities` | hash | 24 h | amenity id -> name | an amenity changes |
| `search:properties:{queryHash}` | string (JSON) | 5 min | one page of search hits | any property changes (pattern, SCAN) |

The services drop them (`property_caches_changed`, `unit_caches_changed`, ... below, called
in the writing transaction); they run after the transaction commits (`drop_on_commit`), so
the first read after the commit refills from the new data. A bare ORM save, `update()` or
shell write drops nothing (issue 10: no model signals): such a key lags for its TTL.
The search key's hash covers the caller's visibility scope (see
`selectors.visibility_scope`), so lease or manager changes made elsewhere change the
key instead of needing a drop.
"""

import hashlib
import json
from typing import Any

from asgiref.sync import sync_to_async

from apps.accounts.models import User
from apps.common.cache import aread_hash, aread_json, decode_hash, drop_on_commit
from apps.common.visibility import Caller
from apps.events.outbox import register_deleted, register_saved
from apps.properties import selectors
from apps.properties.models import Property, Unit
from realtime import keys

PROPERTY_DETAILS_TTL = 30 * 60
UNIT_AVAILABILITY_TTL = 5 * 60
LOOKUP_TTL = 24 * 3600
SEARCH_TTL = 5 * 60
SEARCH_PATTERN = keys.search_properties("*")

PROPERTY_DETAILS_TYPES: dict[str, type] = {
    "name": str,
    "address": str,
    "city": str,
    "state": str,
    "zipCode": str,
    "unitCount": int,
    "ownerName": str,
}
UNIT_AVAILABILITY_TYPES: dict[str, type] = {"totalUnits": int, "availableUnits": int, "lastUpdated": str}


# Reads ---------------------------------------------------------------------------------


async def aproperty_details(*, property_id: Any) -> dict[str, Any]:
    """`property:{id}`, typed; the caller has checked visibility."""
    raw = await aread_hash(
        keys.property_details(str(property_id)),
        PROPERTY_DETAILS_TTL,
        sync_to_async(lambda: selectors.property_details(property_id=property_id)),
    )
    return decode_hash(raw, PROPERTY_DETAILS_TYPES)


async def aunit_availability(*, property_id: Any) -> dict[str, Any]:
    """`unit:availability:{id}`, typed; the caller has checked visibility."""
    raw = await aread_hash(
        keys.unit_availability(str(property_id)),
        UNIT_AVAILABILITY_TTL,
        sync_to_async(lambda: selectors.unit_availability(property_id=property_id)),
    )
    return decode_hash(raw, UNIT_AVAILABILITY_TYPES)


async def acity_counts(*, state_code: str) -> dict[str, int]:
    """`lookup:cities:{STATE}`: city -> active properties."""
    raw = await aread_hash(
        keys.lookup_cities(state_code),
        LOOKUP_TTL,
        sync_to_async(lambda: selectors.city_counts(state_code=state_code)),
    )
    return {city: int(count) for city, count in raw.items()}


async def aamenity_names() -> dict[int, str]:
    """`lookup:amenities`: amenity id -> name."""
    raw = await aread_hash(keys.LOOKUP_AMENITIES, LOOKUP_TTL, sync_to_async(selectors.amenity_names))
    return {int(pk): name for pk, name in raw.items()}


def search_query_hash(*, query: dict[str, Any], scope: str) -> str:
    """SHA-256 of the normalized query (sorted keys, empty parts left out) and the caller's scope."""
    normalized = {name: value for name, value in query.items() if value not in (None, "")}
    payload = json.dumps({"query": normalized, "scope": scope}, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(payload.encode()).hexdigest()


def normalize_search(*, q: str | None, city: str | None, state: str | None, limit: int, offset: int) -> dict[str, Any]:
    """Case and spacing never split the cache: `" Oak  Park "` and `"oak park"` are one query."""

    def clean(text: str | None) -> str | None:
        return " ".join(text.split()).lower() if text else None

    return {"q": clean(q), "city": clean(city), "state": clean(state), "limit": limit, "offset": offset}


async def aproperty_search(
    *,
    caller: Caller,
    q: str | None,
    city: str | None,
    state: str | None,
    limit: int,
    offset: int,
    serialize: Any,
) -> dict[str, Any]:
    """`search:properties:{queryHash}`: one page of hits (the `Page` shape), `serialize`d per property."""
    query = normalize_search(q=q, city=city, state=state, limit=limit, offset=offset)
    scope = await sync_to_async(selectors.visibility_scope)(caller)

    def load() -> dict[str, Any]:
        rows, count = selectors.property_search(
            caller=caller, q=query["q"], city=query["city"], state=query["state"], limit=limit, offset=offset
        )
        following = offset + len(rows)
        return {
            "items": [serialize(row) for row in rows],
            "count": count,
            "limit": limit,
            "offset": offset,
            "nextOffset": following if following < count else None,
        }

    key = keys.search_properties(search_query_hash(query=query, scope=scope))
    result: dict[str, Any] = await aread_json(key, SEARCH_TTL, sync_to_async(load))
    return result


# Drops ---------------------------------------------------------------------------------
# Called by the services (apps/properties/services.py) inside the transaction that writes the
# row; each drops after the commit. Cascades (a property or unit deleted through its service)
# and the integration layer's saves reach them through the recorders registered at the end.

Place = tuple[str | None, str | None, bool]


def place_of(prop: Property) -> Place:
    """What `lookup:cities:{STATE}` counts a property by: its state, city and active flag."""
    return (prop.state, prop.city, prop.is_active)


def property_caches_changed(prop: Property, *, previous_place: Place | None) -> None:
    """The property was saved (`previous_place`: its place before, None when created): drop its
    details, the city counts of its old and new state when its place changed, and the searches."""
    drop = [keys.property_details(str(prop.pk))]
    if previous_place is None or previous_place != place_of(prop):
        states = {prop.state} | ({previous_place[0]} if previous_place is not None else set())
        drop += [keys.lookup_cities(state) for state in sorted(s for s in states if s is not None)]
    drop_on_commit(drop, [SEARCH_PATTERN])


def property_caches_deleted(prop: Property) -> None:
    """The property is deleted in the current transaction: its details, availability, city counts, searches."""
    drop_on_commit(
        [
            keys.property_details(str(prop.pk)),
            keys.unit_availability(str(prop.pk)),
            keys.lookup_cities(prop.state),
        ],
        [SEARCH_PATTERN],
    )


def unit_caches_changed(*property_ids: Any) -> None:
    """A unit of these properties (the one it is in and the one it left) was saved or deleted:
    their details (`unitCount`) and availability."""
    found = dict.fromkeys(str(pid) for pid in property_ids if pid is not None)
    drop_on_commit([key for pid in found for key in (keys.property_details(pid), keys.unit_availability(pid))])


def amenities_changed() -> None:
    """An amenity was created, renamed or deleted: `lookup:amenities`."""
    drop_on_commit([keys.LOOKUP_AMENITIES])


def owner_renamed(user_id: Any) -> None:
    """The user's name changed: `ownerName` of the properties they own."""
    owned = Property.objects.filter(owner_id=user_id).values_list("pk", flat=True)
    drop_on_commit([keys.property_details(str(pk)) for pk in owned])


def _generic_property_saved(prop: Property, created: bool, previous: dict[str, Any]) -> None:
    old = (
        previous.get("state", prop.state),
        previous.get("city", prop.city),
        previous.get("is_active", prop.is_active),
    )
    property_caches_changed(prop, previous_place=None if created else old)


# What the integration layer's saves and the services' cascades change (apps.events.outbox).
register_saved(Property, _generic_property_saved)
register_saved(Unit, lambda unit, created, previous: unit_caches_changed(unit.property_id, previous.get("property_id")))
register_deleted(Property, property_caches_deleted)
register_deleted(Unit, lambda unit: unit_caches_changed(unit.property_id))
# A user's name as the accounts services record it (`user_update`, the admin's save).
_NAME_FIELDS = frozenset({"first_name", "last_name"})
register_saved(User, lambda user, created, previous: owner_renamed(user.pk) if _NAME_FIELDS & set(previous) else None)
