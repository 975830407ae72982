"""Browser origins allowed to open `/ws/`: the configured origins and allowed hosts."""

from typing import Any
from urllib.parse import urlsplit

from django.conf import settings
from django.http.request import validate_host


def origin_allowed(scope: dict[str, Any]) -> bool:
    """True without an Origin header (native clients) or when the origin is allowed."""
    origin = None
    for name, value in scope.get("headers", ()):
        if name == b"origin":
            origin = value.decode("latin-1").strip()
            break
    if origin is None:
        return True
    if origin in settings.ALLOWED_ORIGINS:
        return True
    parts = urlsplit(origin)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return False
    return validate_host(parts.hostname, settings.ALLOWED_HOSTS)
