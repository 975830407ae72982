"""The seed's property caches: read through by the endpoints, dropped after the commit of any change.

| key | type | TTL | holds | dropped when |
|---|---|---|---|---|
| `property:{id}` | hash | 30 min | name, address, city, state, zipCode, unitCount, ownerName | the property, its units or its owner (name) change |
| `unit:availability:{id}` | hash | 5 min | totalUnits, availableUnits, lastUpdated | any unit of the property changes |
| `lookup:cities:{STATE}` | hash | 24 h | city -> number of active properties | a property is created, deleted, deactivated or moves city/state (old and new state) |
| `lookup:amenities` | hash | 24 h | amenity id -> name | an amenity changes |
| `search:properties:{queryHash}` | string (JSON) | 5 min | one page of search hits | any property changes (pattern, SCAN) |

The drops hang on post_save/post_delete, so every path (API, admin, other apps, shell)
triggers them; they run after the transaction commits (`drop_on_commit`), so the first
read after the commit refills from the new data. The search key's hash covers the
caller's visibility scope (see `selectors.visibility_scope`), so lease or manager
changes made elsewhere change the key instead of needing a drop.
"""

import hashlib
import json
from typing import Any

from asgiref.sync import sync_to_async
from django.db.models.signals import post_delete, post_save, pre_save
from django.dispatch import receiver

from apps.accounts.models import User
from apps.common.cache import aread_hash, aread_json, decode_hash, drop_on_commit
from apps.common.visibility import Caller
from apps.properties import selectors
from apps.properties.models import Amenity, Property, Unit
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


@receiver(pre_save, sender=Property)
def remember_property_place(sender: type, instance: Property, raw: bool, using: str, **kwargs: Any) -> None:
    previous = None
    if not raw and not instance._state.adding:
        previous = (
            Property.objects.using(using).filter(pk=instance.pk).values_list("state", "city", "is_active").first()
        )
    instance._cache_previous_place = previous  # type: ignore[attr-defined]


@receiver(post_save, sender=Property)
def property_saved(sender: type, instance: Property, created: bool, **kwargs: Any) -> None:
    drop = [keys.property_details(str(instance.pk))]
    previous = getattr(instance, "_cache_previous_place", None)
    if created or previous is None or previous != (instance.state, instance.city, instance.is_active):
        states = {instance.state} | ({previous[0]} if previous is not None else set())
        drop += [keys.lookup_cities(state) for state in sorted(states)]
    drop_on_commit(drop, [SEARCH_PATTERN])


@receiver(post_delete, sender=Property)
def property_deleted(sender: type, instance: Property, **kwargs: Any) -> None:
    drop_on_commit(
        [
            keys.property_details(str(instance.pk)),
            keys.unit_availability(str(instance.pk)),
            keys.lookup_cities(instance.state),
        ],
        [SEARCH_PATTERN],
    )


@receiver(pre_save, sender=Unit)
def remember_unit_property(sender: type, instance: Unit, raw: bool, using: str, **kwargs: Any) -> None:
    previous = None
    if not raw and not instance._state.adding:
        previous = Unit.objects.using(using).filter(pk=instance.pk).values_list("property_id", flat=True).first()
    instance._cache_previous_property_id = previous  # type: ignore[attr-defined]


def _unit_keys(*property_ids: Any) -> list[str]:
    found = dict.fromkeys(str(pid) for pid in property_ids if pid is not None)
    return [key for pid in found for key in (keys.property_details(pid), keys.unit_availability(pid))]


@receiver(post_save, sender=Unit)
def unit_saved(sender: type, instance: Unit, **kwargs: Any) -> None:
    drop_on_commit(_unit_keys(instance.property_id, getattr(instance, "_cache_previous_property_id", None)))


@receiver(post_delete, sender=Unit)
def unit_deleted(sender: type, instance: Unit, **kwargs: Any) -> None:
    drop_on_commit(_unit_keys(instance.property_id))


@receiver(post_save, sender=Amenity)
@receiver(post_delete, sender=Amenity)
def amenity_changed(sender: type, instance: Amenity, **kwargs: Any) -> None:
    drop_on_commit([keys.LOOKUP_AMENITIES])


# Saves touching only these fields cannot change an owner's name.
_USER_FIELDS_WITHOUT_NAME = frozenset({"last_login", "updated_at", "password", "is_active", "phone"})


@receiver(post_save, sender=User)
def owner_saved(sender: type, instance: User, created: bool, update_fields: Any = None, **kwargs: Any) -> None:
    """`ownerName` of the user's properties."""
    if created or (update_fields is not None and set(update_fields) <= _USER_FIELDS_WITHOUT_NAME):
        return
    owned = Property.objects.filter(owner_id=instance.pk).values_list("pk", flat=True)
    drop_on_commit([keys.property_details(str(pk)) for pk in owned])
