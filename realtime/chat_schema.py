"""The chat message's schema: what `chat.send`/`chat.edit` accept and what clients see of a stored document.

Validation raises `ProtocolError("bad_request", <one of the constants below>)`; reading goes
through `to_message`, which also smooths over the nx-27017 stand-in's type quirks (DESIGN.md).
Text must be encodable as UTF-8 (no lone surrogates): the socket and HTTP edges refuse such
frames and bodies already, and these checks keep any other caller from handing a batched
insert a document that would fail it for everyone in the batch.
"""

import re
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

from bson import ObjectId

from realtime.codecs import encodable_text
from realtime.errors import BAD_REQUEST, ProtocolError

MAX_MESSAGE_CHARS = 10_000
MAX_ATTACHMENTS = 10
MAX_FILE_NAME_CHARS = 255
MAX_FILE_SIZE = 100 * 1024 * 1024
MAX_URL_CHARS = 2048
MAX_CLIENT_MESSAGE_ID_CHARS = 64
DEFAULT_HISTORY_LIMIT = 50
MAX_HISTORY_LIMIT = 100
ATTACHMENT_FIELDS = frozenset({"fileName", "fileSize", "mimeType", "url"})

BAD_CONVERSATION_ID = "conversationId must be a non-empty string"
BAD_USER_ID = "user ids must be non-empty strings"
BAD_PARTICIPANTS = "participants must be a list of user id strings"
BAD_CLIENT_MESSAGE_ID = f"clientMessageId must be a string of 1 to {MAX_CLIENT_MESSAGE_ID_CHARS} characters"
MESSAGE_NOT_TEXT = "message must be a string"
TEXT_NOT_UNICODE = "{field} must be valid Unicode text (a lone surrogate such as \\ud800 is not)"
MESSAGE_EMPTY = "message must not be empty unless the message has attachments"
MESSAGE_TOO_LONG = f"message must be at most {MAX_MESSAGE_CHARS:,} characters"
MESSAGE_NOT_ENCODABLE = "the message holds text that cannot be stored (not valid Unicode)"
ATTACHMENTS_NOT_LIST = "attachments must be a list"
TOO_MANY_ATTACHMENTS = f"at most {MAX_ATTACHMENTS} attachments per message"
ATTACHMENT_NOT_OBJECT = "each attachment must be an object with fileName, fileSize, mimeType and url"
ATTACHMENT_FIELDS_WRONG = "an attachment has exactly the fields fileName, fileSize, mimeType and url"
BAD_FILE_NAME = f"attachment fileName must be a non-empty string of at most {MAX_FILE_NAME_CHARS} characters"
BAD_FILE_SIZE = f"attachment fileSize must be an integer from 0 to {MAX_FILE_SIZE} bytes (100 MiB)"
BAD_MIME_TYPE = "attachment mimeType must be a media type like image/png"
BAD_URL = f"attachment url must be an http or https URL of at most {MAX_URL_CHARS} characters"
BAD_MESSAGE_ID = "messageId must be a message id (24 hexadecimal characters)"
BAD_BEFORE = "before must be a message id (24 hexadecimal characters)"
BAD_LIMIT = f"limit must be an integer from 1 to {MAX_HISTORY_LIMIT}"

_HEX_ID = re.compile(r"[0-9a-fA-F]{24}")
# RFC 6838 restricted names, with optional parameters cut off (`text/plain; charset=utf-8`).
_MIME_TYPE = re.compile(r"[A-Za-z0-9][A-Za-z0-9!#$&^_.+-]{0,126}/[A-Za-z0-9][A-Za-z0-9!#$&^_.+-]{0,126}(;.*)?")


def iso(value: Any) -> str | None:
    """An ISO 8601 UTC string (`...Z`, milliseconds) for a stored time; None stays None."""
    if value is None:
        return None
    # nx-27017 reads a datetime written by $set back as a naive string in UTC.
    moment = datetime.fromisoformat(value) if isinstance(value, str) else value
    if not isinstance(moment, datetime):
        raise TypeError(f"not a stored time: {value!r}")
    moment = moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def to_message(doc: dict[str, Any]) -> dict[str, Any]:
    """The protocol's view of a stored document; a deleted one is a tombstone (no text, no attachments)."""
    deleted = bool(doc.get("isDeleted"))
    attachments = [] if deleted else doc.get("attachments") or []
    created_at = doc.get("createdAt")
    updated_at = doc.get("updatedAt")
    created = iso(created_at)
    return {
        "id": str(doc["_id"]),
        "conversationId": doc["conversationId"],
        "senderId": doc["senderId"],
        "recipientId": doc.get("recipientId"),
        "message": None if deleted else doc.get("message", ""),
        "attachments": [
            {"fileName": a["fileName"], "fileSize": int(a["fileSize"]), "mimeType": a["mimeType"], "url": a["url"]}
            for a in attachments
        ],
        # bool(): nx-27017 reads a boolean written by $set back as 1.
        "isRead": bool(doc.get("isRead")),
        "readAt": iso(doc.get("readAt")),
        "createdAt": created,
        "updatedAt": created if updated_at is created_at else iso(updated_at),  # one time for a new message
        "isDeleted": deleted,
        "deletedAt": iso(doc.get("deletedAt")),
        "clientMessageId": doc.get("clientMessageId"),
        "offset": doc.get("offset"),
    }


def event_data(doc: dict[str, Any]) -> dict[str, Any]:
    """The message as an event's `data`: `to_message` without `offset` (the frame carries its own)."""
    data = to_message(doc)
    del data["offset"]
    return data


def bad_request(message: str) -> ProtocolError:
    """The `bad_request` error with `message` (one of this module's constants)."""
    return ProtocolError(BAD_REQUEST, message)


def parse_object_id(value: Any, message: str) -> ObjectId:
    """The ObjectId spelled by a 24-hex string; anything else is bad_request(`message`)."""
    if not isinstance(value, str) or not _HEX_ID.fullmatch(value):
        raise bad_request(message)
    return ObjectId(value)


def require_id(value: Any, message: str) -> str:
    """`value` when it is a non-blank string of Unicode text; else bad_request(`message`)."""
    if not isinstance(value, str) or not value.strip() or not encodable_text(value):
        raise bad_request(message)
    return value


def parse_text(message: Any) -> str:
    """The stripped text, at most MAX_MESSAGE_CHARS (may be empty: the caller decides)."""
    if not isinstance(message, str):
        raise bad_request(MESSAGE_NOT_TEXT)
    if not encodable_text(message):
        raise bad_request(TEXT_NOT_UNICODE.format(field="message"))
    text = message.strip()
    if len(text) > MAX_MESSAGE_CHARS:
        raise bad_request(MESSAGE_TOO_LONG)
    return text


def _attachment(value: Any) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise bad_request(ATTACHMENT_NOT_OBJECT)
    if set(value) != ATTACHMENT_FIELDS:
        raise bad_request(ATTACHMENT_FIELDS_WRONG)
    name, size, mime, url = value["fileName"], value["fileSize"], value["mimeType"], value["url"]
    if not isinstance(name, str) or not name.strip() or len(name) > MAX_FILE_NAME_CHARS:
        raise bad_request(BAD_FILE_NAME)
    if not isinstance(size, int) or isinstance(size, bool) or not 0 <= size <= MAX_FILE_SIZE:
        raise bad_request(BAD_FILE_SIZE)
    if not isinstance(mime, str) or len(mime) > 255 or not _MIME_TYPE.fullmatch(mime):
        raise bad_request(BAD_MIME_TYPE)
    if not isinstance(url, str) or len(url) > MAX_URL_CHARS or any(c.isspace() or ord(c) < 32 for c in url):
        raise bad_request(BAD_URL)
    try:
        parts = urlsplit(url)
        valid = parts.scheme.lower() in ("http", "https") and bool(parts.hostname)
    except ValueError:  # e.g. an unbalanced IPv6 bracket
        valid = False
    if not valid:
        raise bad_request(BAD_URL)
    if not (encodable_text(name) and encodable_text(url)):
        raise bad_request(TEXT_NOT_UNICODE.format(field="attachment fileName and url"))
    return {"fileName": name, "fileSize": size, "mimeType": mime, "url": url}


def parse_attachments(value: Any) -> list[dict[str, Any]]:
    """Up to MAX_ATTACHMENTS validated attachments with exactly the seed's four fields; None is []."""
    if value is None:
        return []
    if not isinstance(value, list):
        raise bad_request(ATTACHMENTS_NOT_LIST)
    if len(value) > MAX_ATTACHMENTS:
        raise bad_request(TOO_MANY_ATTACHMENTS)
    return [_attachment(item) for item in value]


def parse_participants(value: Any) -> list[str]:
    """The distinct participant ids in their order."""
    if not isinstance(value, list) or not all(isinstance(p, str) and p for p in value):
        raise bad_request(BAD_PARTICIPANTS)
    return list(dict.fromkeys(value))


def parse_client_message_id(value: Any) -> str:
    """A client's idempotency key: 1 to MAX_CLIENT_MESSAGE_ID_CHARS characters."""
    if not isinstance(value, str) or not 1 <= len(value) <= MAX_CLIENT_MESSAGE_ID_CHARS or not encodable_text(value):
        raise bad_request(BAD_CLIENT_MESSAGE_ID)
    return value


def parse_limit(value: Any) -> int:
    """A history page size from 1 to MAX_HISTORY_LIMIT (booleans are not numbers here)."""
    if not isinstance(value, int) or isinstance(value, bool) or not 1 <= value <= MAX_HISTORY_LIMIT:
        raise bad_request(BAD_LIMIT)
    return value
