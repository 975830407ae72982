"""HTTP endpoints of properties and units (mounted at /api/v1 by pms/api.py; amenities and managers: amenities_api.py).

Every endpoint authenticates with `token_auth`, checks visibility first (an object the
caller may not see answers 404), then what the caller may change (403 for an object
they see but may not change). ORM work and serialization run together in one
`sync_to_async` hop per request.
"""

from typing import Any
from uuid import UUID

from asgiref.sync import sync_to_async
from django.http import HttpRequest
from ninja import Path, Query, Router, Status

from apps.accounts.services import Principal
from apps.common.http import token_auth
from apps.common.pagination import Page, PageParams, paginate
from apps.properties import caches, selectors, services
from apps.properties.amenities_api import router as amenities_router
from apps.properties.models import Property, Unit
from apps.properties.schemas import (
    AllUnitFilters,
    AvailabilityOut,
    CitiesOut,
    PropertyFilters,
    PropertyHit,
    PropertyIn,
    PropertyOut,
    PropertyPatch,
    PropertySearchParams,
    PropertySummaryOut,
    UnitFilters,
    UnitIn,
    UnitOut,
    UnitPatch,
)

router = Router(tags=["properties"], auth=token_auth)


def caller_of(request: HttpRequest) -> Principal:
    return request.auth  # type: ignore[attr-defined]


def _link_ids(obj: Property | Unit) -> list[int]:
    return sorted(link.amenity_id for link in obj.amenity_links.all())


def property_out(prop: Property) -> dict[str, Any]:
    return {
        "id": prop.pk,
        "ownerId": prop.owner_id,
        "propertyName": prop.property_name,
        "streetAddress": prop.street_address,
        "city": prop.city,
        "state": prop.state,
        "zipCode": prop.zip_code,
        "propertyType": prop.property_type,
        "yearBuilt": prop.year_built,
        "squareFootage": prop.square_footage,
        "isActive": prop.is_active is not False,
        "hasHudApproval": bool(prop.has_hud_approval),
        "hudApprovalDate": prop.hud_approval_date,
        "hudProgramType": prop.hud_program_type,
        "amenityIds": _link_ids(prop),
        "createdAt": prop.created_at,
        "updatedAt": prop.updated_at,
    }


def property_hit(prop: Property) -> dict[str, Any]:
    """JSON-ready (it is cached as a JSON string)."""
    return PropertyHit(
        id=prop.pk,
        propertyName=prop.property_name,
        streetAddress=prop.street_address,
        city=prop.city,
        state=prop.state,
        zipCode=prop.zip_code,
        propertyType=prop.property_type,
        hasHudApproval=bool(prop.has_hud_approval),
    ).model_dump(mode="json")


def unit_out(unit: Unit) -> dict[str, Any]:
    return {
        "id": unit.pk,
        "propertyId": unit.property_id,
        "unitNumber": unit.unit_number,
        "bedrooms": unit.bedrooms,
        "bathrooms": unit.bathrooms,
        "squareFootage": unit.square_footage,
        "monthlyRent": unit.monthly_rent,
        "isOccupied": bool(unit.is_occupied),
        "isAvailable": unit.is_available is not False,
        "unitFeatures": unit.unit_features,
        "amenityIds": _link_ids(unit),
        "createdAt": unit.created_at,
        "updatedAt": unit.updated_at,
    }


# Properties ----------------------------------------------------------------------------
# /properties/search is declared before /properties/{property_id} so it is matched first.


@router.get("/properties/search", response=Page[PropertyHit])
async def search_properties(
    request: HttpRequest, params: Query[PropertySearchParams], page: Query[PageParams]
) -> dict[str, Any]:
    """Find active properties you may see by words in name, address, city or ZIP (cached 5 min per query and scope)."""
    return await caches.aproperty_search(
        caller=caller_of(request),
        q=params.q,
        city=params.city,
        state=params.state,
        limit=page.limit,
        offset=page.offset,
        serialize=property_hit,
    )


@router.get("/properties", response=Page[PropertyOut])
async def list_properties(
    request: HttpRequest, filters: Query[PropertyFilters], page: Query[PageParams]
) -> dict[str, Any]:
    """Properties you own, manage or (as a tenant) rent in, by name; filter by city/state, HUD approval, type, active."""
    rows = selectors.property_list_visible(
        caller=caller_of(request),
        city=filters.city,
        state=filters.state,
        has_hud_approval=filters.hasHudApproval,
        property_type=filters.propertyType,
        is_active=filters.isActive,
    )
    return await sync_to_async(paginate)(rows, page, property_out)


@router.post("/properties", response={201: PropertyOut})
async def create_property(request: HttpRequest, payload: PropertyIn) -> Status[dict[str, Any]]:
    """Create a property: landlords own what they create; admins may name the owner (`ownerId`)."""

    def run() -> dict[str, Any]:
        prop = services.property_create(caller=caller_of(request), data=payload.model_dump())
        return property_out(prop)

    return Status(201, await sync_to_async(run)())


@router.get("/properties/{property_id}", response=PropertyOut)
async def get_property(request: HttpRequest, property_id: UUID) -> dict[str, Any]:
    """One property you may see."""

    def run() -> dict[str, Any]:
        return property_out(selectors.access_property(caller=caller_of(request), property_id=property_id))

    return await sync_to_async(run)()


@router.patch("/properties/{property_id}", response=PropertyOut)
async def update_property(request: HttpRequest, property_id: UUID, payload: PropertyPatch) -> dict[str, Any]:
    """Change a property (owner or admin; `ownerId` admin only)."""

    def run() -> dict[str, Any]:
        caller = caller_of(request)
        prop = selectors.access_property(caller=caller, property_id=property_id)
        services.property_update(caller=caller, prop=prop, data=payload.model_dump(exclude_unset=True))
        return property_out(selectors.access_property(caller=caller, property_id=property_id))

    return await sync_to_async(run)()


@router.delete("/properties/{property_id}", response={204: None})
async def deactivate_property(request: HttpRequest, property_id: UUID) -> Status[None]:
    """Deactivate a property (owner or admin): `isActive` becomes false, its history stays."""

    def run() -> None:
        caller = caller_of(request)
        prop = selectors.access_property(caller=caller, property_id=property_id)
        services.property_deactivate(caller=caller, prop=prop)

    await sync_to_async(run)()
    return Status(204, None)


@router.get("/properties/{property_id}/summary", response=PropertySummaryOut)
async def property_summary(request: HttpRequest, property_id: UUID) -> dict[str, Any]:
    """Name, address, unit count and owner name (the `property:{id}` cache, 30 min)."""
    await sync_to_async(selectors.access_property)(caller=caller_of(request), property_id=property_id)
    return {"id": property_id, **await caches.aproperty_details(property_id=property_id)}


@router.get("/properties/{property_id}/availability", response=AvailabilityOut)
async def property_availability(request: HttpRequest, property_id: UUID) -> dict[str, Any]:
    """Units in total and available (the `unit:availability:{id}` cache, 5 min)."""
    await sync_to_async(selectors.access_property)(caller=caller_of(request), property_id=property_id)
    return {"propertyId": property_id, **await caches.aunit_availability(property_id=property_id)}


@router.get("/lookup/cities/{state_code}", response=CitiesOut)
async def lookup_cities(
    request: HttpRequest, state_code: str = Path(..., min_length=1, max_length=50)
) -> dict[str, Any]:
    """Cities of a state with their number of active properties (the `lookup:cities:{STATE}` cache, 24 h)."""
    counts = await caches.acity_counts(state_code=state_code)
    return {
        "stateCode": state_code.upper(),
        "cities": [{"name": city, "propertyCount": counts[city]} for city in sorted(counts)],
    }


# Units ---------------------------------------------------------------------------------


@router.get("/properties/{property_id}/units", response=Page[UnitOut])
async def list_property_units(
    request: HttpRequest, property_id: UUID, filters: Query[UnitFilters], page: Query[PageParams]
) -> dict[str, Any]:
    """Units of a property you may see (a tenant: only their own); filter by availability, rent range, bedrooms."""

    def run() -> dict[str, Any]:
        caller = caller_of(request)
        selectors.access_property(caller=caller, property_id=property_id)
        rows = selectors.unit_list_visible(
            caller=caller,
            property_id=property_id,
            is_available=filters.isAvailable,
            min_rent=filters.minRent,
            max_rent=filters.maxRent,
            bedrooms=filters.bedrooms,
        )
        return paginate(rows, page, unit_out)

    return await sync_to_async(run)()


@router.post("/properties/{property_id}/units", response={201: UnitOut})
async def create_unit(request: HttpRequest, property_id: UUID, payload: UnitIn) -> Status[dict[str, Any]]:
    """Add a unit (owner, manager or admin); 409 when the unit number is taken in the property."""

    def run() -> dict[str, Any]:
        caller = caller_of(request)
        prop = selectors.access_property(caller=caller, property_id=property_id)
        unit = services.unit_create(caller=caller, prop=prop, data=payload.model_dump())
        return unit_out(unit)

    return Status(201, await sync_to_async(run)())


@router.get("/units", response=Page[UnitOut])
async def list_units(request: HttpRequest, filters: Query[AllUnitFilters], page: Query[PageParams]) -> dict[str, Any]:
    """Units you may see; filter by property, availability, rent range, bedrooms."""
    rows = selectors.unit_list_visible(
        caller=caller_of(request),
        property_id=filters.propertyId,
        is_available=filters.isAvailable,
        min_rent=filters.minRent,
        max_rent=filters.maxRent,
        bedrooms=filters.bedrooms,
    )
    return await sync_to_async(paginate)(rows, page, unit_out)


@router.get("/units/{unit_id}", response=UnitOut)
async def get_unit(request: HttpRequest, unit_id: UUID) -> dict[str, Any]:
    """One unit you may see."""

    def run() -> dict[str, Any]:
        return unit_out(selectors.access_unit(caller=caller_of(request), unit_id=unit_id))

    return await sync_to_async(run)()


@router.patch("/units/{unit_id}", response=UnitOut)
async def update_unit(request: HttpRequest, unit_id: UUID, payload: UnitPatch) -> dict[str, Any]:
    """Change a unit (owner, manager or admin); 409 when the new unit number is taken."""

    def run() -> dict[str, Any]:
        caller = caller_of(request)
        unit = selectors.access_unit(caller=caller, unit_id=unit_id)
        services.unit_update(caller=caller, unit=unit, data=payload.model_dump(exclude_unset=True))
        return unit_out(selectors.access_unit(caller=caller, unit_id=unit_id))

    return await sync_to_async(run)()


@router.delete("/units/{unit_id}", response={204: None})
async def delete_unit(request: HttpRequest, unit_id: UUID) -> Status[None]:
    """Delete a unit that has no leases or maintenance requests (409 otherwise: mark it unavailable)."""

    def run() -> None:
        caller = caller_of(request)
        services.unit_delete(caller=caller, unit=selectors.access_unit(caller=caller, unit_id=unit_id))

    await sync_to_async(run)()
    return Status(204, None)


# Amenities and property managers: their own module, mounted here so pms/api.py mounts one router per domain.
router.add_router("", amenities_router)
