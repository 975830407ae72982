"""The HTTP API (`/api/v1`): one NinjaAPI mounting each domain's router, one error shape."""

import logging
from typing import Any

import pymongo.errors
import redis
from django.conf import settings
from django.core.exceptions import RequestDataTooBig, TooManyFieldsSent, TooManyFilesSent
from django.db import DataError, IntegrityError, InterfaceError, OperationalError
from django.http import Http404, HttpRequest, HttpResponse
from ninja import NinjaAPI
from ninja.errors import AuthenticationError, HttpError, ValidationError

from apps.accounts.api import router as auth_router
from apps.accounts.users_api import router as users_router
from apps.documents.api import router as documents_router
from apps.finance.api import router as finance_router
from apps.hud.api import router as hud_router
from apps.leasing.api import router as leasing_router
from apps.leasing.invitations_api import router as invitations_router
from apps.maintenance.api import router as maintenance_router
from apps.messaging.api import router as system_router
from apps.messaging.conversations_api import router as conversations_router
from apps.properties.api import router as properties_router
from apps.subscriptions.api import router as subscriptions_router
from pms.openapi import declare_error_responses
from pms.parsing import ApiParser
from realtime.errors import (
    BAD_REQUEST,
    CONFLICT,
    HTTP_STATUS,
    NOT_FOUND,
    TOO_LARGE,
    UNAUTHORIZED,
    UNAVAILABLE,
    ProtocolError,
)

logger = logging.getLogger(__name__)

VALIDATION_FAILED = "The request is not valid."
NOT_AUTHENTICATED = "Authentication required: send 'Authorization: Bearer <token>'."
STORE_UNAVAILABLE = "A backing store is unavailable; nothing was changed. Retry shortly."
INTERNAL_ERROR = "Internal error."
BODY_TOO_LARGE = "The request body is larger than this server accepts ({limit} bytes)."
TOO_MANY_PARTS = "The request has more form fields or files than this server accepts."
VALUE_NOT_STORABLE = (
    "A value of the request cannot be stored: text with NUL characters, or a date, UTC offset or number"
    " beyond what the database accepts."
)


class Api(NinjaAPI):
    """The NinjaAPI whose OpenAPI document declares the shared error responses (pms/openapi.py)."""

    def get_openapi_schema(self, *, path_prefix: str | None = None, path_params: dict[str, Any] | None = None) -> Any:
        schema = super().get_openapi_schema(path_prefix=path_prefix, path_params=path_params)
        declare_error_responses(schema)
        return schema


api = Api(
    title="Property management API",
    version="1",
    urls_namespace="api-v1",
    docs_url="/docs",
    openapi_url="/openapi.json",
    parser=ApiParser(),
)


def error_response(request: HttpRequest, status: int, error: dict[str, object]) -> HttpResponse:
    response = api.create_response(request, {"error": error}, status=status)
    retry_after = error.get("retryAfter")
    if retry_after is not None:
        response["Retry-After"] = str(retry_after)
    return response


def _code_for_status(status: int) -> str:
    for code, code_status in HTTP_STATUS.items():
        if code_status == status:
            return code
    return BAD_REQUEST if status < 500 else UNAVAILABLE


@api.exception_handler(ProtocolError)
def on_protocol_error(request: HttpRequest, exc: ProtocolError) -> HttpResponse:
    return error_response(request, exc.http_status, exc.as_dict())


@api.exception_handler(ValidationError)
def on_validation_error(request: HttpRequest, exc: ValidationError) -> HttpResponse:
    fields = [
        {"field": ".".join(str(part) for part in error.get("loc", ())), "reason": error.get("msg", "invalid")}
        for error in exc.errors
    ]
    return error_response(request, 422, {"code": BAD_REQUEST, "message": VALIDATION_FAILED, "fields": fields})


@api.exception_handler(AuthenticationError)
def on_authentication_error(request: HttpRequest, exc: AuthenticationError) -> HttpResponse:
    response = error_response(request, 401, {"code": UNAUTHORIZED, "message": NOT_AUTHENTICATED})
    response["WWW-Authenticate"] = "Bearer"
    return response


@api.exception_handler(HttpError)
def on_http_error(request: HttpRequest, exc: HttpError) -> HttpResponse:
    # Ninja turns whatever the body parser raises into HttpError(400); ApiParser's own
    # refusals (415 for a body that is not JSON, 422 for text that is not Unicode) keep their answer.
    cause = exc.__cause__
    if isinstance(cause, ProtocolError):
        return on_protocol_error(request, cause)
    if isinstance(cause, ValidationError):
        return on_validation_error(request, cause)
    return error_response(request, exc.status_code, {"code": _code_for_status(exc.status_code), "message": str(exc)})


@api.exception_handler(Http404)
def on_not_found(request: HttpRequest, exc: Http404) -> HttpResponse:
    return error_response(request, 404, {"code": NOT_FOUND, "message": "Not found."})


@api.exception_handler(Exception)
def on_unexpected(request: HttpRequest, exc: Exception) -> HttpResponse:
    if isinstance(exc, RequestDataTooBig):
        # Django refuses to read a body past DATA_UPLOAD_MAX_MEMORY_SIZE (PMS_MAX_BODY_BYTES).
        limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
        return error_response(request, 413, {"code": TOO_LARGE, "message": BODY_TOO_LARGE.format(limit=limit)})
    if isinstance(exc, (TooManyFieldsSent, TooManyFilesSent)):
        return error_response(request, 400, {"code": BAD_REQUEST, "message": TOO_MANY_PARTS})
    if isinstance(exc, IntegrityError):
        return error_response(request, 409, {"code": CONFLICT, "message": "The change conflicts with existing data."})
    if isinstance(exc, DataError):
        # The database refused a value the request carried (text with NUL, a UTC offset beyond ±15:59,
        # a date beyond its range ...) that the schema let through: the request's fault, and the
        # statement wrote nothing. Logged in full in case a value the server computed is the cause.
        logger.warning("value refused by the database during %s %s", request.method, request.path, exc_info=exc)
        return error_response(request, 422, {"code": BAD_REQUEST, "message": VALUE_NOT_STORABLE, "fields": []})
    if isinstance(exc, (OperationalError, InterfaceError, redis.RedisError, pymongo.errors.PyMongoError)):
        logger.warning("store unavailable during %s %s: %r", request.method, request.path, exc)
        return error_response(request, 503, {"code": UNAVAILABLE, "message": STORE_UNAVAILABLE})
    logger.error("unhandled error during %s %s", request.method, request.path, exc_info=exc)
    return error_response(request, 500, {"code": "internal", "message": INTERNAL_ERROR})


api.add_router("/auth", auth_router)
api.add_router("/system", system_router)
# Domain routers declare their full paths (`/properties/{id}`, `/leases`, ...).
for domain_router in (
    users_router,
    properties_router,
    leasing_router,
    invitations_router,
    finance_router,
    maintenance_router,
    subscriptions_router,
    hud_router,
    conversations_router,
    documents_router,
):
    api.add_router("", domain_router)
