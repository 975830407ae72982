"""Project-wide HTTP middleware: JSON answers for what no route serves, unless a browser asks for a page.

Django answers a path that no URL pattern matches with an HTML page (the technical 404 page
when PMS_DEBUG is on). An API client, a mobile app or a script gets the one error shape of
pms/api.py instead: `{"error": {"code": "not_found", "message": ...}}` with 404. Under
`/api/` always; elsewhere whenever the request does not accept `text/html` (a browser
navigating to a missing page of the web app or the admin still gets the HTML page).
"""

from collections.abc import Callable
from typing import Any

from asgiref.sync import iscoroutinefunction
from django.http import HttpRequest, HttpResponseBase, JsonResponse
from django.utils.decorators import sync_and_async_middleware

from realtime.errors import NOT_FOUND

API_PREFIX = "/api/"
NO_SUCH_PATH = "No such path: {path}"


def _wants_json(request: HttpRequest) -> bool:
    if request.path.startswith(API_PREFIX):
        return True
    accept = request.headers.get("Accept", "")
    return "text/html" not in accept and "application/xhtml+xml" not in accept


def _json_not_found(request: HttpRequest, response: HttpResponseBase) -> HttpResponseBase:
    """`response`, or the JSON 404 in its place when it is an HTML 404 for a client that wants JSON."""
    if response.status_code != 404 or not _wants_json(request):
        return response
    if not response.get("Content-Type", "").startswith("text/html"):
        return response  # already JSON (pms/api.py) or a file
    message = NO_SUCH_PATH.format(path=request.path[:200])
    return JsonResponse({"error": {"code": NOT_FOUND, "message": message}}, status=404)


@sync_and_async_middleware
def json_not_found_middleware(get_response: Callable[[HttpRequest], Any]) -> Any:
    """Outermost middleware: rewrites HTML 404s for non-browser clients and `/api/` (see the module)."""
    if iscoroutinefunction(get_response):

        async def middleware(request: HttpRequest) -> HttpResponseBase:
            response = await get_response(request)
            return _json_not_found(request, response)

        return middleware

    def sync_middleware(request: HttpRequest) -> HttpResponseBase:
        return _json_not_found(request, get_response(request))

    return sync_middleware
