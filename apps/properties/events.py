"""Typed change events of properties and units, recorded in the outbox by the services.

`property:changes:{propertyId}` carries `property.updated` (the property) and
`unit.updated` (any of its units); `unit:changes:{unitId}` carries `unit.updated` too,
for the unit's tenants. The `record_*` functions are called by the service that makes the
change, inside its transaction and after the row is written (so a rolled-back change
records nothing, and for one row the outbox order is the commit order). A unit moved to
another property is announced on both; the service passes the old property.
"""

from typing import Any

from apps.events.outbox import ChangeEvent, deleted_data, register_deleted, register_saved, wire_fields
from apps.properties.models import Property, Unit
from realtime import topics


class PropertyUpdated(ChangeEvent):
    name = "property.updated"


class UnitUpdated(ChangeEvent):
    name = "unit.updated"


def property_data(prop: Property) -> dict[str, Any]:
    return wire_fields(
        {
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
            "createdAt": prop.created_at,
            "updatedAt": prop.updated_at,
            "isActive": prop.is_active,
            "hasHudApproval": prop.has_hud_approval,
            "hudApprovalDate": prop.hud_approval_date,
            "hudProgramType": prop.hud_program_type,
        }
    )


def unit_data(unit: Unit) -> dict[str, Any]:
    return wire_fields(
        {
            "id": unit.pk,
            "propertyId": unit.property_id,
            "unitNumber": unit.unit_number,
            "bedrooms": unit.bedrooms,
            "bathrooms": unit.bathrooms,
            "squareFootage": unit.square_footage,
            "monthlyRent": unit.monthly_rent,
            "isOccupied": unit.is_occupied,
            "isAvailable": unit.is_available,
            "createdAt": unit.created_at,
            "updatedAt": unit.updated_at,
            "unitFeatures": unit.unit_features,
        }
    )


def _unit_topics(unit: Unit, *property_ids: Any) -> tuple[str, ...]:
    changes = [topics.property_changes(str(p)) for p in property_ids if p is not None]
    return tuple(dict.fromkeys([*changes, topics.unit_changes(str(unit.pk))]))


def record_property_saved(prop: Property) -> None:
    """`property.updated` with the property as saved (created or changed)."""
    PropertyUpdated((topics.property_changes(str(prop.pk)),), property_data(prop)).send_on_commit()


def record_property_deleted(property_id: Any) -> None:
    """`property.updated` marking the property deleted."""
    PropertyUpdated((topics.property_changes(str(property_id)),), deleted_data(property_id)).send_on_commit()


def record_unit_saved(unit: Unit, *, previous_property_id: Any = None) -> None:
    """`unit.updated` with the unit as saved, on its property, its own topic and the property it left."""
    UnitUpdated(_unit_topics(unit, unit.property_id, previous_property_id), unit_data(unit)).send_on_commit()


def record_unit_deleted(unit: Unit) -> None:
    """`unit.updated` marking the unit deleted, on its property and its own topic."""
    UnitUpdated(_unit_topics(unit, unit.property_id), deleted_data(unit.pk)).send_on_commit()


register_deleted(Property, lambda prop: record_property_deleted(prop.pk))
register_deleted(Unit, record_unit_deleted)
register_saved(
    Unit, lambda unit, created, previous: record_unit_saved(unit, previous_property_id=previous.get("property_id"))
)
