"""Request and response schemas of the documents, usage-pattern and AI endpoints (camelCase on the wire)."""

from datetime import datetime
from typing import Any, Literal
from uuid import UUID

from ninja import Schema
from pydantic import ConfigDict, Field, field_validator

from apps.common.schemas import Timestamp
from apps.documents.stored import storable
from apps.leasing.schemas import LeaseDocumentOut, LeaseOut

DocumentTypeName = Literal["lease", "application", "maintenance", "hud_form"]
MAX_TAGS = 20
MAX_TAG_CHARS = 50


class StrictIn(Schema):
    """Input: unknown fields are refused, strings are trimmed."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


# Documents --------------------------------------------------------------------------------


def split_tags(value: list[str]) -> list[str]:
    """Tags from repeated fields and/or comma-separated values, deduplicated; ValueError past the limits."""
    tags = [tag.strip() for item in value for tag in item.split(",") if tag.strip()]
    tags = list(dict.fromkeys(tags))
    if len(tags) > MAX_TAGS or any(len(tag) > MAX_TAG_CHARS for tag in tags):
        raise ValueError(f"at most {MAX_TAGS} tags of at most {MAX_TAG_CHARS} characters each")
    return tags


class DocumentUploadForm(Schema):
    """The form fields sent with the file (multipart/form-data)."""

    documentType: DocumentTypeName
    referenceId: UUID = Field(description="The id of the lease, HUD application, maintenance request or HUD form.")
    tags: list[str] = Field(
        default_factory=list, description=f"Repeat the field or separate by commas; at most {MAX_TAGS}."
    )
    pages: int | None = Field(None, ge=0, le=100_000)
    expirationDate: datetime | None = None
    signatureStatus: str | None = Field(None, min_length=1, max_length=50)

    @field_validator("tags")
    @classmethod
    def split_tags(cls, value: list[str]) -> list[str]:
        return split_tags(value)


class DocumentMetadataOut(Schema):
    pages: int | None
    signatureStatus: str | None
    expirationDate: datetime | None
    tags: list[str]


class DocumentOut(Schema):
    id: str
    documentType: str | None
    referenceId: str | None
    fileName: str | None
    fileSize: int
    mimeType: str | None
    url: str | None = Field(description="The download path (permission-checked).")
    uploadedBy: str | None
    uploadedAt: datetime | None
    metadata: DocumentMetadataOut
    hasText: bool = Field(description="Plain text was extracted (txt and csv files) and is searchable.")
    isArchived: bool
    archivedAt: datetime | None


class DocumentDetailOut(DocumentOut):
    textContent: str | None


class DocumentFilters(Schema):
    referenceId: UUID | None = Field(None, description="Documents of one entity.")
    documentType: DocumentTypeName | None = None
    includeArchived: bool = False


class DocumentSearchParams(Schema):
    q: str = Field(min_length=1, max_length=200, description="Words to find in the documents' text.")
    documentType: DocumentTypeName | None = None
    includeArchived: bool = False


class DocumentPage(Schema):
    items: list[DocumentOut]
    count: int
    limit: int
    offset: int
    nextOffset: int | None


class DocumentSearchPage(DocumentPage):
    mode: Literal["text", "regex"] = Field(
        description="`text`: MongoDB $text (best match first); `regex`: the server lacks $text, case-insensitive words."
    )


# Usage patterns -------------------------------------------------------------------------


class FeatureUseIn(StrictIn):
    featureId: UUID = Field(description="The feature's id.")
    actionType: str = Field(min_length=1, max_length=50)
    durationSeconds: float | None = Field(None, ge=0, le=86_400)
    metadata: dict[str, Any] | None = None

    @field_validator("metadata")
    @classmethod
    def check_storable(cls, value: Any) -> Any:
        return storable(value)


class AcceptedOut(Schema):
    accepted: bool


class ActionOut(Schema):
    actionType: str | None
    timestamp: datetime | None
    metadata: dict[str, Any] | None


class FeatureUsageOut(Schema):
    featureId: str
    usageCount: int
    lastUsed: datetime | None
    usageDuration: float | None
    actions: list[ActionOut]


class PageViewOut(Schema):
    page: str
    viewCount: int
    lastViewed: datetime | None
    averageDuration: float | None


class LoginOut(Schema):
    timestamp: datetime | None
    ipAddress: str | None
    userAgent: str | None
    duration: float | None


class UsagePatternOut(Schema):
    id: str
    userId: str
    sessionId: str
    features: list[FeatureUsageOut]
    pageViews: list[PageViewOut]
    loginHistory: list[LoginOut]
    createdAt: datetime | None
    updatedAt: datetime | None


class UsagePatternPage(Schema):
    items: list[UsagePatternOut]
    count: int
    limit: int
    offset: int
    nextOffset: int | None


class UsageFilters(Schema):
    userId: str | None = Field(None, max_length=64)
    sessionId: str | None = Field(None, max_length=64)


# AI training data and models ------------------------------------------------------------------


class TrainingDataIn(StrictIn):
    dataType: str = Field(min_length=1, max_length=50, description='"pricing", "maintenance", "tenant_behavior", ...')
    features: list[Any] = Field(max_length=10_000)
    labels: list[Any] = Field(default_factory=list, max_length=10_000)
    source: str = Field(min_length=1, max_length=200)
    timestamp: datetime | None = Field(None, description="When the data was observed (default: now).")
    metadata: dict[str, Any] = Field(default_factory=dict)

    @field_validator("features", "labels", "metadata")
    @classmethod
    def check_storable(cls, value: Any) -> Any:
        return storable(value)


class TrainingDataOut(Schema):
    id: str
    dataType: str | None
    features: list[Any]
    labels: list[Any]
    source: str | None
    timestamp: datetime | None
    isValidated: bool
    validatedBy: str | None
    metadata: dict[str, Any]
    createdAt: datetime | None
    updatedAt: datetime | None


class TrainingDataFilters(Schema):
    dataType: str | None = Field(None, max_length=50)
    isValidated: bool | None = None


class TrainingDataPage(Schema):
    items: list[TrainingDataOut]
    count: int
    limit: int
    offset: int
    nextOffset: int | None


class PerformanceIn(StrictIn):
    accuracy: float | None = Field(None, ge=0, le=1)
    precision: float | None = Field(None, ge=0, le=1)
    recall: float | None = Field(None, ge=0, le=1)
    f1Score: float | None = Field(None, ge=0, le=1)


class ModelIn(StrictIn):
    modelName: str = Field(min_length=1, max_length=100)
    modelType: str = Field(min_length=1, max_length=50)
    version: str = Field(min_length=1, max_length=50)
    parameters: dict[str, Any] = Field(default_factory=dict)
    performance: PerformanceIn = Field(default_factory=PerformanceIn)  # type: ignore[arg-type]  # pydantic's Field stub
    trainedAt: datetime | None = None
    deployedAt: datetime | None = None
    isActive: bool = False
    modelUrl: str | None = Field(None, max_length=2048, pattern=r"^(https?|s3|gs|file)://\S+$")
    metadata: dict[str, Any] = Field(default_factory=dict)

    @field_validator("parameters", "metadata")
    @classmethod
    def check_storable(cls, value: Any) -> Any:
        return storable(value)


class PerformanceOut(Schema):
    accuracy: float | None
    precision: float | None
    recall: float | None
    f1Score: float | None


class ModelOut(Schema):
    id: str
    modelName: str | None
    modelType: str | None
    version: str | None
    parameters: dict[str, Any]
    performance: PerformanceOut
    trainedAt: datetime | None
    deployedAt: datetime | None
    isActive: bool
    createdBy: str | None
    modelUrl: str | None
    metadata: dict[str, Any]


class ModelFilters(Schema):
    modelName: str | None = Field(None, max_length=100)
    modelType: str | None = Field(None, max_length=50)
    isActive: bool | None = None


class ModelPage(Schema):
    items: list[ModelOut]
    count: int
    limit: int
    offset: int
    nextOffset: int | None


# A lease with its documents (apps/documents/lease_documents.py) -----------------------------


class LeaseDocumentUploadForm(Schema):
    """The form fields sent with the file (multipart/form-data) to a lease's document uploads."""

    documentType: str = Field(
        "lease",
        min_length=1,
        max_length=100,
        description="`lease_documents.document_type`: lease, addendum, notice ...",
    )
    isSigned: bool = False
    signedAt: Timestamp | None = Field(None, description="Defaults to now when isSigned.")
    tags: list[str] = Field(
        default_factory=list, description=f"Repeat the field or separate by commas; at most {MAX_TAGS}."
    )
    pages: int | None = Field(None, ge=0, le=100_000)
    expirationDate: datetime | None = None

    @field_validator("tags")
    @classmethod
    def split_tags(cls, value: list[str]) -> list[str]:
        return split_tags(value)


class LeaseDocumentUploadOut(Schema):
    leaseDocument: LeaseDocumentOut = Field(description="The `lease_documents` row.")
    document: DocumentDetailOut = Field(description="The MongoDB `documents` entry of the file.")


class LeaseWithDocumentsOut(Schema):
    lease: LeaseOut
    leaseDocuments: list[LeaseDocumentOut] = Field(description="The `lease_documents` rows, newest first.")
    documents: list[DocumentOut] = Field(description="The MongoDB `documents` of the lease, oldest first.")


class LeaseWithDocumentsParams(Schema):
    includeArchived: bool = False
