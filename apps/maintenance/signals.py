"""Drop `maintenance:counts:{propertyId}` after any committed change of a request of that property.

Receivers on the model (not calls in services), so admin edits, shell scripts and cascades
count too. A request that moves to another unit drops both properties' counts.
"""

from typing import Any

from django.db.models.signals import post_delete, post_init, post_save, pre_delete
from django.dispatch import receiver

from apps.common.cache import drop_on_commit
from apps.maintenance.models import MaintenanceRequest
from apps.properties.models import Unit
from realtime import keys


def _property_ids(unit_ids: set[Any], using: str, known: dict[Any, Any]) -> set[Any]:
    """The properties of the units; units whose property is `known` (loaded already) cost no query."""
    found = {known[unit_id] for unit_id in unit_ids if unit_id in known}
    missing = {unit_id for unit_id in unit_ids if unit_id not in known and unit_id is not None}
    if missing:
        found |= set(Unit.objects.using(using).filter(pk__in=missing).values_list("property_id", flat=True))
    return {property_id for property_id in found if property_id is not None}


def _drop(property_ids: set[Any], using: str) -> None:
    drop_on_commit(keys=[keys.maintenance_counts(str(property_id)) for property_id in sorted(map(str, property_ids))])


@receiver(post_init, sender=MaintenanceRequest)
def remember_loaded_unit(sender: type, instance: MaintenanceRequest, **kwargs: Any) -> None:
    instance._counts_loaded_unit_id = instance.unit_id  # type: ignore[attr-defined]


@receiver(post_save, sender=MaintenanceRequest)
def request_saved(sender: type, instance: MaintenanceRequest, raw: bool, using: str, **kwargs: Any) -> None:
    known: dict[Any, Any] = {}
    if instance.unit_id is not None and MaintenanceRequest.unit.is_cached(instance):
        unit = instance.unit
        if unit is not None and unit.pk == instance.unit_id:
            known[unit.pk] = unit.property_id
    units = {instance.unit_id, getattr(instance, "_counts_loaded_unit_id", None)}
    _drop(_property_ids(units, using, known), using)
    instance._counts_loaded_unit_id = instance.unit_id  # type: ignore[attr-defined]


@receiver(pre_delete, sender=MaintenanceRequest)
def remember_deleted_request_property(sender: type, instance: MaintenanceRequest, using: str, **kwargs: Any) -> None:
    # Before the cascade deletes the unit (a unit's deletion deletes its requests).
    instance._counts_property_ids = _property_ids({instance.unit_id}, using, {})  # type: ignore[attr-defined]


@receiver(post_delete, sender=MaintenanceRequest)
def request_deleted(sender: type, instance: MaintenanceRequest, using: str, **kwargs: Any) -> None:
    _drop(getattr(instance, "_counts_property_ids", set()), using)
