"""Who may see and manage the entity a document hangs off (the same rules as the entity's own endpoints).

- lease: staff (owner or manager) of its property, or its tenants; admins all;
- maintenance: the request's tenant or staff of its property; admins all;
- application / hud_form: the applicant tenant, or staff of a property where the applicant
  holds a lease; admins all.
Seeing the entity allows listing, downloading and uploading its documents. Archiving needs
more: an admin, staff of the entity, or the document's own uploader. A holder of
`documents.view` over everything (apps/common/policy.py: admins) sees every document.
"""

from typing import Any
from uuid import UUID

from django.db.models import QuerySet

from apps.accounts.services import Principal
from apps.common import policy
from apps.hud import selectors as hud
from apps.leasing import selectors as leasing
from apps.maintenance import selectors as maintenance
from realtime.errors import ProtocolError

LEASE, APPLICATION, MAINTENANCE, HUD_FORM = "lease", "application", "maintenance", "hud_form"
DOCUMENT_TYPES = (LEASE, APPLICATION, MAINTENANCE, HUD_FORM)


def sees_every_document(caller: Principal) -> bool:
    """`documents.view` over every entity (admins), whatever the entity's own rules."""
    return policy.sees_all(caller, "documents.view")


def visible_ids(*, caller: Principal, document_type: str) -> QuerySet[Any]:
    """Subquery of the primary keys of the entities of `document_type` the caller may see."""
    if document_type == LEASE:
        return leasing.lease_list(caller=caller).order_by().values_list("pk", flat=True)
    if document_type == MAINTENANCE:
        return maintenance.maintenance_request_visible(caller=caller).order_by().values_list("pk", flat=True)
    if document_type == APPLICATION:
        return hud.hud_application_visible(caller=caller).order_by().values_list("pk", flat=True)
    if document_type == HUD_FORM:
        return (
            hud.hud_application_visible(caller=caller)
            .filter(forms__isnull=False)
            .order_by()
            .values_list("forms__pk", flat=True)
        )
    raise ValueError(f"unknown document type {document_type!r}")


def reference_is_visible(*, caller: Principal, document_type: str, reference_id: UUID | str) -> bool:
    """The caller may see the entity (and so its documents)."""
    if document_type == HUD_FORM:
        return hud.hud_application_visible(caller=caller).filter(forms__pk=reference_id).exists()
    return visible_ids(caller=caller, document_type=document_type).filter(pk=reference_id).exists()


def reference_is_managed(*, caller: Principal, document_type: str, reference_id: UUID | str) -> bool:
    """The caller is an admin or staff responsible for the entity (may archive any of its documents)."""
    if sees_every_document(caller):
        return True
    try:
        if document_type == LEASE:
            leasing.access_lease(caller=caller, lease_id=str(reference_id), permission="leases.manage")
            return True
        if document_type == MAINTENANCE:
            request = maintenance.access_maintenance_request(caller=caller, request_id=UUID(str(reference_id)))
            return maintenance.maintenance_request_is_managed_by(caller=caller, request=request)
        if document_type == APPLICATION:
            application = hud.access_hud_application(caller=caller, application_id=UUID(str(reference_id)))
            return hud.hud_application_is_managed_by(caller=caller, application=application)
        if document_type == HUD_FORM:
            form = hud.access_hud_form(caller=caller, form_id=UUID(str(reference_id)))
            assert form.application is not None  # visible forms have an application
            return hud.hud_application_is_managed_by(caller=caller, application=form.application)
    except ProtocolError:
        return False
    raise ValueError(f"unknown document type {document_type!r}")


def visible_types_of(*, caller: Principal, reference_id: UUID) -> list[str]:
    """The document types under which the caller may see an entity with this id (usually one or none)."""
    return [
        kind
        for kind in DOCUMENT_TYPES
        if reference_is_visible(caller=caller, document_type=kind, reference_id=reference_id)
    ]


def visibility_filter(*, caller: Principal, document_types: tuple[str, ...] = DOCUMENT_TYPES) -> dict[str, Any] | None:
    """A MongoDB filter of the documents whose entity the caller may see; None means all (admins).

    Lists the caller's visible entity ids per type: fine for the hundreds to few thousands a
    landlord has; past that, keep a per-user reference set instead.
    """
    if sees_every_document(caller):
        return None
    clauses: list[dict[str, Any]] = []
    for kind in document_types:
        ids = [str(pk) for pk in visible_ids(caller=caller, document_type=kind)]
        if ids:
            clauses.append({"documentType": kind, "referenceId": {"$in": ids}})
    if not clauses:
        return {"_id": {"$in": []}}
    return {"$or": clauses}
