"""`maintenance:counts:{propertyId}`: dropped by the services after the commit of any change of a request.

The hash is read through by `selectors.amaintenance_counts_get`. Every service that writes a
request (`apps/maintenance/services.py`: create, update, cancel, a work order moving it to
`assigned`, the admin's save and delete) calls `request_counts_changed` in its transaction;
a request moved to another property (the admin) drops both. Requests deleted in a cascade
(a unit or property deleted through its service) and requests saved by the integration
layer drop theirs through the recorders registered below. A bare ORM save, `update()` or
shell write drops nothing (issue 10: no model signals): the hash then lags for at most its
TTL (5 minutes).
"""

from collections.abc import Iterable
from typing import Any

from apps.common.cache import drop_on_commit
from apps.events.outbox import register_deleted, register_saved
from apps.maintenance.events import request_property_id
from apps.maintenance.models import MaintenanceRequest
from apps.properties.models import Unit
from realtime import keys


def counts_drop(*, property_ids: Iterable[Any]) -> None:
    """Drop the properties' counts once the current transaction commits (at once outside one)."""
    found = sorted({str(property_id) for property_id in property_ids if property_id is not None})
    drop_on_commit(keys=[keys.maintenance_counts(property_id) for property_id in found])


def request_counts_changed(request: MaintenanceRequest, *, previous_property_id: Any = None) -> None:
    """The request was written in the current transaction: drop its property's counts (and the
    property it left) after the commit."""
    counts_drop(property_ids={request_property_id(request), previous_property_id})


def _unit_property_id(unit_id: Any) -> Any:
    if unit_id is None:
        return None
    return Unit.objects.filter(pk=unit_id).values_list("property_id", flat=True).first()


register_deleted(MaintenanceRequest, lambda request: counts_drop(property_ids={_unit_property_id(request.unit_id)}))
register_saved(
    MaintenanceRequest,
    lambda request, created, previous: request_counts_changed(
        request, previous_property_id=_unit_property_id(previous["unit_id"]) if "unit_id" in previous else None
    ),
)
