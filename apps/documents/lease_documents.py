"""A lease with its documents, and file uploads that write both of the lease's document stores,
through the integration layer's `get_entity_with_documents` and `save_entity_with_documents`.

A lease's documents live in two places the seed keeps apart: the `lease_documents` table
(PostgreSQL: type, URL, signed) and MongoDB `documents` (the file's metadata and text, with
`referenceId` = the lease). An upload writes the file, the row and the MongoDB document as
one save (apps/common/integration/entities.py): all three, or none of them, even when the
process dies in between (the intent it recorded is finished or undone by recovery).
"""

from datetime import datetime
from typing import Any
from uuid import UUID

from asgiref.sync import sync_to_async
from bson import ObjectId
from django.conf import settings
from django.core.files.uploadedfile import UploadedFile

from apps.accounts.services import Principal
from apps.common.integration import get_entity_with_documents, save_entity_with_documents
from apps.common.visibility import not_found
from apps.documents import files
from apps.documents.services import DOWNLOAD_PATH, TOO_LARGE, document_out
from apps.documents.stored import now, stored_bool, to_bson_time
from apps.leasing import selectors as leasing_selectors
from apps.leasing.models import LeaseDocument
from apps.leasing.schemas import lease_document_out, lease_out
from realtime import errors
from realtime.errors import ProtocolError

LEASE = "lease"


def _visible_lease(caller: Principal, lease_id: UUID, *, write: bool) -> Any:
    if write:
        leasing_selectors.require_staff(caller)  # the rule of POST /leases/{id}/documents
    return leasing_selectors.access_lease(caller=caller, lease_id=str(lease_id))


def _lease_rows(lease: Any) -> list[dict[str, Any]]:
    return [lease_document_out(row) for row in leasing_selectors.lease_document_list(lease=lease)]


async def lease_with_documents(*, caller: Principal, lease_id: UUID, include_archived: bool = False) -> dict[str, Any]:
    """The lease (404 unless the caller may see it), its `lease_documents` rows (newest first) and its
    MongoDB documents (oldest first; archived ones only when asked), read by `get_entity_with_documents`."""
    lease = await sync_to_async(_visible_lease)(caller, lease_id, write=False)
    found = await get_entity_with_documents(LEASE, lease.pk)
    if found is None:  # deleted since the access check
        raise not_found()
    documents = [
        document_out(doc) for doc in found["documents"] if include_archived or not stored_bool(doc.get("isArchived"))
    ]
    return {
        "lease": lease_out(lease),
        "leaseDocuments": await sync_to_async(_lease_rows)(lease),
        "documents": documents,
    }


async def lease_document_upload(
    *,
    caller: Principal,
    lease_id: UUID,
    upload: UploadedFile,
    document_type: str,
    is_signed: bool,
    signed_at: datetime | None,
    tags: list[str],
    pages: int | None,
    expiration_date: datetime | None,
) -> dict[str, Any]:
    """Store the file, a `lease_documents` row (URL: its download path) and its MongoDB document, as one save.

    403 for a tenant, 404 for a lease the caller may not see, 413 over MAX_UPLOAD_BYTES,
    FileRejected for a type not allowed; `unavailable` when a store fails (nothing is kept).
    Returns `{"leaseDocument", "document"}`.
    """
    lease = await sync_to_async(_visible_lease)(caller, lease_id, write=True)
    limit = settings.MAX_UPLOAD_BYTES
    if upload.size is None or upload.size > limit:
        raise ProtocolError(errors.TOO_LARGE, TOO_LARGE.format(limit=limit), limit=limit)
    name = files.display_name(upload.name)
    sniffed = await sync_to_async(files.sniff)(upload, name)
    upload.seek(0)
    doc_id = ObjectId()
    storage_name = f"documents/{LEASE}/{doc_id}{files.STORED_EXTENSION[sniffed.kind]}"
    url = DOWNLOAD_PATH.format(id=doc_id)
    signed_at = signed_at or (now() if is_signed else None)
    document = {
        "_id": doc_id,
        "documentType": LEASE,
        "fileName": name,
        "fileSize": int(upload.size),
        "mimeType": sniffed.mime_type,
        "url": url,
        "uploadedBy": caller.user_id,
        "uploadedAt": now(),
        "metadata": {
            "pages": pages,
            "signatureStatus": "signed" if is_signed else None,
            "expirationDate": to_bson_time(expiration_date),
            "tags": tags,
        },
        "textContent": sniffed.text,
        "isArchived": False,
        "archivedAt": None,
        "storageName": storage_name,
    }
    row = {
        "lease_id": lease.pk,
        "document_type": document_type,
        "document_url": url,
        "uploaded_by_id": caller.user_id,
        "is_signed": is_signed,
        "signed_at": signed_at,
    }
    saved = await save_entity_with_documents(
        "lease_document", row, [document], reference_id=str(lease.pk), files=[(storage_name, upload)]
    )
    stored_row = await LeaseDocument.objects.aget(pk=saved["entity"]["id"])
    return {
        "leaseDocument": lease_document_out(stored_row),
        "document": document_out(saved["documents"][0], with_text=True),
    }
