"""Reading MongoDB documents back through the project's schemas, whatever server stored them.

The nx-27017 stand-in (DESIGN.md) reads a boolean written by `$set` back as `1` and a date
written by `$set` back as a naive ISO string in UTC; mongod returns the real types. These
helpers turn both into what the schemas promise, so the API answers the same on either.
"""

import re
from datetime import UTC, datetime
from typing import Any

from bson import ObjectId
from bson.errors import InvalidId

from apps.common.visibility import not_found

OBJECT_ID_PATTERN = r"^[0-9a-fA-F]{24}$"
_OBJECT_ID = re.compile(OBJECT_ID_PATTERN)

# Match a stored boolean true / anything else (absent included) on both servers: the stand-in
# stores a `$set` true as 1, and its `$ne` misses documents without the field.
IS_TRUE: dict[str, Any] = {"$in": [True, 1]}
NOT_TRUE: dict[str, Any] = {"$nin": [True, 1]}


INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1
MAX_DEPTH = 20
NOT_STORABLE = (
    "must be JSON that MongoDB stores as is: integers within 64 bits, keys without a '$' prefix, '.' or NUL, "
    f"nested at most {MAX_DEPTH} deep"
)


def storable(value: Any, depth: int = 0) -> Any:
    """`value` unchanged when MongoDB can store it as is; ValueError (NOT_STORABLE) otherwise.

    Used as a schema validator, so a bad value answers 422 instead of failing in the driver.
    """
    if depth > MAX_DEPTH:
        raise ValueError(NOT_STORABLE)
    if isinstance(value, bool) or value is None or isinstance(value, (float, str)):
        return value
    if isinstance(value, int):
        if not INT64_MIN <= value <= INT64_MAX:
            raise ValueError(NOT_STORABLE)
        return value
    if isinstance(value, list):
        for item in value:
            storable(item, depth + 1)
        return value
    if isinstance(value, dict):
        for key, item in value.items():
            if not isinstance(key, str) or key.startswith("$") or "." in key or "\x00" in key:
                raise ValueError(NOT_STORABLE)
            storable(item, depth + 1)
        return value
    return value


def now() -> datetime:
    """Now in UTC, truncated to the millisecond BSON dates hold (what is returned is what is stored)."""
    moment = datetime.now(UTC)
    return moment.replace(microsecond=moment.microsecond // 1000 * 1000)


def stored_bool(value: Any) -> bool:
    """A stored flag as a real boolean (the stand-in returns 1 for a `$set` true; absent is false)."""
    return bool(value)


def stored_time(value: Any) -> datetime | None:
    """A stored date as an aware UTC datetime; None stays None."""
    if value is None:
        return None
    moment = datetime.fromisoformat(value) if isinstance(value, str) else value
    if not isinstance(moment, datetime):
        raise TypeError(f"not a stored time: {value!r}")
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def to_bson_time(value: datetime | None) -> datetime | None:
    """An aware UTC datetime at millisecond precision, ready to store (naive input is taken as UTC)."""
    if value is None:
        return None
    value = value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
    return value.replace(microsecond=value.microsecond // 1000 * 1000)


def object_id(value: str) -> ObjectId:
    """The ObjectId spelled by 24 hex characters; `not_found` for anything else."""
    if not _OBJECT_ID.match(value):
        raise not_found()
    try:
        return ObjectId(value.lower())
    except InvalidId as error:  # pragma: no cover - the pattern already guarantees a valid id
        raise not_found() from error
