"""Field checks for command frames: each failure is a `bad_request` naming the field."""

import uuid
from typing import Any

from realtime import errors
from realtime.errors import ProtocolError


def required_str(frame: dict[str, Any], name: str, *, max_length: int = 10_000) -> str:
    value = frame.get(name)
    if not isinstance(value, str) or not value:
        raise ProtocolError(errors.BAD_REQUEST, f"`{name}` must be a non-empty string.")
    if len(value) > max_length:
        raise ProtocolError(errors.BAD_REQUEST, f"`{name}` is longer than {max_length} characters.")
    return value


def optional_str(frame: dict[str, Any], name: str, *, max_length: int = 200) -> str | None:
    if frame.get(name) is None:
        return None
    return required_str(frame, name, max_length=max_length)


def required_uuid(frame: dict[str, Any], name: str) -> str:
    value = required_str(frame, name, max_length=64)
    try:
        return str(uuid.UUID(value))
    except ValueError as exc:
        raise ProtocolError(errors.BAD_REQUEST, f"`{name}` must be a UUID.") from exc
