"""Reads of properties, units, amenities and property managers, always through the caller's view.

Who sees what is the access policy's (apps/common/policy.py: `properties.view`,
`units.view` in the caller's scope): an admin everything; a landlord or property manager
the properties they own or manage and their units; a tenant the units of their ACTIVE
leases and those units' properties, read-only. Anything else answers 404.
Visibility is expressed as `pk IN (subquery)` filters, so lists never need DISTINCT.
"""

import hashlib
from decimal import Decimal
from typing import Any

from django.db.models import Count, Q, QuerySet

from apps.common import policy
from apps.common.visibility import Caller, not_found
from apps.properties.models import Amenity, Property, PropertyManager, Unit


def _tenant_unit_ids(caller: Caller) -> QuerySet[Unit, Any]:
    return Unit.objects.filter(policy.active_lease_tenant_q(caller, "leases__")).values("pk")


def _ids(model: type[Property] | type[Unit], q: Q | None) -> Q:
    """`pk IN (subquery)` for the rows matching `q` (no duplicates from multi-valued joins); Q() for all."""
    return Q() if q is None else Q(pk__in=model.objects.filter(q).values("pk"))


def is_tenant(caller: Caller) -> bool:
    """The caller sees properties only as a tenant (`properties.view` in the OWN scope): read-only."""
    return policy.scope_of(caller, "properties.view") <= policy.Scope.OWN


def property_visible_q(caller: Caller, permission: str = "properties.view") -> Q:
    """Properties the caller may read (or act on under `permission`)."""
    own = Q(pk__in=Unit.objects.filter(pk__in=_tenant_unit_ids(caller)).values("property_id"))
    return _ids(Property, policy.visible_q(caller, permission, property_path="", own=own))


def unit_visible_q(caller: Caller, permission: str = "units.view") -> Q:
    """Units the caller may read (or act on under `permission`)."""
    own = Q(pk__in=_tenant_unit_ids(caller))
    return _ids(Unit, policy.visible_q(caller, permission, property_path="property__", own=own))


def property_list_visible(
    *,
    caller: Caller,
    city: str | None = None,
    state: str | None = None,
    has_hud_approval: bool | None = None,
    property_type: str | None = None,
    is_active: bool | None = None,
) -> QuerySet[Property]:
    """The caller's properties, filtered along the seed's indexes (city/state, HUD approval), by name;
    403 without `properties.view`."""
    policy.require(caller, "properties.view")
    rows = Property.objects.filter(property_visible_q(caller))
    if city is not None:
        rows = rows.filter(city__iexact=city)
    if state is not None:
        rows = rows.filter(state__iexact=state)
    if has_hud_approval is not None:
        rows = rows.filter(has_hud_approval=has_hud_approval)
    if property_type is not None:
        rows = rows.filter(property_type=property_type)
    if is_active is not None:
        rows = rows.filter(is_active=is_active)
    return rows.prefetch_related("amenity_links").order_by("property_name", "pk")


def access_property(*, caller: Caller, property_id: Any) -> Property:
    """The property if the caller may read it; not_found otherwise (forbidden and unknown look alike)."""
    prop = Property.objects.filter(property_visible_q(caller), pk=property_id).prefetch_related("amenity_links").first()
    if prop is None:
        raise not_found()
    return prop


def property_caller_may_write(*, caller: Caller, prop: Property) -> bool:
    """`properties.manage` covers the property: its owner, or an admin (managers and tenants read only)."""
    return Property.objects.filter(property_visible_q(caller, "properties.manage"), pk=prop.pk).exists()


def unit_caller_may_write(*, caller: Caller, property_id: Any) -> bool:
    """`units.manage` covers the unit's property: its owner or manager, or an admin."""
    q = policy.visible_q(caller, "units.manage", property_path="")
    return Property.objects.filter(_ids(Property, q), pk=property_id).exists()


def unit_list_visible(
    *,
    caller: Caller,
    property_id: Any = None,
    is_available: bool | None = None,
    min_rent: Decimal | None = None,
    max_rent: Decimal | None = None,
    bedrooms: int | None = None,
) -> QuerySet[Unit]:
    """The caller's units, filtered by property, availability, rent range and bedrooms; 403 without `units.view`."""
    policy.require(caller, "units.view")
    rows = Unit.objects.filter(unit_visible_q(caller))
    if property_id is not None:
        rows = rows.filter(property_id=property_id)
    if is_available is not None:
        rows = rows.filter(is_available=is_available)
    if min_rent is not None:
        rows = rows.filter(monthly_rent__gte=min_rent)
    if max_rent is not None:
        rows = rows.filter(monthly_rent__lte=max_rent)
    if bedrooms is not None:
        rows = rows.filter(bedrooms=bedrooms)
    return rows.prefetch_related("amenity_links").order_by("property_id", "unit_number", "pk")


def access_unit(*, caller: Caller, unit_id: Any) -> Unit:
    """The unit if the caller may read it; not_found otherwise."""
    unit = Unit.objects.filter(unit_visible_q(caller), pk=unit_id).prefetch_related("amenity_links").first()
    if unit is None:
        raise not_found()
    return unit


def amenity_list() -> list[Amenity]:
    return list(Amenity.objects.order_by("name", "pk"))


def amenity_get(*, amenity_id: int) -> Amenity:
    amenity = Amenity.objects.filter(pk=amenity_id).first()
    if amenity is None:
        raise not_found()
    return amenity


def amenity_names() -> dict[str, str]:
    """`lookup:amenities`: amenity id -> name."""
    return {str(pk): name for pk, name in Amenity.objects.values_list("pk", "name")}


def amenities_of_property(*, property_id: Any) -> list[Amenity]:
    return list(Amenity.objects.filter(property_links__property_id=property_id).order_by("name", "pk"))


def amenities_of_unit(*, unit_id: Any) -> list[Amenity]:
    return list(Amenity.objects.filter(unit_links__unit_id=unit_id).order_by("name", "pk"))


def property_manager_list(*, property_id: Any) -> list[PropertyManager]:
    return list(
        PropertyManager.objects.filter(property_id=property_id).select_related("user").order_by("created_at", "pk")
    )


def property_details(*, property_id: Any) -> dict[str, Any]:
    """`property:{id}`: name, address, city, state, zipCode, unitCount, ownerName (None when no owner)."""
    prop = Property.objects.filter(pk=property_id).select_related("owner").annotate(unit_count=Count("units")).first()
    if prop is None:
        raise not_found()
    owner = prop.owner
    return {
        "name": prop.property_name,
        "address": prop.street_address,
        "city": prop.city,
        "state": prop.state,
        "zipCode": prop.zip_code,
        "unitCount": prop.unit_count,
        "ownerName": owner.get_full_name() if owner is not None else None,
    }


def unit_availability(*, property_id: Any) -> dict[str, Any]:
    """`unit:availability:{id}`: units in total, `is_available` units, and when this was counted."""
    from django.utils import timezone

    counts = Unit.objects.filter(property_id=property_id).aggregate(
        total=Count("pk"), available=Count("pk", filter=Q(is_available=True))
    )
    return {"totalUnits": counts["total"], "availableUnits": counts["available"], "lastUpdated": timezone.now()}


def city_counts(*, state_code: str) -> dict[str, int]:
    """`lookup:cities:{STATE}`: city -> number of active properties in that state (state matched case-insensitively)."""
    rows = (
        Property.objects.filter(state__iexact=state_code, is_active=True)
        .values("city")
        .annotate(n=Count("pk"))
        .order_by("city")
    )
    return {row["city"]: row["n"] for row in rows}


def property_search(
    *, caller: Caller, q: str | None, city: str | None, state: str | None, limit: int, offset: int
) -> tuple[list[Property], int]:
    """Active properties the caller may see whose name, address, city or ZIP contains `q`, by name."""
    rows = Property.objects.filter(property_visible_q(caller), is_active=True)
    if q:
        for word in q.split():
            rows = rows.filter(
                Q(property_name__icontains=word)
                | Q(street_address__icontains=word)
                | Q(city__icontains=word)
                | Q(zip_code__icontains=word)
            )
    if city:
        rows = rows.filter(city__iexact=city)
    if state:
        rows = rows.filter(state__iexact=state)
    rows = rows.order_by("property_name", "pk")
    return list(rows[offset : offset + limit]), rows.count()


def visibility_scope(caller: Caller) -> str:
    """A token that changes whenever the set of properties the caller sees changes.

    Part of the `search:properties:{queryHash}` key, so a cached search can never show a
    property the caller lost (or miss one gained) through a lease or manager change, even
    though those changes happen in other apps.
    """
    if policy.sees_all(caller, "properties.view"):
        return "admin"
    ids = sorted(str(pk) for pk in Property.objects.filter(property_visible_q(caller)).values_list("pk", flat=True))
    digest = hashlib.sha256(",".join(ids).encode()).hexdigest()
    return f"{caller.user_type}:{caller.user_id}:{digest}"
