"""Documents: files in Django's storage, their metadata in MongoDB `documents` (the seed's fields).

An upload is checked (entity visible, size, type by extension and content), stored through
the storage API under a generated name, then described in MongoDB. If the MongoDB insert
fails (or the request is cancelled) after the file was stored, the file is deleted again,
and so is a half-acknowledged MongoDB insert: nothing is left orphaned.

Fields beyond the seed's (our extension): `storageName`, the file's name in the storage.
`url` is the permission-checked download path; MEDIA_URL is never served.
"""

import logging
import re
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from typing import Any
from uuid import UUID

from asgiref.sync import sync_to_async
from bson import ObjectId
from django.conf import settings
from django.core.files.storage import default_storage
from django.core.files.uploadedfile import UploadedFile
from pymongo import DESCENDING, ReturnDocument
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.errors import OperationFailure, PyMongoError

from apps.accounts.services import Principal
from apps.common import policy
from apps.common.visibility import not_found
from apps.documents import files, selectors
from apps.documents.stored import NOT_TRUE, now, stored_bool, stored_time, to_bson_time
from realtime import errors
from realtime.connections import current_settings, get_mongo
from realtime.documents import DOCUMENTS
from realtime.errors import ProtocolError

logger = logging.getLogger(__name__)

TOO_LARGE = "The file is larger than the {limit:,}-byte upload limit."
CANNOT_ARCHIVE = "Only an admin, staff of the entity or the uploader may archive this document."
STORE_DOWN = "Documents are unavailable (MongoDB did not answer); nothing was stored. Retry shortly."
FILE_MISSING = "The document's file is missing from storage."
DOWNLOAD_PATH = "/api/v1/documents/{id}/download"
MAX_SEARCH_WORDS = 20


def collection() -> "AsyncCollection[dict[str, Any]]":
    return get_mongo()[current_settings().mongo_database][DOCUMENTS]


@contextmanager
def mongo_errors() -> Iterator[None]:
    """Any MongoDB failure answers `unavailable` (503): the client may retry."""
    try:
        yield
    except PyMongoError as error:
        logger.warning("documents: MongoDB failed: %r", error)
        raise ProtocolError(errors.UNAVAILABLE, STORE_DOWN) from error


def document_out(doc: dict[str, Any], *, with_text: bool = False) -> dict[str, Any]:
    """A stored document as the API shows it (real booleans and aware dates on any server)."""
    metadata = doc.get("metadata") or {}
    out = {
        "id": str(doc["_id"]),
        "documentType": doc.get("documentType"),
        "referenceId": doc.get("referenceId"),
        "fileName": doc.get("fileName"),
        "fileSize": int(doc.get("fileSize") or 0),
        "mimeType": doc.get("mimeType"),
        "url": doc.get("url"),
        "uploadedBy": doc.get("uploadedBy"),
        "uploadedAt": stored_time(doc.get("uploadedAt")),
        "metadata": {
            "pages": metadata.get("pages"),
            "signatureStatus": metadata.get("signatureStatus"),
            "expirationDate": stored_time(metadata.get("expirationDate")),
            "tags": list(metadata.get("tags") or []),
        },
        "hasText": bool(doc.get("textContent")),
        "isArchived": stored_bool(doc.get("isArchived")),
        "archivedAt": stored_time(doc.get("archivedAt")),
    }
    if with_text:
        out["textContent"] = doc.get("textContent")
    return out


def _storage_save(name: str, upload: UploadedFile) -> str:
    upload.seek(0)
    return default_storage.save(name, upload)


def _storage_delete(name: str) -> None:
    try:
        default_storage.delete(name)
    except OSError:
        logger.error("documents: could not delete stored file %s after a failed upload", name, exc_info=True)


async def _discard(doc_id: ObjectId, storage_name: str) -> None:
    """Undo a half-done upload: the MongoDB row if the insert did land, then the file."""
    try:
        await collection().delete_one({"_id": doc_id})
    except PyMongoError:
        logger.warning("documents: could not check for a half-inserted document %s", doc_id)
    await sync_to_async(_storage_delete)(storage_name)


async def document_upload(
    *,
    caller: Principal,
    upload: UploadedFile,
    document_type: str,
    reference_id: UUID,
    tags: list[str],
    pages: int | None,
    expiration_date: datetime | None,
    signature_status: str | None,
) -> dict[str, Any]:
    """Store the file and describe it in MongoDB; returns the stored document.

    not_found: the entity is not visible to the caller; too_large (413): over MAX_UPLOAD_BYTES;
    FileRejected: type not allowed or content contradicting the extension; unavailable:
    MongoDB down (the stored file is deleted again).
    """
    visible = await sync_to_async(selectors.reference_is_visible)(
        caller=caller, document_type=document_type, reference_id=reference_id
    )
    if not visible:
        raise not_found()
    limit = settings.MAX_UPLOAD_BYTES
    if upload.size is None or upload.size > limit:
        raise ProtocolError(errors.TOO_LARGE, TOO_LARGE.format(limit=limit), limit=limit)
    name = files.display_name(upload.name)
    sniffed = await sync_to_async(files.sniff)(upload, name)

    doc_id = ObjectId()
    wanted = f"documents/{document_type}/{doc_id}{files.STORED_EXTENSION[sniffed.kind]}"
    storage_name = await sync_to_async(_storage_save)(wanted, upload)
    document = {
        "_id": doc_id,
        "documentType": document_type,
        "referenceId": str(reference_id),
        "fileName": name,
        "fileSize": int(upload.size),
        "mimeType": sniffed.mime_type,
        "url": DOWNLOAD_PATH.format(id=doc_id),
        "uploadedBy": caller.user_id,
        "uploadedAt": now(),
        "metadata": {
            "pages": pages,
            "signatureStatus": signature_status,
            "expirationDate": to_bson_time(expiration_date),
            "tags": tags,
        },
        "textContent": sniffed.text,
        "isArchived": False,
        "archivedAt": None,
        "storageName": storage_name,
    }
    try:
        await collection().insert_one(document)
    except PyMongoError as error:
        await _discard(doc_id, storage_name)
        logger.warning("documents: insert failed, stored file %s deleted again: %r", storage_name, error)
        raise ProtocolError(errors.UNAVAILABLE, STORE_DOWN) from error
    except BaseException:
        # Cancelled (client gone) or anything unexpected: leave nothing behind, then re-raise.
        await _discard(doc_id, storage_name)
        raise
    return document


async def _find_visible(caller: Principal, document_id: ObjectId) -> dict[str, Any]:
    with mongo_errors():
        doc = await collection().find_one({"_id": document_id})
    if doc is None:
        raise not_found()
    kind, reference = doc.get("documentType"), doc.get("referenceId")
    if kind in selectors.DOCUMENT_TYPES and _is_uuid(reference):
        visible = await sync_to_async(selectors.reference_is_visible)(
            caller=caller, document_type=kind, reference_id=str(reference)
        )
    else:  # written by other tools with another type: admins only
        visible = selectors.sees_every_document(caller)
    if not visible:
        raise not_found()
    return doc


def _is_uuid(value: Any) -> bool:
    try:
        UUID(str(value))
    except ValueError:
        return False
    return True


async def access_document(*, caller: Principal, document_id: ObjectId) -> dict[str, Any]:
    """The stored document when the caller may see its entity; not_found otherwise."""
    return await _find_visible(caller, document_id)


def _scope(caller: Principal, *, reference_id: UUID | None, document_type: str | None) -> dict[str, Any] | None:
    """The filter of documents the caller may list, narrowed to one entity and/or type (sync: ORM);
    403 without `documents.view`."""
    policy.require(caller, "documents.view")
    types = (document_type,) if document_type else selectors.DOCUMENT_TYPES
    if reference_id is not None:
        every = selectors.sees_every_document(caller)
        kinds = [
            kind
            for kind in types
            if every or selectors.reference_is_visible(caller=caller, document_type=kind, reference_id=reference_id)
        ]
        if not every and not kinds:
            raise not_found()
        return {"referenceId": str(reference_id), "documentType": {"$in": list(kinds)}}
    visible = selectors.visibility_filter(caller=caller, document_types=types)
    if document_type:
        return {"$and": [{"documentType": document_type}, visible]} if visible else {"documentType": document_type}
    return visible


def _combine(*clauses: dict[str, Any] | None) -> dict[str, Any]:
    """AND of the clauses, spelled as an explicit `$and`: the stand-in ORs a sibling `$or` (DESIGN.md)."""
    present = [clause for clause in clauses if clause]
    if not present:
        return {}
    return present[0] if len(present) == 1 else {"$and": present}


async def document_list(
    *,
    caller: Principal,
    reference_id: UUID | None,
    document_type: str | None,
    include_archived: bool,
    limit: int,
    offset: int,
) -> dict[str, Any]:
    """A page of visible documents, newest first (archived ones only when asked)."""
    scope = await sync_to_async(_scope)(caller, reference_id=reference_id, document_type=document_type)
    query = _combine(scope, None if include_archived else {"isArchived": NOT_TRUE})
    with mongo_errors():
        count = await collection().count_documents(query)
        cursor = collection().find(query).sort([("uploadedAt", DESCENDING), ("_id", DESCENDING)])
        rows = await cursor.skip(offset).limit(limit).to_list(length=limit)
    return _page([document_out(row) for row in rows], count, limit, offset)


def _page(items: list[dict[str, Any]], count: int, limit: int, offset: int) -> dict[str, Any]:
    following = offset + len(items)
    return {
        "items": items,
        "count": count,
        "limit": limit,
        "offset": offset,
        "nextOffset": following if following < count else None,
    }


def _words(q: str) -> list[str]:
    return re.findall(r"\w+", q)[:MAX_SEARCH_WORDS]


async def document_search(
    *, caller: Principal, q: str, document_type: str | None, include_archived: bool, limit: int, offset: int
) -> dict[str, Any]:
    """Visible documents whose text matches `q`, best match first.

    MongoDB `$text` on the `textContent` text index; a server that refuses `$text` (no text
    index support, as SecantusDB) gets a case-insensitive regex over the words instead,
    newest first, and the answer says `"mode": "regex"`.
    """
    scope = await sync_to_async(_scope)(caller, reference_id=None, document_type=document_type)
    archived = None if include_archived else {"isArchived": NOT_TRUE}
    words = _words(q)
    if not words:
        return {**_page([], 0, limit, offset), "mode": "text"}
    text_query = _combine({"$text": {"$search": " ".join(words)}}, scope, archived)
    with mongo_errors():
        try:
            count = await collection().count_documents(text_query)
            cursor = collection().find(text_query).sort([("score", {"$meta": "textScore"}), ("_id", DESCENDING)])
            rows = await cursor.skip(offset).limit(limit).to_list(length=limit)
            mode = "text"
        except OperationFailure as error:
            logger.warning("documents: $text refused (%s); searching with a regex instead", error.details)
            regex = {"$or": [{"textContent": {"$regex": re.escape(word), "$options": "i"}} for word in words]}
            query = _combine(regex, scope, archived)
            count = await collection().count_documents(query)
            cursor = collection().find(query).sort([("uploadedAt", DESCENDING), ("_id", DESCENDING)])
            rows = await cursor.skip(offset).limit(limit).to_list(length=limit)
            mode = "regex"
    return {**_page([document_out(row) for row in rows], count, limit, offset), "mode": mode}


async def document_archive(*, caller: Principal, document_id: ObjectId) -> dict[str, Any]:
    """Archive a document (idempotent: the first `archivedAt` stays). forbidden unless admin, staff or uploader."""
    doc = await _find_visible(caller, document_id)
    if doc.get("uploadedBy") != caller.user_id:
        managed = await sync_to_async(selectors.reference_is_managed)(
            caller=caller, document_type=doc["documentType"], reference_id=doc["referenceId"]
        )
        if not managed:
            raise ProtocolError(errors.FORBIDDEN, CANNOT_ARCHIVE)
    if stored_bool(doc.get("isArchived")):
        return doc
    with mongo_errors():
        updated = await collection().find_one_and_update(
            {"_id": document_id, "isArchived": NOT_TRUE},
            {"$set": {"isArchived": True, "archivedAt": now()}},
            return_document=ReturnDocument.AFTER,
        )
        if updated is None:  # archived meanwhile by someone else
            updated = await collection().find_one({"_id": document_id})
    if updated is None:
        raise not_found()
    return updated


def open_stored_file(doc: dict[str, Any]) -> Any:
    """The stored file opened for reading (sync: storage API); not_found when it is missing."""
    name = doc.get("storageName")
    if not name or not default_storage.exists(name):
        logger.error("documents: file of document %s is missing (%s)", doc.get("_id"), name)
        raise ProtocolError(errors.NOT_FOUND, FILE_MISSING)
    return default_storage.open(name, "rb")
