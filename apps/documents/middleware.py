"""Records page views of authenticated API calls (and logins) into the usage recorder, after the response.

Sync and async capable, so the ASGI server runs it without a thread hop. It adds no Redis
or MongoDB call to the request: the caller is `request.auth`, the principal Django Ninja's
`token_auth` already put on the request (the middleware sees the same request object after
the view ran), and the recorder only buffers in memory. A call that did not authenticate
(no principal: 401, public endpoints) is not recorded, so a forged `Authorization` header
cannot count views against someone else's session.

The page is the method and the route pattern, ids left out: `GET /api/v1/properties/{property_id}`.
"""

import json
import logging
import re
from collections.abc import Callable
from typing import Any

from asgiref.sync import iscoroutinefunction
from django.http import HttpRequest, HttpResponseBase
from django.utils.decorators import sync_and_async_middleware

from apps.accounts.services import Principal
from apps.common.http import client_ip
from apps.documents.usage import get_recorder

logger = logging.getLogger(__name__)

API_PREFIX = "/api/v1/"
LOGIN_PATH = "/api/v1/auth/login"
_CONVERTER = re.compile(r"<(?:\w+:)?(\w+)>")


def _braces(match: "re.Match[str]") -> str:
    return "{" + match.group(1) + "}"


def page_of(request: HttpRequest) -> str:
    """`METHOD /route/{param}` of the matched URL pattern (the raw path if none matched)."""
    match = getattr(request, "resolver_match", None)
    route = f"/{match.route}" if match is not None and match.route else request.path
    return f"{request.method} {_CONVERTER.sub(_braces, route)}"[:300]


def observe(request: HttpRequest, response: HttpResponseBase) -> bool:
    """Buffer what this request tells about usage; True when something was recorded. Never raises."""
    try:
        if not request.path.startswith(API_PREFIX):
            return False
        principal = getattr(request, "auth", None)
        if isinstance(principal, Principal):
            get_recorder().record_view(
                user_id=principal.user_id, session_id=principal.session_id, page=page_of(request)
            )
            return True
        if request.path == LOGIN_PATH and request.method == "POST" and response.status_code == 200:
            return _observe_login(request, response)
    except Exception:  # usage statistics must never break a request
        logger.warning("usage patterns: could not record %s %s", request.method, request.path, exc_info=True)
    return False


def _observe_login(request: HttpRequest, response: HttpResponseBase) -> bool:
    if getattr(response, "streaming", False):
        return False
    body: Any = json.loads(response.content)  # type: ignore[attr-defined]
    session_id, user = body.get("sessionId"), body.get("user") or {}
    if not isinstance(session_id, str) or not isinstance(user.get("id"), str):
        return False
    get_recorder().record_login(
        user_id=user["id"],
        session_id=session_id,
        ip_address=client_ip(request),
        user_agent=request.headers.get("User-Agent"),
    )
    return True


@sync_and_async_middleware
def usage_middleware(
    get_response: Callable[[HttpRequest], Any],
) -> Callable[[HttpRequest], Any]:
    """Django middleware factory (MIDDLEWARE entry `apps.documents.middleware.usage_middleware`)."""
    if iscoroutinefunction(get_response):

        async def async_middleware(request: HttpRequest) -> HttpResponseBase:
            response: HttpResponseBase = await get_response(request)
            if observe(request, response):
                get_recorder().ensure_flusher()
            return response

        return async_middleware

    def sync_middleware(request: HttpRequest) -> HttpResponseBase:
        # WSGI and Django's sync test client: buffered only; a flusher runs on an event loop
        # (the ASGI server's) or the buffer is flushed explicitly (`await get_recorder().aflush()`).
        response: HttpResponseBase = get_response(request)
        observe(request, response)
        return response

    return sync_middleware
