"""The integration layer's operations across PostgreSQL and MongoDB: an entity's row with its documents.

Saving across two databases (and, for uploads, the file storage) without a distributed
transaction, so that a failure or a crash at any point leaves the row and its documents
either both written or both as they were:

1. PostgreSQL, one transaction: the row (created or updated) and an intent
   (`integration_intents`) saying how to undo it and which documents and files follow;
2. the files, then the MongoDB documents (ids chosen up front, so they can be found again);
3. the intent is deleted and the row's change event recorded in the outbox, in one
   transaction: the save is done (an undone save announces nothing).

If PostgreSQL fails, nothing else is touched. If a later write fails, the save undoes
itself at once (documents and files removed, the row deleted or its previous values put
back unless someone changed it since) and raises `unavailable` with a report. If the
process dies between the writes, or the undo itself cannot reach PostgreSQL, the intent
stays: `arecover_intents` (every housekeeping round, so also after a restart) finishes
the saves whose documents and files all landed and undoes the others.
"""

import logging
from collections.abc import Mapping, Sequence
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from typing import Any
from uuid import UUID

from asgiref.sync import sync_to_async
from bson import ObjectId
from django.apps import apps
from django.core.exceptions import FieldDoesNotExist, ValidationError
from django.core.files import File
from django.core.files.storage import default_storage
from django.db import DatabaseError, IntegrityError, models, transaction
from django.db.models import Q
from pymongo.errors import PyMongoError

from apps.common.integration.mongo import query_documents, seed_collection
from apps.common.models import IntegrationIntent, IntentState
from apps.common.validation import invalid_fields
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
    "lease_document": "leasing.LeaseDocument",
}
DOCUMENT_TYPES = frozenset({"lease", "application", "maintenance", "hud_form"})

UNKNOWN_ENTITY = "unknown entity type {entity_type!r}"
UNKNOWN_FIELDS = "unknown fields for {entity_type}: {fields}"
POSTGRES_FAILED = "The {entity_type} was not saved: {reason}"
SAVE_COMPENSATED = "The documents could not be stored; the {entity_type} change was undone. Retry shortly."
SAVE_RECOVERED = "The save took too long and was undone by recovery; nothing was kept. Retry."
FILE_RENAMED = "the storage stored {wanted!r} as {stored!r}"

# A save still pending after this long is taken for dead (far above MongoDB's and an
# upload's time-outs); undone intents are kept this long so a straggler learns of the undo.
INTENT_GRACE = timedelta(minutes=10)
UNDONE_KEPT = timedelta(days=1)


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
    pk_attname = model._meta.pk.attname
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
        # Server-side callers name columns, so the fields are the model's, not a request's.
        reasons = {field: "; ".join(messages) for field, messages in error.message_dict.items()}
        raise invalid_fields(
            reasons, POSTGRES_FAILED.format(entity_type=entity_type, reason="invalid"), location=""
        ) from error
    except IntegrityError as error:
        reason = "it conflicts with existing data"
        raise ProtocolError(errors.CONFLICT, POSTGRES_FAILED.format(entity_type=entity_type, reason=reason)) from error
    except DatabaseError as error:
        raise ProtocolError(
            errors.UNAVAILABLE, POSTGRES_FAILED.format(entity_type=entity_type, reason="PostgreSQL failed")
        ) from error
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


def _jsonable(values: dict[str, Any]) -> dict[str, Any]:
    """Column values as JSON (times in full ISO 8601, decimals and UUIDs as strings) for the intent."""
    out: dict[str, Any] = {}
    for name, value in values.items():
        if isinstance(value, datetime | date | time):
            out[name] = value.isoformat()
        elif isinstance(value, Decimal | UUID):
            out[name] = str(value)
        else:
            out[name] = value
    return out


def _python(model: type[models.Model], values: dict[str, Any]) -> dict[str, Any]:
    """`_jsonable` read back: each value through its column's `to_python`."""
    fields = {field.attname: field for field in model._meta.concrete_fields}
    return {name: fields[name].to_python(value) for name, value in values.items()}


def _begin_save(
    entity_type: str, data: Mapping[str, Any], document_ids: list[str], files: list[str]
) -> tuple[Any, bool, str]:
    """Step 1: the row and its intent in one PostgreSQL transaction; (pk, created, intent id)."""
    with transaction.atomic():
        pk, created, previous, written = _save_row(entity_type, data)
        intent = IntegrationIntent.objects.create(
            entity_type=entity_type,
            entity_id=str(pk),
            created=created,
            previous=_jsonable(previous),
            written=_jsonable(written),
            document_ids=document_ids,
            files=files,
        )
    return pk, created, str(intent.pk)


def _finish(intent_id: str) -> str:
    """Step 3: the save is done. Returns "done", or "undone" when recovery undid it meanwhile.

    The row's change event (`property.updated`, ...) is recorded in the outbox in the same
    transaction that retires the intent, so a save that is undone never announces its row, and
    a save finished by recovery after a crash is announced then: exactly once either way.
    """
    with transaction.atomic():
        intent = IntegrationIntent.objects.select_for_update().filter(pk=intent_id, state=IntentState.PENDING).first()
        if intent is not None:
            _announce(intent)
            intent.delete()
            return "done"
    undone = IntegrationIntent.objects.filter(pk=intent_id, state__in=(IntentState.UNDOING, IntentState.UNDONE))
    return "undone" if undone.exists() else "done"  # gone: recovery found everything written and finished it


def _announce(intent: IntegrationIntent) -> None:
    """Record the change event of the intent's row (if its entity has one) as it stands now."""
    model = _model(intent.entity_type)
    obj = model._default_manager.select_for_update().filter(pk=intent.entity_id).order_by("pk").first()
    if obj is not None:
        record_saved(obj, created=intent.created, previous=_python(model, dict(intent.previous)))


def _intent_undo(intent: IntegrationIntent, state: str = IntentState.UNDONE) -> str:
    """Undo the intent's row and move the intent to `state`, in one transaction; what was done (never raises)."""
    model = _model(intent.entity_type)
    pk = model._meta.pk.to_python(intent.entity_id)
    try:
        with transaction.atomic():
            outcome = _undo_row(
                intent.entity_type, pk, intent.created, _python(model, intent.previous), _python(model, intent.written)
            )
            if outcome.startswith("undo failed"):
                return outcome
            IntegrationIntent.objects.filter(pk=intent.pk).update(state=state)
    except Exception as error:  # PostgreSQL gone: the intent stays pending and recovery retries
        logger.error("integration: could not undo the %s %s save", intent.entity_type, intent.entity_id, exc_info=True)
        return f"undo failed: {type(error).__name__}: {error}"
    return outcome


def _undo_intent_by_id(intent_id: str, state: str) -> str:
    try:
        intent = IntegrationIntent.objects.filter(pk=intent_id).first()
    except DatabaseError as error:
        return f"undo failed: {type(error).__name__}: {error}"
    if intent is None:  # only _finish deletes it, and this save has not called it
        return "nothing to undo: the intent is gone"
    return _intent_undo(intent, state)


def _store_files(files: Sequence[tuple[str, File]]) -> None:
    for wanted, content in files:
        stored = default_storage.save(wanted, content)
        if stored != wanted:
            default_storage.delete(stored)
            raise OSError(FILE_RENAMED.format(wanted=wanted, stored=stored))


def _delete_files(names: Sequence[str]) -> tuple[bool, str]:
    """Delete the stored files (absent ones count as deleted); (all gone, what was done)."""
    failed = 0
    for name in names:
        try:
            default_storage.delete(name)
        except OSError:
            failed += 1
            logger.error("integration: could not delete stored file %s", name, exc_info=True)
    return not failed, f"{len(names) - failed} files removed" + (f", {failed} could not be" if failed else "")


async def save_entity_with_documents(
    entity_type: str,
    entity_data: Mapping[str, Any],
    documents: Sequence[Mapping[str, Any]] = (),
    *,
    reference_id: str | None = None,
    files: Sequence[tuple[str, File]] = (),
) -> dict[str, Any]:
    """Create (no or unknown primary key) or update the row, then store `files` (storage name, content)
    and insert the documents into MongoDB, as the module says: all of it or none of it.

    Returns `{"entity": row, "documents": [...], "created": bool}`. Each document gets
    `referenceId` = `reference_id`, by default the row's id (a lease document's documents
    hang off its lease), `documentType` = entity_type for the four document types, and
    `uploadedAt`, `isArchived` when missing. PostgreSQL fails: raised, nothing else
    touched. A later write fails: undone, then `unavailable` with `report` (a cancellation
    is undone and re-raised).
    """
    docs: list[dict[str, Any]] = []
    for document in documents:
        doc = dict(document)
        doc["_id"] = doc.get("_id") or ObjectId()
        if entity_type in DOCUMENT_TYPES:
            doc.setdefault("documentType", entity_type)
        doc.setdefault("uploadedAt", _now())
        doc.setdefault("isArchived", False)
        docs.append(doc)
    names = [name for name, _ in files]
    pk, created, intent_id = await sync_to_async(_begin_save)(
        entity_type, entity_data, [str(doc["_id"]) for doc in docs], names
    )
    for doc in docs:
        doc["referenceId"] = reference_id if reference_id is not None else str(pk)
    try:
        if files:
            await sync_to_async(_store_files)(files)
        if docs:
            await seed_collection(mongo_collections.DOCUMENTS).insert_many(docs, ordered=True)
    except BaseException as error:
        report = await _compensate(entity_type, pk, created, intent_id, docs, names, error)
        if isinstance(error, PyMongoError | OSError):
            raise ProtocolError(
                errors.UNAVAILABLE, SAVE_COMPENSATED.format(entity_type=entity_type), report=report
            ) from error
        raise
    if await sync_to_async(_finish)(intent_id) == "undone":
        # Recovery took this save for dead and undid the row; what this save wrote after that goes too.
        await _remove_documents([doc["_id"] for doc in docs])  # a failure here: recovery does it again
        await sync_to_async(_delete_files)(names)
        raise ProtocolError(errors.UNAVAILABLE, SAVE_RECOVERED)
    row = await sync_to_async(_load_row)(entity_type, pk)
    return {"entity": row, "documents": docs, "created": created}


async def _remove_documents(ids: list[Any]) -> tuple[bool, str]:
    """Delete the documents of `ids` that landed; (none can be left, what was done)."""
    if not ids:
        return True, "no documents to remove"
    try:
        removed = (await seed_collection(mongo_collections.DOCUMENTS).delete_many({"_id": {"$in": ids}})).deleted_count
    except PyMongoError as error:
        return False, f"could not check for partly inserted documents: {type(error).__name__}"
    return True, f"{removed} partly inserted documents removed"


async def _compensate(
    entity_type: str,
    pk: Any,
    created: bool,
    intent_id: str,
    docs: list[dict[str, Any]],
    files: list[str],
    error: BaseException,
) -> dict[str, Any]:
    """Undo a save whose second half failed. The intent stays `pending` (recovery retries) if the row could
    not be undone, and becomes `undoing` (recovery removes the rest) if documents or files could not be."""
    documents_gone, mongo_cleanup = await _remove_documents([doc["_id"] for doc in docs])
    files_gone, files_cleanup = await sync_to_async(_delete_files)(files)
    state = IntentState.UNDONE if documents_gone and files_gone else IntentState.UNDOING
    postgres = await sync_to_async(_undo_intent_by_id)(intent_id, state)
    report = {
        "entityType": entity_type,
        "entityId": str(pk),
        "postgres": "created" if created else "updated",
        "mongo": f"failed: {type(error).__name__}",
        "mongoCleanup": mongo_cleanup,
        "filesCleanup": files_cleanup,
        "compensation": postgres,
    }
    logger.warning("integration: save of %s %s compensated: %s", entity_type, pk, report)
    return report


def _stale_intents(cutoff: datetime, limit: int) -> list[IntegrationIntent]:
    IntegrationIntent.objects.filter(state=IntentState.UNDONE, created_at__lt=cutoff - UNDONE_KEPT).delete()
    left = Q(state=IntentState.PENDING, created_at__lt=cutoff) | Q(state=IntentState.UNDOING)
    return list(IntegrationIntent.objects.filter(left).order_by("created_at")[:limit])


def _mark(intent_id: Any, state: str) -> None:
    IntegrationIntent.objects.filter(pk=intent_id).update(state=state)


async def _landed(ids: list[ObjectId]) -> int:
    """How many of the documents are in MongoDB. `find`, not `count_documents`: the stand-in cannot
    compare ObjectIds in a count (apps/messaging/selectors.py)."""
    if not ids:
        return 0
    found = await seed_collection(mongo_collections.DOCUMENTS).find({"_id": {"$in": ids}}, {"_id": 1}).to_list()
    return len(found)


async def arecover_intents(
    *, older_than: timedelta = INTENT_GRACE, now: datetime | None = None, limit: int = 100
) -> dict[str, int]:
    """Finish or undo the saves left `pending` for longer than `older_than`, and finish the undoing of
    `undoing` ones; returns how many were finished, undone and cleaned up.

    Finished: every document of the intent is in MongoDB and every file in the storage (the
    process died after writing them). Otherwise undone: the documents and files that did
    land are removed, the row deleted or put back. Idempotent, and safe on several processes
    at once (each step can run twice). MongoDB down: nothing is decided, the next round retries.
    """
    cutoff = (now or datetime.now(UTC)) - older_than
    counts = {"finished": 0, "undone": 0, "cleaned": 0}
    for intent in await sync_to_async(_stale_intents)(cutoff, limit):
        ids = [ObjectId(value) for value in intent.document_ids]
        try:
            landed = await _landed(ids)
        except PyMongoError:
            logger.warning("integration: recovery postponed, MongoDB unavailable")
            break
        if intent.state == IntentState.UNDOING:  # the row is back already: remove what is left
            if (await _remove_documents(ids))[0] and (await sync_to_async(_delete_files)(list(intent.files)))[0]:
                await sync_to_async(_mark)(intent.pk, IntentState.UNDONE)
                counts["cleaned"] += 1
            continue
        files_there = all([await sync_to_async(default_storage.exists)(name) for name in intent.files])
        if landed == len(ids) and files_there:
            await sync_to_async(_finish)(str(intent.pk))
            counts["finished"] += 1
            logger.info("integration: recovery finished the save of %s %s", intent.entity_type, intent.entity_id)
            continue
        documents_gone, _ = await _remove_documents(ids)
        files_gone, _ = await sync_to_async(_delete_files)(list(intent.files))
        state = IntentState.UNDONE if documents_gone and files_gone else IntentState.UNDOING
        outcome = await sync_to_async(_intent_undo)(intent, state)
        counts["undone"] += 1
        logger.warning(
            "integration: recovery undid the save of %s %s: %s", intent.entity_type, intent.entity_id, outcome
        )
    return counts


def _now() -> datetime:
    """Now in UTC at the millisecond precision BSON dates hold."""
    moment = datetime.now(UTC)
    return moment.replace(microsecond=moment.microsecond // 1000 * 1000)
