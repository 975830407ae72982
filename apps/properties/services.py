"""Writes of properties, units, amenities and property managers.

Each write runs in one transaction and records its change events (`events.py`) in the
outbox in that transaction, after the row is written; they are published after the
commit. Each also drops the caches it changes (`caches.py`, after the commit) and, where
who may see what changed, re-checks those users' access (`apps.common.access`). Callers check visibility first (`selectors.access_*`); the
services check what the caller may change. The `*_admin_*` services are the admin site's
write path (the site has checked that the caller is an admin).
"""

from typing import Any

from django.db import transaction

from apps.accounts.models import User
from apps.common import policy
from apps.common.access import access_changed, register_access_deleted
from apps.common.validation import invalid
from apps.common.visibility import Caller
from apps.events.outbox import delete_recording_events, register_saved
from apps.properties import caches, events, selectors
from apps.properties.models import (
    Amenity,
    Property,
    PropertyAmenity,
    PropertyManager,
    Unit,
    UnitAmenity,
)
from realtime.errors import CONFLICT, FORBIDDEN, NOT_FOUND, ProtocolError

CANNOT_CREATE_PROPERTY = "Only landlords and admins create properties."
CANNOT_CHANGE_PROPERTY = "Only the property's owner or an admin may change it."
CANNOT_CHANGE_OWNER = "Only an admin may change a property's owner."
CANNOT_CHANGE_UNIT = "Only the property's owner, its managers or an admin may change its units."
UNIT_NUMBER_TAKEN = "This unit number is already taken in the property."
UNIT_HAS_HISTORY = "The unit has leases or maintenance requests; mark it unavailable instead of deleting it."
AMENITY_EXISTS = "An amenity with this name and category already exists."
ADMIN_ONLY = "Only an admin may do this."
ALREADY_MANAGER = "This user already manages the property."
NOT_A_MANAGER = "This user does not manage the property."
OWNER_NOT_ELIGIBLE = "The owner must be an active landlord or admin."
MANAGER_NOT_ELIGIBLE = "A manager must be an active property manager or landlord other than the owner."
UNKNOWN_AMENITIES = "Unknown amenity ids: {ids}."
UNKNOWN_USER = "No such user."

OWNER_TYPES = policy.OWNER_TYPES
MANAGER_TYPES = policy.MANAGER_TYPES

# API field name -> model field name.
PROPERTY_FIELDS = {
    "propertyName": "property_name",
    "streetAddress": "street_address",
    "city": "city",
    "state": "state",
    "zipCode": "zip_code",
    "propertyType": "property_type",
    "yearBuilt": "year_built",
    "squareFootage": "square_footage",
    "hasHudApproval": "has_hud_approval",
    "hudApprovalDate": "hud_approval_date",
    "hudProgramType": "hud_program_type",
    "isActive": "is_active",
}
UNIT_FIELDS = {
    "unitNumber": "unit_number",
    "bedrooms": "bedrooms",
    "bathrooms": "bathrooms",
    "squareFootage": "square_footage",
    "monthlyRent": "monthly_rent",
    "isOccupied": "is_occupied",
    "isAvailable": "is_available",
    "unitFeatures": "unit_features",
}


def forbidden(message: str) -> ProtocolError:
    return ProtocolError(FORBIDDEN, message)


def _model_fields(data: dict[str, Any], names: dict[str, str]) -> dict[str, Any]:
    return {names[key]: value for key, value in data.items() if key in names}


def _eligible_owner(owner_id: Any) -> User:
    owner = User.objects.filter(pk=owner_id, is_active=True, user_type__in=OWNER_TYPES).first()
    if owner is None:
        raise invalid("ownerId", OWNER_NOT_ELIGIBLE)
    return owner


def property_create(*, caller: Caller, data: dict[str, Any]) -> Property:
    """A new property owned by the calling landlord, or by `ownerId` (or the caller) for an admin.

    `data` uses the API's field names. Tenants and property managers get `forbidden`.
    """
    policy.require(caller, "properties.create", CANNOT_CREATE_PROPERTY)
    owner_id = data.get("ownerId")
    if owner_id is not None and not policy.sees_all(caller, "properties.create"):
        raise forbidden(CANNOT_CHANGE_OWNER)
    with transaction.atomic():
        owner = _eligible_owner(owner_id if owner_id is not None else caller.user_id)
        prop = Property(owner=owner, **_model_fields(data, PROPERTY_FIELDS))
        prop.save()
        _saved(prop, created=True, previous_owner_id=None, previous_place=None)
    return prop


def property_update(*, caller: Caller, prop: Property, data: dict[str, Any]) -> Property:
    """Change the given fields (API names); `ownerId` by admins only."""
    if not selectors.property_caller_may_write(caller=caller, prop=prop):
        raise forbidden(CANNOT_CHANGE_PROPERTY)
    changes = _model_fields(data, PROPERTY_FIELDS)
    with transaction.atomic():
        if "ownerId" in data:
            if not policy.sees_all(caller, "properties.manage"):
                raise forbidden(CANNOT_CHANGE_OWNER)
            changes["owner"] = _eligible_owner(data["ownerId"])
        locked = Property.objects.select_for_update().get(pk=prop.pk)
        previous_owner_id, previous_place = locked.owner_id, caches.place_of(locked)
        for name, value in changes.items():
            setattr(locked, name, value)
        if changes:
            locked.save()
            _saved(locked, created=False, previous_owner_id=previous_owner_id, previous_place=previous_place)
    return locked


def _saved(prop: Property, *, created: bool, previous_owner_id: Any, previous_place: caches.Place | None) -> None:
    """What every saved property records: its event, its cache drops, and an access re-check when
    its owner changed (`previous_place`: None when created)."""
    events.record_property_saved(prop)
    caches.property_caches_changed(prop, previous_place=previous_place)
    if created or previous_owner_id != prop.owner_id:
        access_changed(user_ids={previous_owner_id, prop.owner_id})


def _saved_by_a_generic_writer(prop: Property, created: bool, previous: dict[str, Any]) -> None:
    # The integration layer's saveEntityWithDocuments (`previous`: the columns it changed); its
    # cache drops are registered by caches.py.
    events.record_property_saved(prop)
    previous_owner_id = previous.get("owner_id", prop.owner_id)
    if created or previous_owner_id != prop.owner_id:
        access_changed(user_ids={previous_owner_id, prop.owner_id})


register_saved(Property, _saved_by_a_generic_writer)


def property_admin_save(*, prop: Property) -> Property:
    """Save the property as the admin's form built it (created or changed); records `property.updated`."""
    with transaction.atomic():
        created = prop._state.adding
        previous_owner_id, previous_place = None, None
        if not created:
            row = (
                Property.objects.select_for_update()
                .filter(pk=prop.pk)
                .order_by()
                .values_list("owner_id", "state", "city", "is_active")
                .first()
            )
            if row is not None:
                previous_owner_id, previous_place = row[0], (row[1], row[2], row[3])
        prop.save()
        _saved(prop, created=created, previous_owner_id=previous_owner_id, previous_place=previous_place)
    return prop


def property_admin_delete(*, prop: Property) -> None:
    """Delete the property and what cascades with it (units, their leases and requests), announcing each;
    its owner, managers and tenants lose its topics after the commit."""
    with transaction.atomic():
        delete_recording_events(prop)
        access_changed(user_ids={prop.owner_id})


def property_deactivate(*, caller: Caller, prop: Property) -> Property:
    """Set `is_active` false (the row and its history stay)."""
    return property_update(caller=caller, prop=prop, data={"isActive": False})


def property_hud_approval_set(*, property_id: Any, approved: bool) -> Property | None:
    """Set `has_hud_approval` as the HUD domain derives it (an approved `property_hud_programs` row), recording
    `property.updated` when it changes. None for a property that no longer exists. The HUD services call it
    inside their transaction; no caller: the HUD service checked who may change the programs."""
    with transaction.atomic():
        locked = Property.objects.select_for_update().filter(pk=property_id).first()
        if locked is not None and locked.has_hud_approval != approved:
            locked.has_hud_approval = approved
            locked.save(update_fields=["has_hud_approval", "updated_at"])
            place = caches.place_of(locked)
            _saved(locked, created=False, previous_owner_id=locked.owner_id, previous_place=place)
    return locked


def property_amenities_set(*, caller: Caller, prop: Property, amenity_ids: list[int]) -> list[Amenity]:
    """Make the property's amenities exactly `amenity_ids`."""
    if not selectors.property_caller_may_write(caller=caller, prop=prop):
        raise forbidden(CANNOT_CHANGE_PROPERTY)
    wanted = _known_amenity_ids(amenity_ids)
    with transaction.atomic():
        links = PropertyAmenity.objects.filter(property=prop)
        links.exclude(amenity_id__in=wanted).delete()
        existing = set(links.values_list("amenity_id", flat=True))
        PropertyAmenity.objects.bulk_create(
            [PropertyAmenity(property=prop, amenity_id=pk) for pk in sorted(wanted - existing)]
        )
    return selectors.amenities_of_property(property_id=prop.pk)


def _known_amenity_ids(amenity_ids: list[int]) -> set[int]:
    wanted = set(amenity_ids)
    known = set(Amenity.objects.filter(pk__in=wanted).values_list("pk", flat=True))
    unknown = sorted(wanted - known)
    if unknown:
        raise invalid("amenityIds", UNKNOWN_AMENITIES.format(ids=", ".join(map(str, unknown))))
    return wanted


def _unit_number_free(*, property_id: Any, unit_number: str, except_unit: Any = None) -> None:
    taken = Unit.objects.filter(property_id=property_id, unit_number=unit_number)
    if except_unit is not None:
        taken = taken.exclude(pk=except_unit)
    if taken.exists():
        raise ProtocolError(CONFLICT, UNIT_NUMBER_TAKEN, field="unitNumber")


def unit_create(*, caller: Caller, prop: Property, data: dict[str, Any]) -> Unit:
    """A new unit in `prop`; `conflict` when its number is taken there."""
    if not selectors.unit_caller_may_write(caller=caller, property_id=prop.pk):
        raise forbidden(CANNOT_CHANGE_UNIT)
    with transaction.atomic():
        _unit_number_free(property_id=prop.pk, unit_number=data["unitNumber"])
        unit = Unit(property=prop, **_model_fields(data, UNIT_FIELDS))
        unit.save()
        events.record_unit_saved(unit)
        caches.unit_caches_changed(unit.property_id)
    return unit


def unit_update(*, caller: Caller, unit: Unit, data: dict[str, Any]) -> Unit:
    """Change the given fields (API names); `conflict` when the new number is taken."""
    if not selectors.unit_caller_may_write(caller=caller, property_id=unit.property_id):
        raise forbidden(CANNOT_CHANGE_UNIT)
    changes = _model_fields(data, UNIT_FIELDS)
    with transaction.atomic():
        locked = Unit.objects.select_for_update().get(pk=unit.pk)
        if "unit_number" in changes and changes["unit_number"] != locked.unit_number:
            _unit_number_free(property_id=locked.property_id, unit_number=changes["unit_number"], except_unit=unit.pk)
        for name, value in changes.items():
            setattr(locked, name, value)
        if changes:
            locked.save()
            events.record_unit_saved(locked)
            caches.unit_caches_changed(locked.property_id)
    return locked


def unit_admin_save(*, unit: Unit) -> Unit:
    """Save the unit as the admin's form built it; a unit moved to another property is announced on both."""
    with transaction.atomic():
        previous_property_id = None
        if not unit._state.adding:
            previous_property_id = (
                Unit.objects.select_for_update()
                .filter(pk=unit.pk)
                .order_by()
                .values_list("property_id", flat=True)
                .first()
            )
        unit.save()
        events.record_unit_saved(unit, previous_property_id=previous_property_id)
        caches.unit_caches_changed(unit.property_id, previous_property_id)
    return unit


def unit_occupancy_set(*, unit_id: Any, occupied: bool) -> Unit | None:
    """Make the unit's `is_occupied` say `occupied` (whether it has an active lease), with
    `is_available` following: a unit that becomes occupied becomes unavailable, one that becomes
    free becomes available, and an occupied unit is never available; a free unit that staff
    marked unavailable stays so. Writes (under a row lock on the unit), records `unit.updated`
    and drops `unit:availability:{propertyId}` after the commit only when something changed.
    None when the unit does not exist.

    Precondition: the leasing services decide `occupied` (apps/leasing/services.py
    `unit_occupancy_follow`), holding this unit's row lock since they counted its leases.
    """
    with transaction.atomic():
        # order_by(): Unit's default ordering joins its (nullable) property, which FOR UPDATE refuses.
        unit = Unit.objects.select_for_update().filter(pk=unit_id).order_by().first()
        if unit is None:
            return None
        changes: dict[str, bool] = {}
        if unit.is_occupied != occupied:
            changes = {"is_occupied": occupied, "is_available": not occupied}
        elif occupied and unit.is_available:
            changes = {"is_available": False}
        if changes:
            for name, value in changes.items():
                setattr(unit, name, value)
            unit.save(update_fields=[*changes, "updated_at"])
            events.record_unit_saved(unit)
            caches.unit_caches_changed(unit.property_id)
    return unit


def unit_admin_delete(*, unit: Unit) -> None:
    """Delete the unit and what cascades with it (leases, maintenance requests), announcing each."""
    with transaction.atomic():
        delete_recording_events(unit)


def unit_delete(*, caller: Caller, unit: Unit) -> None:
    """Delete a unit without history; `conflict` if leases or maintenance requests reference it."""
    if not selectors.unit_caller_may_write(caller=caller, property_id=unit.property_id):
        raise forbidden(CANNOT_CHANGE_UNIT)
    with transaction.atomic():
        locked = Unit.objects.select_for_update().get(pk=unit.pk)
        if locked.leases.exists() or locked.maintenance_requests.exists():
            raise ProtocolError(CONFLICT, UNIT_HAS_HISTORY)
        events.record_unit_deleted(locked)
        caches.unit_caches_changed(locked.property_id)
        locked.delete()


def unit_amenities_set(*, caller: Caller, unit: Unit, amenity_ids: list[int]) -> list[Amenity]:
    """Make the unit's amenities exactly `amenity_ids`."""
    if not selectors.unit_caller_may_write(caller=caller, property_id=unit.property_id):
        raise forbidden(CANNOT_CHANGE_UNIT)
    wanted = _known_amenity_ids(amenity_ids)
    with transaction.atomic():
        links = UnitAmenity.objects.filter(unit=unit)
        links.exclude(amenity_id__in=wanted).delete()
        existing = set(links.values_list("amenity_id", flat=True))
        UnitAmenity.objects.bulk_create([UnitAmenity(unit=unit, amenity_id=pk) for pk in sorted(wanted - existing)])
    return selectors.amenities_of_unit(unit_id=unit.pk)


def _admin_only(caller: Caller) -> None:
    policy.require(caller, "amenities.manage", ADMIN_ONLY)


def _amenity_unique(*, name: str, category: str, except_id: int | None = None) -> None:
    clash = Amenity.objects.filter(name__iexact=name, category__iexact=category)
    if except_id is not None:
        clash = clash.exclude(pk=except_id)
    if clash.exists():
        raise ProtocolError(CONFLICT, AMENITY_EXISTS)


def amenity_create(*, caller: Caller, name: str, category: str) -> Amenity:
    """A new amenity (admins only); `conflict` for a duplicate name in the category."""
    _admin_only(caller)
    with transaction.atomic():
        _amenity_unique(name=name, category=category)
        amenity = Amenity(name=name, category=category)
        amenity.save()
        caches.amenities_changed()
    return amenity


def amenity_update(*, caller: Caller, amenity_id: int, data: dict[str, Any]) -> Amenity:
    """Rename or re-categorize an amenity (admins only)."""
    _admin_only(caller)
    with transaction.atomic():
        amenity = Amenity.objects.select_for_update().filter(pk=amenity_id).first()
        if amenity is None:
            raise ProtocolError(NOT_FOUND, "Not found.")
        amenity.name = data.get("name", amenity.name)
        amenity.category = data.get("category", amenity.category)
        _amenity_unique(name=amenity.name, category=amenity.category, except_id=amenity.pk)
        amenity.save()
        caches.amenities_changed()
    return amenity


def amenity_delete(*, caller: Caller, amenity_id: int) -> None:
    """Delete an amenity and its property/unit links (admins only)."""
    _admin_only(caller)
    with transaction.atomic():
        amenity = Amenity.objects.filter(pk=amenity_id).first()
        if amenity is None:
            raise ProtocolError(NOT_FOUND, "Not found.")
        amenity.delete()
        caches.amenities_changed()


def amenity_admin_save(*, amenity: Amenity) -> Amenity:
    """Save the amenity as the admin's form built it; drops `lookup:amenities` after the commit."""
    with transaction.atomic():
        amenity.save()
        caches.amenities_changed()
    return amenity


def amenity_admin_delete(*, amenity: Amenity) -> None:
    """Delete the amenity (its property and unit links cascade); drops `lookup:amenities` after the commit."""
    with transaction.atomic():
        amenity.delete()
        caches.amenities_changed()


def property_manager_add(*, caller: Caller, prop: Property, user_id: Any) -> PropertyManager:
    """Make `user_id` a manager of `prop` (owner or admin); `conflict` if already one."""
    if not selectors.property_caller_may_write(caller=caller, prop=prop):
        raise forbidden(CANNOT_CHANGE_PROPERTY)
    with transaction.atomic():
        user = User.objects.filter(pk=user_id, is_active=True, user_type__in=MANAGER_TYPES).first()
        if user is None or user.pk == prop.owner_id:
            raise invalid("userId", MANAGER_NOT_ELIGIBLE)
        if PropertyManager.objects.filter(property=prop, user=user).exists():
            raise ProtocolError(CONFLICT, ALREADY_MANAGER)
        link = PropertyManager(property=prop, user=user)
        link.save()
        access_changed(user_ids={user.pk})
    return link


def property_manager_remove(*, caller: Caller, prop: Property, user_id: Any) -> None:
    """Stop `user_id` managing `prop` (owner or admin); `not_found` if they did not."""
    if not selectors.property_caller_may_write(caller=caller, prop=prop):
        raise forbidden(CANNOT_CHANGE_PROPERTY)
    with transaction.atomic():
        link = PropertyManager.objects.filter(property=prop, user_id=user_id).first()
        if link is None:
            raise ProtocolError(NOT_FOUND, NOT_A_MANAGER)
        link.delete()
        access_changed(user_ids={link.user_id})


def property_manager_admin_save(*, link: PropertyManager) -> PropertyManager:
    """Save a manager row as the admin built it (inline or its own page); the old and new user are re-checked."""
    with transaction.atomic():
        previous_user_id = None
        if not link._state.adding:
            previous_user_id = PropertyManager.objects.filter(pk=link.pk).values_list("user_id", flat=True).first()
        link.save()
        access_changed(user_ids={previous_user_id, link.user_id})
    return link


def property_manager_admin_delete(*, link: PropertyManager) -> None:
    """Remove a manager row from the admin; the user loses the property's topics after the commit."""
    with transaction.atomic():
        link.delete()
        access_changed(user_ids={link.user_id})


# A property deleted with its manager rows (`property_admin_delete`): the managers lose it.
register_access_deleted(PropertyManager, lambda link: {link.user_id})
