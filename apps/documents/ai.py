"""AI training data and models in MongoDB (`ai_training_data`, `ai_models`), the seed's fields.

Admin-only (the endpoints check). Reads go through `training_data_out` / `model_out`, which
turn the stand-in's `$set` quirks (true read back as 1, dates as strings) into real types.
"""

from typing import Any

from bson import ObjectId
from pymongo import DESCENDING, ReturnDocument
from pymongo.asynchronous.collection import AsyncCollection

from apps.accounts.services import Principal
from apps.common.visibility import not_found
from apps.documents.services import mongo_errors
from apps.documents.stored import IS_TRUE, NOT_TRUE, now, stored_bool, stored_time, to_bson_time
from realtime import errors
from realtime.connections import current_settings, get_mongo
from realtime.documents import AI_MODELS, AI_TRAINING_DATA
from realtime.errors import ProtocolError

VERSION_TAKEN = "This model already has a version {version!r}."


def _collection(name: str) -> "AsyncCollection[dict[str, Any]]":
    return get_mongo()[current_settings().mongo_database][name]


def _flag(value: bool | None) -> dict[str, Any] | None:
    if value is None:
        return None
    return IS_TRUE if value else NOT_TRUE


async def _page(
    name: str, query: dict[str, Any], sort: list[tuple[str, int]], limit: int, offset: int, serialize: Any
) -> dict[str, Any]:
    with mongo_errors():
        count = await _collection(name).count_documents(query)
        rows = await _collection(name).find(query).sort(sort).skip(offset).limit(limit).to_list(length=limit)
    following = offset + len(rows)
    return {
        "items": [serialize(row) for row in rows],
        "count": count,
        "limit": limit,
        "offset": offset,
        "nextOffset": following if following < count else None,
    }


# Training data ------------------------------------------------------------------------------


def training_data_out(doc: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": str(doc["_id"]),
        "dataType": doc.get("dataType"),
        "features": list(doc.get("features") or []),
        "labels": list(doc.get("labels") or []),
        "source": doc.get("source"),
        "timestamp": stored_time(doc.get("timestamp")),
        "isValidated": stored_bool(doc.get("isValidated")),
        "validatedBy": doc.get("validatedBy"),
        "metadata": dict(doc.get("metadata") or {}),
        "createdAt": stored_time(doc.get("createdAt")),
        "updatedAt": stored_time(doc.get("updatedAt")),
    }


async def training_data_create(*, data: dict[str, Any]) -> dict[str, Any]:
    """Store one training example, not yet validated."""
    at = now()
    doc = {
        "_id": ObjectId(),
        "dataType": data["dataType"],
        "features": data["features"],
        "labels": data["labels"],
        "source": data["source"],
        "timestamp": to_bson_time(data.get("timestamp")) or at,
        "isValidated": False,
        "validatedBy": None,
        "metadata": data.get("metadata") or {},
        "createdAt": at,
        "updatedAt": at,
    }
    with mongo_errors():
        await _collection(AI_TRAINING_DATA).insert_one(doc)
    return doc


async def training_data_list(
    *, data_type: str | None, is_validated: bool | None, limit: int, offset: int
) -> dict[str, Any]:
    """A page of training data, newest `timestamp` first."""
    clauses = [
        clause
        for clause in (
            {"dataType": data_type} if data_type else None,
            {"isValidated": _flag(is_validated)} if is_validated is not None else None,
        )
        if clause
    ]
    query = {"$and": clauses} if len(clauses) > 1 else (clauses[0] if clauses else {})
    return await _page(
        AI_TRAINING_DATA, query, [("timestamp", DESCENDING), ("_id", DESCENDING)], limit, offset, training_data_out
    )


async def training_data_validate(*, caller: Principal, data_id: ObjectId) -> dict[str, Any]:
    """Mark the example validated by the caller (validating again records the new validator and time)."""
    with mongo_errors():
        doc = await _collection(AI_TRAINING_DATA).find_one_and_update(
            {"_id": data_id},
            {"$set": {"isValidated": True, "validatedBy": caller.user_id, "updatedAt": now()}},
            return_document=ReturnDocument.AFTER,
        )
    if doc is None:
        raise not_found()
    return doc


# Models ------------------------------------------------------------------------------------


def model_out(doc: dict[str, Any]) -> dict[str, Any]:
    performance = doc.get("performance") or {}
    return {
        "id": str(doc["_id"]),
        "modelName": doc.get("modelName"),
        "modelType": doc.get("modelType"),
        "version": doc.get("version"),
        "parameters": dict(doc.get("parameters") or {}),
        "performance": {key: performance.get(key) for key in ("accuracy", "precision", "recall", "f1Score")},
        "trainedAt": stored_time(doc.get("trainedAt")),
        "deployedAt": stored_time(doc.get("deployedAt")),
        "isActive": stored_bool(doc.get("isActive")),
        "createdBy": doc.get("createdBy"),
        "modelUrl": doc.get("modelUrl"),
        "metadata": dict(doc.get("metadata") or {}),
    }


async def _deactivate_others(model_name: str, keep: ObjectId) -> None:
    await _collection(AI_MODELS).update_many(
        {"$and": [{"modelName": model_name}, {"_id": {"$ne": keep}}, {"isActive": IS_TRUE}]},
        {"$set": {"isActive": False}},
    )


async def model_create(*, caller: Principal, data: dict[str, Any]) -> dict[str, Any]:
    """Register a model version; conflict when (modelName, version) exists. Active: the other versions stop."""
    collection = _collection(AI_MODELS)
    doc = {
        "_id": ObjectId(),
        "modelName": data["modelName"],
        "modelType": data["modelType"],
        "version": data["version"],
        "parameters": data.get("parameters") or {},
        "performance": data.get("performance") or {},
        "trainedAt": to_bson_time(data.get("trainedAt")),
        "deployedAt": to_bson_time(data.get("deployedAt")),
        "isActive": bool(data.get("isActive")),
        "createdBy": caller.user_id,
        "modelUrl": data.get("modelUrl"),
        "metadata": data.get("metadata") or {},
    }
    with mongo_errors():
        # Checked, not enforced by an index (the seed has none on modelName): two concurrent
        # creates of one version could both pass. Admin-only and rare; say so rather than hide it.
        if await collection.find_one({"modelName": doc["modelName"], "version": doc["version"]}, {"_id": 1}):
            raise ProtocolError(errors.CONFLICT, VERSION_TAKEN.format(version=doc["version"]))
        if doc["isActive"]:
            await _deactivate_others(doc["modelName"], doc["_id"])
            doc["deployedAt"] = doc["deployedAt"] or now()
        await collection.insert_one(doc)
    return doc


async def model_list(
    *, model_name: str | None, model_type: str | None, is_active: bool | None, limit: int, offset: int
) -> dict[str, Any]:
    """A page of model versions, newest first."""
    clauses = [
        clause
        for clause in (
            {"modelName": model_name} if model_name else None,
            {"modelType": model_type} if model_type else None,
            {"isActive": _flag(is_active)} if is_active is not None else None,
        )
        if clause
    ]
    query = {"$and": clauses} if len(clauses) > 1 else (clauses[0] if clauses else {})
    return await _page(AI_MODELS, query, [("_id", DESCENDING)], limit, offset, model_out)


async def model_activate(*, model_id: ObjectId) -> dict[str, Any]:
    """Make this version the active one of its modelName: the others are deactivated first.

    Not atomic across documents (a standalone mongod has no multi-document transactions): two
    concurrent activations of one model could leave both active; the later call fixes it.
    """
    collection = _collection(AI_MODELS)
    with mongo_errors():
        current = await collection.find_one({"_id": model_id})
        if current is None:
            raise not_found()
        await _deactivate_others(current["modelName"], model_id)
        update: dict[str, Any] = {"isActive": True}
        if current.get("deployedAt") is None:
            update["deployedAt"] = now()
        doc = await collection.find_one_and_update(
            {"_id": model_id}, {"$set": update}, return_document=ReturnDocument.AFTER
        )
    if doc is None:
        raise not_found()
    return doc
