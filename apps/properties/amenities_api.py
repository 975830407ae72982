"""HTTP endpoints of amenities (the catalogue, property and unit links) and property managers.

Mounted inside the properties router (`apps/properties/api.py`), so under /api/v1 too.
"""

from typing import Any
from uuid import UUID

from asgiref.sync import sync_to_async
from django.http import HttpRequest
from ninja import Router, Status

from apps.accounts.services import Principal
from apps.common.http import token_auth
from apps.properties import caches, selectors, services
from apps.properties.models import Amenity, Property, PropertyManager
from apps.properties.schemas import (
    AmenityIdsIn,
    AmenityIn,
    AmenityNameOut,
    AmenityOut,
    AmenityPatch,
    ManagerIn,
    ManagerOut,
)

router = Router(tags=["amenities and managers"], auth=token_auth)

TENANTS_READ_ONLY = "Tenants cannot see or change a property's managers."


def caller_of(request: HttpRequest) -> Principal:
    return request.auth  # type: ignore[attr-defined]


def amenity_out(amenity: Amenity) -> dict[str, Any]:
    return {"id": amenity.pk, "name": amenity.name, "category": amenity.category}


def manager_out(link: PropertyManager) -> dict[str, Any]:
    user = link.user
    return {
        "userId": user.pk,
        "email": user.email,
        "firstName": user.first_name,
        "lastName": user.last_name,
        "userType": user.user_type,
        "addedAt": link.created_at,
    }


# Amenities -----------------------------------------------------------------------------


@router.get("/amenities", response=list[AmenityNameOut])
async def list_amenities(request: HttpRequest) -> list[dict[str, Any]]:
    """Every amenity's id and name, by name (the `lookup:amenities` cache, 24 h)."""
    names = await caches.aamenity_names()
    return [{"id": pk, "name": name} for pk, name in sorted(names.items(), key=lambda item: (item[1], item[0]))]


@router.post("/amenities", response={201: AmenityOut})
async def create_amenity(request: HttpRequest, payload: AmenityIn) -> Status[dict[str, Any]]:
    """Add an amenity (admins); 409 for a duplicate name in its category."""
    amenity = await sync_to_async(services.amenity_create)(
        caller=caller_of(request), name=payload.name, category=payload.category
    )
    return Status(201, amenity_out(amenity))


@router.get("/amenities/{amenity_id}", response=AmenityOut)
async def get_amenity(request: HttpRequest, amenity_id: int) -> dict[str, Any]:
    """One amenity with its category."""
    return amenity_out(await sync_to_async(selectors.amenity_get)(amenity_id=amenity_id))


@router.patch("/amenities/{amenity_id}", response=AmenityOut)
async def update_amenity(request: HttpRequest, amenity_id: int, payload: AmenityPatch) -> dict[str, Any]:
    """Rename or re-categorize an amenity (admins)."""
    amenity = await sync_to_async(services.amenity_update)(
        caller=caller_of(request), amenity_id=amenity_id, data=payload.model_dump(exclude_unset=True)
    )
    return amenity_out(amenity)


@router.delete("/amenities/{amenity_id}", response={204: None})
async def delete_amenity(request: HttpRequest, amenity_id: int) -> Status[None]:
    """Delete an amenity and every property/unit link to it (admins)."""
    await sync_to_async(services.amenity_delete)(caller=caller_of(request), amenity_id=amenity_id)
    return Status(204, None)


@router.get("/properties/{property_id}/amenities", response=list[AmenityOut])
async def property_amenities(request: HttpRequest, property_id: UUID) -> list[dict[str, Any]]:
    """The amenities of a property you may see."""

    def run() -> list[dict[str, Any]]:
        selectors.access_property(caller=caller_of(request), property_id=property_id)
        return [amenity_out(a) for a in selectors.amenities_of_property(property_id=property_id)]

    return await sync_to_async(run)()


@router.put("/properties/{property_id}/amenities", response=list[AmenityOut])
async def set_property_amenities(
    request: HttpRequest, property_id: UUID, payload: AmenityIdsIn
) -> list[dict[str, Any]]:
    """Set the property's amenities to exactly `amenityIds` (owner or admin)."""

    def run() -> list[dict[str, Any]]:
        caller = caller_of(request)
        prop = selectors.access_property(caller=caller, property_id=property_id)
        chosen = services.property_amenities_set(caller=caller, prop=prop, amenity_ids=payload.amenityIds)
        return [amenity_out(a) for a in chosen]

    return await sync_to_async(run)()


@router.get("/units/{unit_id}/amenities", response=list[AmenityOut])
async def unit_amenities(request: HttpRequest, unit_id: UUID) -> list[dict[str, Any]]:
    """The amenities of a unit you may see."""

    def run() -> list[dict[str, Any]]:
        selectors.access_unit(caller=caller_of(request), unit_id=unit_id)
        return [amenity_out(a) for a in selectors.amenities_of_unit(unit_id=unit_id)]

    return await sync_to_async(run)()


@router.put("/units/{unit_id}/amenities", response=list[AmenityOut])
async def set_unit_amenities(request: HttpRequest, unit_id: UUID, payload: AmenityIdsIn) -> list[dict[str, Any]]:
    """Set the unit's amenities to exactly `amenityIds` (owner, manager or admin)."""

    def run() -> list[dict[str, Any]]:
        caller = caller_of(request)
        unit = selectors.access_unit(caller=caller, unit_id=unit_id)
        chosen = services.unit_amenities_set(caller=caller, unit=unit, amenity_ids=payload.amenityIds)
        return [amenity_out(a) for a in chosen]

    return await sync_to_async(run)()


# Property managers ---------------------------------------------------------------------


def _staff_property(caller: Principal, property_id: UUID) -> Property:
    prop = selectors.access_property(caller=caller, property_id=property_id)
    if selectors.is_tenant(caller):
        raise services.forbidden(TENANTS_READ_ONLY)
    return prop


@router.get("/properties/{property_id}/managers", response=list[ManagerOut])
async def list_managers(request: HttpRequest, property_id: UUID) -> list[dict[str, Any]]:
    """Who manages a property (its owner, managers and admins may look)."""

    def run() -> list[dict[str, Any]]:
        _staff_property(caller_of(request), property_id)
        return [manager_out(link) for link in selectors.property_manager_list(property_id=property_id)]

    return await sync_to_async(run)()


@router.post("/properties/{property_id}/managers", response={201: ManagerOut})
async def add_manager(request: HttpRequest, property_id: UUID, payload: ManagerIn) -> Status[dict[str, Any]]:
    """Make a property manager or landlord a manager of the property (owner or admin); 409 if already."""

    def run() -> dict[str, Any]:
        caller = caller_of(request)
        prop = _staff_property(caller, property_id)
        link = services.property_manager_add(caller=caller, prop=prop, user_id=payload.userId)
        return manager_out(link)

    return Status(201, await sync_to_async(run)())


@router.delete("/properties/{property_id}/managers/{user_id}", response={204: None})
async def remove_manager(request: HttpRequest, property_id: UUID, user_id: UUID) -> Status[None]:
    """Stop a user managing the property (owner or admin)."""

    def run() -> None:
        caller = caller_of(request)
        prop = _staff_property(caller, property_id)
        services.property_manager_remove(caller=caller, prop=prop, user_id=user_id)

    await sync_to_async(run)()
    return Status(204, None)
