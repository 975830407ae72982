"""Documents over HTTP: upload, list, get, download, search and archive, with the permission matrix,
size and type limits, and no orphaned file when MongoDB is down."""

import io
import zipfile
from pathlib import Path
from typing import Any

import pytest
from bson import ObjectId
from pymongo.asynchronous.database import AsyncDatabase

from apps.documents import files
from apps.documents.services import CANNOT_ARCHIVE, STORE_DOWN
from tests.apps.api_world import World
from tests.apps.documents.conftest import AsyncApi, Entities, stored_files

pytestmark = pytest.mark.django_db(transaction=True)

Apis = dict[str, AsyncApi]
Mongo = AsyncDatabase[dict[str, Any]]

PNG = b"\x89PNG\r\n\x1a\n" + b"\x00\x00\x00\rIHDR" + bytes(17)
PDF = b"%PDF-1.4\n1 0 obj << /Type /Catalog >> endobj\ntrailer << >>\n%%EOF\n"
KINDS = ["lease", "maintenance", "application", "hud_form"]
# Who sees the entities under `prop`: its staff, its tenant, admins.
SEES = ["admin", "landlord", "manager", "tenant"]
BLIND = ["other_landlord", "other_manager", "other_tenant"]


def docx() -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("[Content_Types].xml", "<Types/>")
        archive.writestr("word/document.xml", "<w:document/>")
    return buffer.getvalue()


async def body_of(response: Any) -> bytes:
    return b"".join([chunk async for chunk in response.streaming_content])


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("who", SEES + BLIND)
async def test_upload_needs_sight_of_the_entity(
    world: World, entities: Entities, apis: Apis, media_root: Path, mongo: Mongo, kind: str, who: str
) -> None:
    reference = entities.of(kind)
    response = await apis[who].upload(kind, reference, content=b"Lease addendum: pets allowed.")
    stored = await mongo["documents"].find_one({"referenceId": str(reference.pk)})
    if who in SEES:
        assert response.status_code == 201, response.content
        body = response.json()
        assert body["documentType"] == kind and body["referenceId"] == str(reference.pk)
        assert body["uploadedBy"] == str(getattr(world, who).pk)
        assert body["mimeType"] == "text/plain" and body["fileSize"] == 29 and body["fileName"] == "notes.txt"
        assert body["url"] == f"/api/v1/documents/{body['id']}/download"
        assert body["textContent"] == "Lease addendum: pets allowed." and body["hasText"] is True
        assert body["isArchived"] is False and body["archivedAt"] is None
        assert stored is not None and str(stored["_id"]) == body["id"]
        assert set(stored) >= {
            "documentType",
            "referenceId",
            "fileName",
            "fileSize",
            "mimeType",
            "url",
            "uploadedBy",
            "uploadedAt",
            "metadata",
            "textContent",
            "isArchived",
            "archivedAt",
        }
        assert len(stored_files(media_root)) == 1
    else:
        assert response.status_code == 404, response.content
        assert response.json()["error"]["code"] == "not_found"
        assert stored is None and stored_files(media_root) == []


async def test_upload_keeps_the_metadata_and_sanitizes_the_name(
    entities: Entities, apis: Apis, media_root: Path
) -> None:
    response = await apis["manager"].upload(
        "lease",
        entities.lease,
        name="../../etc/pass\x07wd.txt",
        content=b"x",
        tags=["signed", "2026, addendum"],
        pages="3",
        signatureStatus="signed",
        expirationDate="2027-01-31T00:00:00Z",
    )
    assert response.status_code == 201, response.content
    body = response.json()
    assert body["fileName"] == "passwd.txt"
    assert body["metadata"] == {
        "pages": 3,
        "signatureStatus": "signed",
        "expirationDate": "2027-01-31T00:00:00Z",
        "tags": ["signed", "2026", "addendum"],
    }
    [path] = stored_files(media_root)
    assert path.is_relative_to(media_root / "documents" / "lease")
    assert path.name == f"{body['id']}.txt"


@pytest.mark.parametrize(
    ("name", "content", "mime"),
    [
        ("scan.png", PNG, "image/png"),
        ("photo.JPEG", b"\xff\xd8\xff\xe0" + bytes(20), "image/jpeg"),
        ("lease.pdf", PDF, "application/pdf"),
        ("rent.csv", b"month,amount\n2026-01,1450.00\n", "text/csv"),
        ("letter.docx", docx(), files.MIME_TYPES[files.DOCX]),
        ("latin.txt", "Caf\xe9".encode("cp1252"), "text/plain"),
    ],
)
async def test_allowed_types_are_recognized_by_content(
    entities: Entities, apis: Apis, name: str, content: bytes, mime: str
) -> None:
    response = await apis["tenant"].upload("maintenance", entities.maintenance, name=name, content=content)
    assert response.status_code == 201, response.content
    body = response.json()
    assert body["mimeType"] == mime
    assert body["hasText"] is (mime in ("text/plain", "text/csv"))
    if name == "latin.txt":
        assert body["textContent"] == "Caf\xe9"


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("run.exe", b"MZ\x90\x00", files.UNSUPPORTED_EXTENSION),
        ("noext", b"hello", files.UNSUPPORTED_EXTENSION),
        ("page.html", b"<html></html>", files.UNSUPPORTED_EXTENSION),
        ("lease.pdf", b"<html>not a pdf</html>", files.CONTENT_MISMATCH.format(expected="pdf")),
        ("image.png", PDF, files.CONTENT_MISMATCH.format(expected="png")),
        ("notes.txt", PNG, files.CONTENT_MISMATCH.format(expected="txt")),
        ("fake.docx", b"PK\x03\x04 not a zip at all", files.CONTENT_MISMATCH.format(expected="docx")),
        ("empty.txt", b"", files.EMPTY_FILE),
    ],
)
async def test_other_types_and_contradicting_content_answer_422(
    entities: Entities, apis: Apis, media_root: Path, mongo: Mongo, name: str, content: bytes, message: str
) -> None:
    response = await apis["landlord"].upload("lease", entities.lease, name=name, content=content)
    assert response.status_code == 422, response.content
    error = response.json()["error"]
    assert error["code"] == "bad_request" and error["message"] == message
    assert error["fields"] == [{"field": "file", "reason": message}]
    assert stored_files(media_root) == []
    assert await mongo["documents"].count_documents({"referenceId": str(entities.lease.pk)}) == 0


async def test_a_file_over_the_limit_answers_413_and_stores_nothing(
    entities: Entities, apis: Apis, settings: Any, media_root: Path, mongo: Mongo
) -> None:
    settings.MAX_UPLOAD_BYTES = 100
    assert (await apis["manager"].upload("lease", entities.lease, content=b"a" * 100)).status_code == 201
    response = await apis["manager"].upload("lease", entities.lease, content=b"a" * 101)
    assert response.status_code == 413, response.content
    assert response.json()["error"] == {
        "code": "too_large",
        "message": "The file is larger than the 100-byte upload limit.",
        "limit": 100,
    }
    assert len(stored_files(media_root)) == 1
    assert await mongo["documents"].count_documents({"referenceId": str(entities.lease.pk)}) == 1


async def test_bad_form_fields_answer_422(entities: Entities, apis: Apis) -> None:
    api = apis["admin"]
    assert (await api.upload("invoice", entities.lease)).status_code == 422
    assert (await api.upload("lease", "not-a-uuid")).status_code == 422
    assert (await api.upload("lease", entities.lease, pages="-1")).status_code == 422
    assert (await api.upload("lease", entities.lease, tags=[f"t{i}" for i in range(21)])).status_code == 422
    missing_file = await api.client.post(
        "/api/v1/documents", headers=api.headers, data={"documentType": "lease", "referenceId": str(entities.lease.pk)}
    )
    assert missing_file.status_code == 422
    assert (await api.upload("lease", "00000000-0000-0000-0000-000000000000")).status_code == 404
    # An id of another type's entity is not found under this type.
    assert (await api.upload("lease", entities.maintenance)).status_code == 404


async def test_mongodb_down_leaves_no_orphaned_file(
    entities: Entities, apis: Apis, media_root: Path, mongo: Mongo, dead_mongo: None
) -> None:
    response = await apis["landlord"].upload("lease", entities.lease, content=b"important")
    assert response.status_code == 503, response.content
    assert response.json()["error"] == {"code": "unavailable", "message": STORE_DOWN}
    assert stored_files(media_root) == []
    assert await mongo["documents"].count_documents({"referenceId": str(entities.lease.pk)}) == 0


async def _seed_documents(entities: Entities, apis: Apis) -> dict[str, str]:
    """One text document on each entity under both properties; returns `uploader:type` -> document id."""
    ids = {}
    plan = [
        ("tenant", "lease", entities.lease, "Lease of unit one: leaky faucet clause"),
        ("manager", "maintenance", entities.maintenance, "Work log: replaced the faucet cartridge"),
        ("tenant", "application", entities.application, "Income statement for HUD"),
        ("landlord", "hud_form", entities.hud_form, "Form HUD-50058 signed"),
        ("other_tenant", "lease", entities.other_lease, "Other lease: faucet and roof"),
        ("other_manager", "maintenance", entities.other_maintenance, "Other repair: roof"),
    ]
    for who, kind, reference, text in plan:
        response = await apis[who].upload(kind, reference, content=text.encode())
        assert response.status_code == 201, response.content
        ids[f"{who}:{kind}"] = response.json()["id"]
    return ids


VISIBLE = {
    "admin": {
        "tenant:lease",
        "manager:maintenance",
        "tenant:application",
        "landlord:hud_form",
        "other_tenant:lease",
        "other_manager:maintenance",
    },
    "landlord": {"tenant:lease", "manager:maintenance", "tenant:application", "landlord:hud_form"},
    "tenant": {"tenant:lease", "manager:maintenance", "tenant:application", "landlord:hud_form"},
    "other_manager": {"other_tenant:lease", "other_manager:maintenance"},
}


@pytest.mark.parametrize("who", list(VISIBLE))
async def test_list_shows_documents_of_visible_entities_only(entities: Entities, apis: Apis, who: str) -> None:
    ids = await _seed_documents(entities, apis)
    api = apis[who]
    body = (await api.get("/documents", limit=100)).json()
    mine = {key for key, doc_id in ids.items() if doc_id in {item["id"] for item in body["items"]}}
    assert mine == VISIBLE[who]
    if who != "admin":  # admins also see documents other tests left in the database
        assert body["count"] == len(VISIBLE[who])
    for kind in KINDS:  # by entity: visible -> its documents; not visible -> 404
        response = await api.get("/documents", referenceId=str(entities.of(kind).pk))
        if who in SEES:
            assert response.status_code == 200
            assert [item["documentType"] for item in response.json()["items"]] == [kind]
        else:
            assert response.status_code == 404
    by_type = (await api.get("/documents", documentType="lease", limit=100)).json()["items"]
    assert by_type and {item["documentType"] for item in by_type} == {"lease"}


async def test_list_pages_newest_first(entities: Entities, apis: Apis) -> None:
    api = apis["manager"]
    for index in range(3):
        assert (await api.upload("lease", entities.lease, content=f"page {index}".encode())).status_code == 201
    first = (await api.get("/documents", referenceId=str(entities.lease.pk), limit=2)).json()
    second = (await api.get("/documents", referenceId=str(entities.lease.pk), limit=2, offset=2)).json()
    assert first["count"] == 3 and len(first["items"]) == 2 and first["nextOffset"] == 2
    assert len(second["items"]) == 1 and second["nextOffset"] is None
    texts = [
        (await api.get(f"/documents/{item['id']}")).json()["textContent"] for item in first["items"] + second["items"]
    ]
    assert texts == ["page 2", "page 1", "page 0"]
    assert (await api.get("/documents", limit=101)).status_code == 422


@pytest.mark.parametrize("who", SEES + BLIND)
async def test_get_and_download_answer_404_outside_the_circle(entities: Entities, apis: Apis, who: str) -> None:
    content = b"%PDF-1.7\n" + bytes(range(256)) * 1000  # several chunks
    created = await apis["landlord"].upload("lease", entities.lease, name="Lease 2026.pdf", content=content)
    doc_id = created.json()["id"]
    detail = await apis[who].get(f"/documents/{doc_id}")
    download = await apis[who].get(f"/documents/{doc_id}/download")
    if who in SEES:
        assert detail.status_code == 200 and detail.json()["fileName"] == "Lease 2026.pdf"
        assert download.status_code == 200
        assert await body_of(download) == content
        assert download["Content-Type"] == "application/pdf"
        assert download["Content-Length"] == str(len(content))
        assert download["Content-Disposition"] == 'attachment; filename="Lease 2026.pdf"'
        assert download["X-Content-Type-Options"] == "nosniff"
    else:
        assert detail.status_code == 404 and download.status_code == 404


async def test_unknown_and_malformed_document_ids(apis: Apis) -> None:
    api = apis["admin"]
    assert (await api.get(f"/documents/{ObjectId()}")).status_code == 404
    assert (await api.get(f"/documents/{ObjectId()}/download")).status_code == 404
    assert (await api.get("/documents/not-an-id")).status_code == 422
    assert (await api.post(f"/documents/{ObjectId()}/archive")).status_code == 404


async def test_download_of_a_file_missing_from_storage_answers_404(
    entities: Entities, apis: Apis, media_root: Path
) -> None:
    doc_id = (await apis["manager"].upload("lease", entities.lease)).json()["id"]
    for path in stored_files(media_root):
        path.unlink()
    assert (await apis["manager"].get(f"/documents/{doc_id}/download")).status_code == 404


@pytest.mark.parametrize("who", list(VISIBLE))
async def test_search_finds_words_in_visible_documents_only(entities: Entities, apis: Apis, who: str) -> None:
    ids = await _seed_documents(entities, apis)
    body = (await apis[who].get("/documents/search", q="faucet", limit=100)).json()
    found = {key for key, doc_id in ids.items() if doc_id in {item["id"] for item in body["items"]}}
    assert found == VISIBLE[who] & {"tenant:lease", "manager:maintenance", "other_tenant:lease"}
    assert body["mode"] == "text"  # both mongod and the nx-27017 stand-in run $text
    if who != "admin":
        assert body["count"] == len(found)


async def test_search_validates_its_query(apis: Apis) -> None:
    api = apis["tenant"]
    assert (await api.get("/documents/search")).status_code == 422
    assert (await api.get("/documents/search", q="x" * 201)).status_code == 422
    assert (await api.get("/documents/search", q="!!!")).json()["count"] == 0


@pytest.mark.parametrize(
    ("who", "own_status", "others_status"),
    [
        ("admin", 200, 200),
        ("landlord", 200, 200),
        ("manager", 200, 200),
        ("tenant", 200, 403),
        ("other_manager", 404, 404),
        ("other_tenant", 404, 404),
    ],
)
async def test_archive_permissions(
    entities: Entities, apis: Apis, mongo: Mongo, who: str, own_status: int, others_status: int
) -> None:
    """`own`: a document the caller uploaded (when they may); `others`: one the landlord uploaded."""
    others = (await apis["landlord"].upload("maintenance", entities.maintenance)).json()["id"]
    own = others
    if own_status != 404:
        own = (await apis[who].upload("maintenance", entities.maintenance)).json()["id"]
    response = await apis[who].post(f"/documents/{own}/archive")
    assert response.status_code == own_status, response.content
    if own_status == 200:
        assert response.json()["isArchived"] is True and response.json()["archivedAt"] is not None
    response = await apis[who].post(f"/documents/{others}/archive")
    assert response.status_code == others_status, response.content
    if others_status != 200:
        stored = await mongo["documents"].find_one({"_id": ObjectId(others)})
        assert stored is not None and not stored["isArchived"]
    if others_status == 403:
        assert response.json()["error"] == {"code": "forbidden", "message": CANNOT_ARCHIVE}


async def test_archived_documents_leave_lists_and_search_unless_asked(entities: Entities, apis: Apis) -> None:
    api = apis["manager"]
    doc_id = (await api.upload("lease", entities.lease, content=b"archived quarterly report")).json()["id"]
    first = (await api.post(f"/documents/{doc_id}/archive")).json()
    again = (await api.post(f"/documents/{doc_id}/archive")).json()
    assert first["isArchived"] is True and again["archivedAt"] == first["archivedAt"]
    reference = str(entities.lease.pk)
    assert (await api.get("/documents", referenceId=reference)).json()["count"] == 0
    listed = (await api.get("/documents", referenceId=reference, includeArchived="true")).json()
    assert [item["id"] for item in listed["items"]] == [doc_id] and listed["items"][0]["isArchived"] is True
    assert (await api.get("/documents/search", q="quarterly")).json()["count"] == 0
    assert (await api.get("/documents/search", q="quarterly", includeArchived="true")).json()["count"] == 1
    assert (await api.get(f"/documents/{doc_id}")).json()["isArchived"] is True
