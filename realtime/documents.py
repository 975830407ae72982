"""The MongoDB side of the schema design: collections and their 21 indexes.

One code path for a real `mongod` and the wire-compatible stand-in: PyMongo's
`AsyncMongoClient` over the wire protocol (see realtime/connections.py).
"""

import logging
from dataclasses import dataclass
from typing import Any

from pymongo import ASCENDING, TEXT, IndexModel
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import OperationFailure

logger = logging.getLogger(__name__)

DOCUMENTS = "documents"
NOTIFICATIONS = "notifications"
CHAT_MESSAGES = "chat_messages"
USAGE_PATTERNS = "usage_patterns"
AI_TRAINING_DATA = "ai_training_data"
AI_MODELS = "ai_models"


@dataclass(frozen=True)
class IndexSpec:
    collection: str
    field: str
    kind: Any = ASCENDING
    expire_after_seconds: int | None = None

    @property
    def name(self) -> str:
        """mongod's default name (`field_1`, `field_text`), given explicitly so every server agrees."""
        return f"{self.field}_{'text' if self.kind == TEXT else '1'}"

    def model(self) -> IndexModel:
        options: dict[str, Any] = {"name": self.name}
        if self.expire_after_seconds is not None:
            options["expireAfterSeconds"] = self.expire_after_seconds
        return IndexModel([(self.field, self.kind)], **options)


SEED_INDEXES: tuple[IndexSpec, ...] = (
    IndexSpec(DOCUMENTS, "documentType"),
    IndexSpec(DOCUMENTS, "referenceId"),
    IndexSpec(DOCUMENTS, "uploadedBy"),
    IndexSpec(DOCUMENTS, "textContent", TEXT),
    IndexSpec(NOTIFICATIONS, "userId"),
    IndexSpec(NOTIFICATIONS, "isRead"),
    IndexSpec(NOTIFICATIONS, "createdAt"),
    # A notification is deleted by the server once its expiresAt has passed.
    IndexSpec(NOTIFICATIONS, "expiresAt", expire_after_seconds=0),
    IndexSpec(CHAT_MESSAGES, "conversationId"),
    IndexSpec(CHAT_MESSAGES, "senderId"),
    IndexSpec(CHAT_MESSAGES, "recipientId"),
    IndexSpec(CHAT_MESSAGES, "createdAt"),
    IndexSpec(USAGE_PATTERNS, "userId"),
    IndexSpec(USAGE_PATTERNS, "sessionId"),
    IndexSpec(USAGE_PATTERNS, "features.featureId"),
    IndexSpec(AI_TRAINING_DATA, "dataType"),
    IndexSpec(AI_TRAINING_DATA, "isValidated"),
    IndexSpec(AI_TRAINING_DATA, "timestamp"),
    IndexSpec(AI_MODELS, "modelType"),
    IndexSpec(AI_MODELS, "version"),
    IndexSpec(AI_MODELS, "isActive"),
)


async def ensure_indexes(database: "AsyncDatabase[Any]") -> list[str]:
    """Create every seed index that is missing (idempotent); returns `collection.name` of each.

    mongod treats re-creating an identical index as a no-op. The stand-in (nx-27017 0.8.1)
    refuses to re-create a text index once the collection holds documents ("constraint
    failed") and does not list text indexes either, so for the text index alone a refusal
    is taken as "already there" and logged.
    """
    created: list[str] = []
    for collection in dict.fromkeys(spec.collection for spec in SEED_INDEXES):
        specs = [spec for spec in SEED_INDEXES if spec.collection == collection]
        plain = [spec for spec in specs if spec.kind != TEXT]
        if plain:
            await database[collection].create_indexes([spec.model() for spec in plain])
        for spec in specs:
            if spec.kind != TEXT:
                continue
            try:
                await database[collection].create_indexes([spec.model()])
            except OperationFailure as exc:
                logger.warning("text index %s.%s not re-created (%s); assuming it exists", collection, spec.name, exc)
        created.extend(f"{collection}.{spec.name}" for spec in specs)
    return created
