"""Typed change events of properties and units, published on commit through the outbox.

`property:changes:{propertyId}` carries `property.updated` (the property) and
`unit.updated` (any of its units); `unit:changes:{unitId}` carries `unit.updated` too,
for the unit's tenants. The receivers run for every ORM save and delete, inside the
change's transaction. A unit moved to another property is announced on both.
"""

from typing import Any

from django.db.models.signals import post_delete, post_save, pre_save
from django.dispatch import receiver

from apps.events.outbox import ChangeEvent, deleted_data, wire_fields
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


@receiver(post_save, sender=Property)
def property_saved(sender: type, instance: Property, raw: bool, using: str, **kwargs: Any) -> None:
    if not raw:
        PropertyUpdated((topics.property_changes(str(instance.pk)),), property_data(instance)).send_on_commit(
            using=using
        )


@receiver(post_delete, sender=Property)
def property_deleted(sender: type, instance: Property, using: str, **kwargs: Any) -> None:
    PropertyUpdated((topics.property_changes(str(instance.pk)),), deleted_data(instance.pk)).send_on_commit(
        using=using
    )


@receiver(pre_save, sender=Unit)
def remember_unit_property(sender: type, instance: Unit, raw: bool, using: str, **kwargs: Any) -> None:
    previous = None
    if not raw and not instance._state.adding:
        previous = Unit.objects.using(using).filter(pk=instance.pk).values_list("property_id", flat=True).first()
    instance._outbox_previous_property_id = previous  # type: ignore[attr-defined]


@receiver(post_save, sender=Unit)
def unit_saved(sender: type, instance: Unit, raw: bool, using: str, **kwargs: Any) -> None:
    if raw:
        return
    previous = getattr(instance, "_outbox_previous_property_id", None)
    UnitUpdated(_unit_topics(instance, instance.property_id, previous), unit_data(instance)).send_on_commit(
        using=using
    )


@receiver(post_delete, sender=Unit)
def unit_deleted(sender: type, instance: Unit, using: str, **kwargs: Any) -> None:
    UnitUpdated(_unit_topics(instance, instance.property_id), deleted_data(instance.pk)).send_on_commit(using=using)
