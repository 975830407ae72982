"""A lease with its documents over HTTP, through the integration layer: an upload writes the file, the
`lease_documents` row and the MongoDB document, all or none; GET .../with-documents reads them back."""

from pathlib import Path
from typing import Any

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from pymongo.asynchronous.database import AsyncDatabase

from apps.common.integration import SAVE_COMPENSATED
from apps.common.models import IntegrationIntent
from apps.leasing.models import LeaseDocument
from apps.leasing.selectors import READ_ONLY
from tests.apps.documents.conftest import API, AsyncApi, Entities, stored_files

pytestmark = pytest.mark.django_db(transaction=True)

Apis = dict[str, AsyncApi]
Mongo = AsyncDatabase[dict[str, Any]]


async def upload(api: AsyncApi, lease: Any, *, content: bytes = b"Addendum: pets allowed.", **fields: Any) -> Any:
    data = {"file": SimpleUploadedFile("addendum.txt", content), **fields}
    return await api.client.post(f"{API}/leases/{lease.pk}/document-uploads", data=data, headers=api.headers)


async def test_an_upload_writes_the_file_the_row_and_the_document(
    entities: Entities, apis: Apis, media_root: Path, mongo: Mongo
) -> None:
    response = await upload(
        apis["manager"], entities.lease, documentType="addendum", isSigned="true", tags="pets, 2026"
    )
    assert response.status_code == 201, response.content
    body = response.json()
    row, document = body["leaseDocument"], body["document"]
    assert row["leaseId"] == str(entities.lease.pk) and row["documentType"] == "addendum"
    assert row["documentUrl"] == document["url"] == f"/api/v1/documents/{document['id']}/download"
    assert row["isSigned"] is True and row["signedAt"] is not None
    assert row["uploadedBy"] == document["uploadedBy"] == str(apis["manager"].user.pk)
    assert document["documentType"] == "lease" and document["referenceId"] == str(entities.lease.pk)
    assert document["textContent"] == "Addendum: pets allowed." and document["metadata"]["tags"] == ["pets", "2026"]
    assert await LeaseDocument.objects.filter(pk=row["id"], document_url=document["url"]).aexists()
    assert await mongo["documents"].count_documents({"referenceId": str(entities.lease.pk)}) == 1
    assert len(stored_files(media_root)) == 1 and not await IntegrationIntent.objects.aexists()
    # The file is served through the documents API, to the lease's tenant too.
    download = await apis["tenant"].get(document["url"].removeprefix(API))
    assert download.status_code == 200
    assert b"".join([chunk async for chunk in download.streaming_content]) == b"Addendum: pets allowed."


async def test_a_lease_with_its_documents_in_one_call(entities: Entities, apis: Apis) -> None:
    first = (await upload(apis["landlord"], entities.lease, content=b"one")).json()
    second = (await upload(apis["manager"], entities.lease, content=b"two")).json()
    archived = await apis["manager"].post(f"/documents/{first['document']['id']}/archive")
    assert archived.status_code == 200, archived.content
    seen = await apis["tenant"].get(f"/leases/{entities.lease.pk}/with-documents")
    assert seen.status_code == 200, seen.content
    body = seen.json()
    assert body["lease"]["id"] == str(entities.lease.pk) and body["lease"]["monthlyRent"] == "1450.00"
    assert [row["id"] for row in body["leaseDocuments"]] == [
        second["leaseDocument"]["id"],
        first["leaseDocument"]["id"],
    ]
    assert [doc["id"] for doc in body["documents"]] == [second["document"]["id"]]
    everything = (
        await apis["tenant"].get(f"/leases/{entities.lease.pk}/with-documents", includeArchived="true")
    ).json()
    assert [doc["id"] for doc in everything["documents"]] == [first["document"]["id"], second["document"]["id"]]
    for who in ("other_tenant", "other_manager"):
        assert (await apis[who].get(f"/leases/{entities.lease.pk}/with-documents")).status_code == 404


@pytest.mark.parametrize(
    ("who", "status"), [("tenant", 403), ("other_manager", 404), ("other_tenant", 403), ("admin", 201)]
)
async def test_who_may_upload_is_who_may_record_lease_documents(
    entities: Entities, apis: Apis, media_root: Path, who: str, status: int
) -> None:
    response = await upload(apis[who], entities.lease)
    assert response.status_code == status, response.content
    if status == 403:
        assert response.json()["error"]["message"] == READ_ONLY
    if status != 201:
        assert stored_files(media_root) == [] and not await LeaseDocument.objects.aexists()


async def test_bad_files_are_refused_before_anything_is_written(
    entities: Entities, apis: Apis, media_root: Path
) -> None:
    data = {"file": SimpleUploadedFile("run.exe", b"MZ\x90\x00")}
    response = await apis["manager"].client.post(
        f"{API}/leases/{entities.lease.pk}/document-uploads", data=data, headers=apis["manager"].headers
    )
    assert response.status_code == 422 and response.json()["error"]["fields"][0]["field"] == "file"
    assert stored_files(media_root) == [] and not await LeaseDocument.objects.aexists()


async def test_mongodb_down_keeps_nothing_of_the_upload(
    entities: Entities, apis: Apis, media_root: Path, mongo: Mongo, dead_mongo: None
) -> None:
    response = await upload(apis["manager"], entities.lease)
    assert response.status_code == 503, response.content
    error = response.json()["error"]
    assert error["code"] == "unavailable" and error["message"] == SAVE_COMPENSATED.format(entity_type="lease_document")
    assert error["report"]["compensation"] == "created row deleted"
    assert not await LeaseDocument.objects.aexists() and stored_files(media_root) == []
    assert await mongo["documents"].count_documents({"referenceId": str(entities.lease.pk)}) == 0
    # Whether part of the insert landed could not be asked: recovery removes any, once MongoDB is back.
    assert [i.state async for i in IntegrationIntent.objects.all()] == ["undoing"]
