"""The integration layer's operations across PostgreSQL and MongoDB: an entity's row with its documents.

Saving across two databases without a distributed transaction: PostgreSQL first, in its own
transaction; then MongoDB. If PostgreSQL fails, MongoDB is never touched. If MongoDB fails
after PostgreSQL committed, the layer compensates (deletes the row it created, or restores
the values it overwrote if nobody changed them since), removes any of the documents that
did land, and raises `unavailable` with a report of what it did.

Change events: the row's event (`property.updated`, ...) is recorded in the outbox only once
the documents are stored too (`_announce`, its own transaction), so a compensated save
publishes nothing for the row it removed or restored. Known gap: a crash between the
MongoDB insert and `_announce` leaves the change unannounced.
"""

import logging
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from asgiref.sync import sync_to_async
from bson import ObjectId
from django.apps import apps
from django.core.exceptions import FieldDoesNotExist, ValidationError
from django.db import DatabaseError, IntegrityError, models, transaction
from pymongo.errors import PyMongoError

from apps.common.integration.mongo import query_documents, seed_collection
from apps.events.outbox import record_saved
from realtime import documents as mongo_collections
from realtime import errors
from realtime.errors import ProtocolError

logger = logging.getLogger(__name__)

# Entity type -> model label. The four document types of `documents.documentType` share these names.
ENTITY_MODELS = {
    "property": "properties.Property",
    "unit": "properties.Unit",
    "tenant": "leasing.Tenant",
    "lease": "leasing.Lease",
    "maintenance": "maintenance.MaintenanceRequest",
    "application": "hud.HudApplication",
    "hud_form": "hud.HudForm",
    "transaction": "finance.Transaction",
}
DOCUMENT_TYPES = frozenset({"lease", "application", "maintenance", "hud_form"})

UNKNOWN_ENTITY = "unknown entity type {entity_type!r}"
UNKNOWN_FIELDS = "unknown fields for {entity_type}: {fields}"
POSTGRES_FAILED = "The {entity_type} was not saved: {reason}"
SAVE_COMPENSATED = "The documents could not be stored; the {entity_type} change was undone. Retry shortly."


def _model(entity_type: str) -> type[models.Model]:
    label = ENTITY_MODELS.get(entity_type)
    if label is None:
        raise ProtocolError(errors.BAD_REQUEST, UNKNOWN_ENTITY.format(entity_type=entity_type))
    return apps.get_model(label)


def row_dict(obj: models.Model) -> dict[str, Any]:
    """Every concrete column of the row by attribute name (`unit_id`, not `unit`)."""
    return {field.attname: getattr(obj, field.attname) for field in obj._meta.concrete_fields}


def _load_row(entity_type: str, entity_id: Any) -> dict[str, Any] | None:
    model = _model(entity_type)
    try:
        obj = model._default_manager.filter(pk=entity_id).first()
    except (ValidationError, ValueError):
        return None
    return None if obj is None else row_dict(obj)


async def get_entity_with_documents(entity_type: str, entity_id: Any) -> dict[str, Any] | None:
    """`{"entity": row, "documents": [...]}`: the row and the documents whose referenceId is its id; None if no row."""
    row = await sync_to_async(_load_row)(entity_type, entity_id)
    if row is None:
        return None
    query: dict[str, Any] = {"referenceId": str(entity_id)}
    if entity_type in DOCUMENT_TYPES:
        query = {"$and": [query, {"documentType": entity_type}]}
    documents = await query_documents(mongo_collections.DOCUMENTS, query, {"sort": [("uploadedAt", 1), ("_id", 1)]})
    return {"entity": row, "documents": documents}


def _field_names(model: type[models.Model], data: Mapping[str, Any], entity_type: str) -> dict[str, str]:
    """data key -> attname; bad_request for keys that are not columns."""
    names: dict[str, str] = {}
    unknown: list[str] = []
    for key in data:
        try:
            field = model._meta.get_field(key)
        except FieldDoesNotExist:
            field = next((f for f in model._meta.concrete_fields if f.attname == key), None)  # type: ignore[assignment]
        if field is None or not getattr(field, "concrete", False):
            unknown.append(key)
        else:
            names[key] = field.attname  # type: ignore[union-attr]
    if unknown:
        raise ProtocolError(errors.BAD_REQUEST, UNKNOWN_FIELDS.format(entity_type=entity_type, fields=sorted(unknown)))
    return names


def _save_row(entity_type: str, data: Mapping[str, Any]) -> tuple[Any, bool, dict[str, Any], dict[str, Any]]:
    """Create or update the row in one transaction; (pk, created, previous values, written values)."""
    model = _model(entity_type)
    names = _field_names(model, data, entity_type)
    pk_attname = model._meta.pk.attname  # type: ignore[union-attr]
    pk = next((data[key] for key, attname in names.items() if attname == pk_attname), None)
    changed = [attname for attname in names.values() if attname != pk_attname]
    try:
        with transaction.atomic():
            obj = model._default_manager.select_for_update().filter(pk=pk).first() if pk is not None else None
            created = obj is None
            previous: dict[str, Any] = {}
            if obj is None:
                obj = model(**{attname: data[key] for key, attname in names.items()})
            else:
                previous = {attname: getattr(obj, attname) for attname in changed}
                for key, attname in names.items():
                    setattr(obj, attname, data[key])
            obj.full_clean(validate_unique=False, validate_constraints=False)
            obj.save()
            obj.refresh_from_db()
    except ValidationError as error:
        fields = [{"field": field, "reason": "; ".join(reasons)} for field, reasons in error.message_dict.items()]
        raise ProtocolError(errors.BAD_REQUEST, POSTGRES_FAILED.format(entity_type=entity_type, reason="invalid"),
                            http_status=422, fields=fields) from error
    except IntegrityError as error:
        reason = "it conflicts with existing data"
        raise ProtocolError(errors.CONFLICT, POSTGRES_FAILED.format(entity_type=entity_type, reason=reason)) from error
    except DatabaseError as error:
        raise ProtocolError(errors.UNAVAILABLE, POSTGRES_FAILED.format(entity_type=entity_type,
                                                                        reason="PostgreSQL failed")) from error
    written = {attname: getattr(obj, attname) for attname in changed}
    return obj.pk, created, previous, written


def _undo_row(entity_type: str, pk: Any, created: bool, previous: dict[str, Any], written: dict[str, Any]) -> str:
    """Compensate a committed save; returns what was done (never raises: the caller reports it)."""
    model = _model(entity_type)
    try:
        with transaction.atomic():
            obj = model._default_manager.select_for_update().filter(pk=pk).first()
            if obj is None:
                return "nothing to undo: the row is gone"
            if created:
                obj.delete()
                return "created row deleted"
            if any(getattr(obj, attname) != value for attname, value in written.items()):
                return "not restored: the row was changed again meanwhile"
            for attname, value in previous.items():
                setattr(obj, attname, value)
            obj.save()
            return "previous values restored"
    except Exception as error:  # reported to the caller and logged loudly: manual repair needed
        logger.error("integration: could not undo the %s %s save", entity_type, pk, exc_info=True)
        return f"undo failed: {type(error).__name__}: {error}"


async def save_entity_with_documents(
    entity_type: str, entity_data: Mapping[str, Any], documents: Sequence[Mapping[str, Any]] = ()
) -> dict[str, Any]:
    """Create (no or unknown primary key) or update the row, then insert its documents into MongoDB.

    Returns `{"entity": row, "documents": [...], "created": bool}`. Each document gets
    `referenceId` = the row's id (and `documentType` = entity_type for the four document
    types, `uploadedAt`, `isArchived` when missing). PostgreSQL fails: raised, MongoDB untouched.
    MongoDB fails: compensated as the module says, then `unavailable` with `report`.
    """
    pk, created, previous, written = await sync_to_async(_save_row)(entity_type, entity_data)
    docs: list[dict[str, Any]] = []
    for document in documents:
        doc = dict(document)
        doc["_id"] = doc.get("_id") or ObjectId()
        doc["referenceId"] = str(pk)
        if entity_type in DOCUMENT_TYPES:
            doc.setdefault("documentType", entity_type)
        doc.setdefault("uploadedAt", _now())
        doc.setdefault("isArchived", False)
        docs.append(doc)
    if docs:
        try:
            await seed_collection(mongo_collections.DOCUMENTS).insert_many(docs, ordered=True)
        except BaseException as error:
            report = await _compensate(entity_type, pk, created, previous, written, docs, error)
            if isinstance(error, PyMongoError):
                raise ProtocolError(errors.UNAVAILABLE, SAVE_COMPENSATED.format(entity_type=entity_type),
                                    report=report) from error
            raise
    await sync_to_async(_announce)(entity_type, pk, created, previous)
    row = await sync_to_async(_load_row)(entity_type, pk)
    return {"entity": row, "documents": docs, "created": created}


def _announce(entity_type: str, pk: Any, created: bool, previous: dict[str, Any]) -> None:
    """Record the saved row's change event (if its entity has one) now that the whole save stands."""
    model = _model(entity_type)
    with transaction.atomic():
        obj = model._default_manager.select_for_update().filter(pk=pk).order_by("pk").first()
        if obj is not None:
            record_saved(obj, created=created, previous=previous)


async def _compensate(entity_type: str, pk: Any, created: bool, previous: dict[str, Any],
                      written: dict[str, Any], docs: list[dict[str, Any]], error: BaseException) -> dict[str, Any]:
    ids = [doc["_id"] for doc in docs]
    try:
        removed = (await seed_collection(mongo_collections.DOCUMENTS).delete_many({"_id": {"$in": ids}})).deleted_count
        mongo_cleanup = f"{removed} partly inserted documents removed"
    except PyMongoError as cleanup_error:
        mongo_cleanup = f"could not check for partly inserted documents: {type(cleanup_error).__name__}"
    postgres = await sync_to_async(_undo_row)(entity_type, pk, created, previous, written)
    report = {
        "entityType": entity_type,
        "entityId": str(pk),
        "postgres": "created" if created else "updated",
        "mongo": f"failed: {type(error).__name__}",
        "mongoCleanup": mongo_cleanup,
        "compensation": postgres,
    }
    logger.warning("integration: save of %s %s compensated: %s", entity_type, pk, report)
    return report


def _now() -> datetime:
    """Now in UTC at the millisecond precision BSON dates hold."""
    moment = datetime.now(UTC)
    return moment.replace(microsecond=moment.microsecond // 1000 * 1000)
