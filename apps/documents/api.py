"""HTTP endpoints of documents (mounted at /api/v1 by pms/api.py), with the usage-pattern and AI routers.

Every endpoint authenticates with `token_auth`. A document is visible to whoever may see
its entity (apps/documents/selectors.py); anything else answers 404, never 403.
"""

from typing import Any
from uuid import UUID

from asgiref.sync import sync_to_async
from django.core.handlers.asgi import ASGIRequest
from django.http import FileResponse, HttpRequest, StreamingHttpResponse
from django.utils.http import content_disposition_header
from ninja import File, Form, Path, Query, Router, Status, UploadedFile

from apps.accounts.services import Principal
from apps.common.http import token_auth
from apps.common.pagination import PageParams
from apps.common.validation import invalid
from apps.documents import files, lease_documents, services
from apps.documents.ai_api import router as ai_router
from apps.documents.schemas import (
    DocumentDetailOut,
    DocumentFilters,
    DocumentOut,
    DocumentPage,
    DocumentSearchPage,
    DocumentSearchParams,
    DocumentUploadForm,
    LeaseDocumentUploadForm,
    LeaseDocumentUploadOut,
    LeaseWithDocumentsOut,
    LeaseWithDocumentsParams,
)
from apps.documents.stored import OBJECT_ID_PATTERN, object_id
from apps.documents.usage_api import router as usage_router

router = Router(tags=["documents"], auth=token_auth)

DOCUMENT_ID = Path(..., pattern=OBJECT_ID_PATTERN, description="The document's id (24 hexadecimal characters).")
DOWNLOAD_CHUNK = 64 * 1024


def caller_of(request: HttpRequest) -> Principal:
    return request.auth  # type: ignore[attr-defined]


@router.post(
    "/documents",
    response={201: DocumentDetailOut},
    summary="Upload a document",
    openapi_extra={"responses": {413: {"description": "The file is over the upload limit (`too_large`)."}}},
)
async def upload_document(
    request: HttpRequest, form: Form[DocumentUploadForm], file: File[UploadedFile]
) -> Status[dict[str, Any]]:
    """Upload a file (pdf, png, jpeg, txt, csv, docx; at most MAX_UPLOAD_BYTES) to an entity you may see.

    The type is checked by extension and by content; text files become searchable.
    """
    try:
        doc = await services.document_upload(
            caller=caller_of(request),
            upload=file,
            document_type=form.documentType,
            reference_id=form.referenceId,
            tags=form.tags,
            pages=form.pages,
            expiration_date=form.expirationDate,
            signature_status=form.signatureStatus,
        )
    except files.FileRejected as error:
        raise invalid("file", str(error), location="") from error
    return Status(201, services.document_out(doc, with_text=True))


@router.get("/leases/{lease_id}/with-documents", response=LeaseWithDocumentsOut)
async def lease_with_documents(
    request: HttpRequest, lease_id: UUID, params: Query[LeaseWithDocumentsParams]
) -> dict[str, Any]:
    """A lease you may see with its `lease_documents` rows and its MongoDB documents, in one call."""
    return await lease_documents.lease_with_documents(
        caller=caller_of(request), lease_id=lease_id, include_archived=params.includeArchived
    )


@router.post(
    "/leases/{lease_id}/document-uploads",
    response={201: LeaseDocumentUploadOut},
    summary="Upload a lease document",
    openapi_extra={"responses": {413: {"description": "The file is over the upload limit (`too_large`)."}}},
)
async def upload_lease_document(
    request: HttpRequest, lease_id: UUID, form: Form[LeaseDocumentUploadForm], file: File[UploadedFile]
) -> Status[dict[str, Any]]:
    """Upload a file to one of your leases (landlords, managers, admins): stores the file, a
    `lease_documents` row whose URL is its download path, and its MongoDB document, all or none."""
    try:
        saved = await lease_documents.lease_document_upload(
            caller=caller_of(request),
            lease_id=lease_id,
            upload=file,
            document_type=form.documentType,
            is_signed=form.isSigned,
            signed_at=form.signedAt,
            tags=form.tags,
            pages=form.pages,
            expiration_date=form.expirationDate,
        )
    except files.FileRejected as error:
        raise invalid("file", str(error), location="") from error
    return Status(201, saved)


@router.get("/documents", response=DocumentPage)
async def list_documents(
    request: HttpRequest, filters: Query[DocumentFilters], page: Query[PageParams]
) -> dict[str, Any]:
    """Documents of the entities you may see, newest first; filter by entity, type, archived."""
    return await services.document_list(
        caller=caller_of(request),
        reference_id=filters.referenceId,
        document_type=filters.documentType,
        include_archived=filters.includeArchived,
        limit=page.limit,
        offset=page.offset,
    )


# Declared before /documents/{document_id} so it is matched first.
@router.get("/documents/search", response=DocumentSearchPage)
async def search_documents(
    request: HttpRequest, params: Query[DocumentSearchParams], page: Query[PageParams]
) -> dict[str, Any]:
    """Documents you may see whose extracted text matches the words of `q` (MongoDB `$text`)."""
    return await services.document_search(
        caller=caller_of(request),
        q=params.q,
        document_type=params.documentType,
        include_archived=params.includeArchived,
        limit=page.limit,
        offset=page.offset,
    )


@router.get("/documents/{document_id}", response=DocumentDetailOut)
async def get_document(request: HttpRequest, document_id: str = DOCUMENT_ID) -> dict[str, Any]:
    """One document you may see, with its extracted text."""
    doc = await services.access_document(caller=caller_of(request), document_id=object_id(document_id))
    return services.document_out(doc, with_text=True)


@router.post("/documents/{document_id}/archive", response=DocumentOut)
async def archive_document(request: HttpRequest, document_id: str = DOCUMENT_ID) -> dict[str, Any]:
    """Archive a document (admin, staff of its entity, or its uploader); archiving twice changes nothing."""
    doc = await services.document_archive(caller=caller_of(request), document_id=object_id(document_id))
    return services.document_out(doc)


async def _aiter_file(handle: Any) -> Any:
    try:
        while chunk := await sync_to_async(handle.read)(DOWNLOAD_CHUNK):
            yield chunk
    finally:
        await sync_to_async(handle.close)()


@router.get(
    "/documents/{document_id}/download",
    openapi_extra={
        "responses": {200: {"description": "The file's bytes.", "content": {"application/octet-stream": {}}}}
    },
)
async def download_document(request: HttpRequest, document_id: str = DOCUMENT_ID) -> StreamingHttpResponse:
    """The file itself, streamed, as an attachment (only to whoever may see the document)."""
    doc = await services.access_document(caller=caller_of(request), document_id=object_id(document_id))
    handle = await sync_to_async(services.open_stored_file)(doc)
    name = doc.get("fileName") or "download"
    content_type = doc.get("mimeType") or "application/octet-stream"
    response: StreamingHttpResponse
    if isinstance(request, ASGIRequest):
        # Under ASGI an async iterator streams without a thread per chunk (and without
        # Django's warning about consuming a sync iterator asynchronously).
        response = StreamingHttpResponse(_aiter_file(handle), content_type=content_type)
        response["Content-Length"] = str(doc.get("fileSize") or handle.size)
        response["Content-Disposition"] = content_disposition_header(as_attachment=True, filename=name) or "attachment"
    else:
        response = FileResponse(handle, as_attachment=True, filename=name, content_type=content_type)
    response["X-Content-Type-Options"] = "nosniff"
    return response


router.add_router("", usage_router)
router.add_router("", ai_router)
