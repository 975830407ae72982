"""The error responses of `/api/v1`, declared once in its OpenAPI document instead of on every route.

Every error the API gives has one body, `{"error": {"code", "message", ...}}` (pms/api.py's
handlers). Routers declare their success responses (and, sometimes, an error they give with a
description); `declare_error_responses` adds to each operation of the generated document:

- `401` when the operation needs a token (missing, expired or revoked token),
- `404` when its path has parameters (an unknown id, or one the caller may not see),
- `422` when it takes parameters or a body (a value that fails validation; `fields` says which),
- `429` when it is rate limited (every authenticated operation, and login),
- `default`: any other status (403, 409, 413, 503 ...) comes with the same error body,

and gives every declared 4xx/5xx response that has no content the error body. A response with
another status and another body, or a 2xx that does not match its schema, breaks the document;
the schema-driven fuzz run (tests/api/test_openapi_fuzz.py) checks that none does.
"""

from typing import Any

from realtime.errors import HTTP_STATUS

ERROR_SCHEMA_NAME = "Error"
ERROR_REF = {"$ref": f"#/components/schemas/{ERROR_SCHEMA_NAME}"}
INTERNAL_CODE = "internal"

ERROR_SCHEMA: dict[str, Any] = {
    "title": ERROR_SCHEMA_NAME,
    "type": "object",
    "required": ["error"],
    "additionalProperties": False,
    "properties": {
        "error": {
            "type": "object",
            "required": ["code", "message"],
            # Errors may carry data of their own (`usageLimit`, `currentUsage` ...).
            "additionalProperties": True,
            "properties": {
                "code": {"type": "string", "enum": [*HTTP_STATUS, INTERNAL_CODE]},
                "message": {"type": "string"},
                "fields": {
                    "type": "array",
                    "items": {
                        "type": "object",
                        "required": ["field", "reason"],
                        "properties": {"field": {"type": "string"}, "reason": {"type": "string"}},
                    },
                },
                "retryAfter": {"type": "integer", "minimum": 0},
            },
        }
    },
}

DESCRIPTIONS = {
    "401": "`unauthorized`: no valid bearer token.",
    "404": "`not_found`: no such object, or one the caller may not see.",
    "422": "`bad_request`: a parameter or the body is not valid; `fields` lists each field and the reason.",
    "429": "`rate_limited`: too many requests; retry after `Retry-After` seconds.",
    "default": "An error (`forbidden`, `conflict`, `too_large`, `unavailable` ...), always in this shape.",
}
HTTP_METHODS = frozenset({"get", "put", "post", "delete", "patch", "options", "head", "trace"})
RATE_LIMITED_WITHOUT_TOKEN = frozenset({"/auth/login"})


def _error_response(description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": ERROR_REF}}}


def _is_error_status(status: str) -> bool:
    return status == "default" or (status[:1] in {"4", "5"})


def declare_error_responses(document: dict[str, Any]) -> dict[str, Any]:
    """Add the shared error schema and each operation's error responses to `document` (in place)."""
    document.setdefault("components", {}).setdefault("schemas", {})[ERROR_SCHEMA_NAME] = ERROR_SCHEMA
    for path, path_item in document.get("paths", {}).items():
        for method, operation in path_item.items():
            if method not in HTTP_METHODS:
                continue
            responses: dict[str, Any] = operation.setdefault("responses", {})
            for status, response in responses.items():
                if _is_error_status(str(status)) and not response.get("content"):
                    response["content"] = {"application/json": {"schema": ERROR_REF}}
            parameters = operation.get("parameters", [])
            authenticated = bool(operation.get("security"))
            wanted = []
            if authenticated:
                wanted.append("401")
            if any(parameter.get("in") == "path" for parameter in parameters):
                wanted.append("404")
            if parameters or "requestBody" in operation:
                wanted.append("422")
            if authenticated or any(path.endswith(suffix) for suffix in RATE_LIMITED_WITHOUT_TOKEN):
                wanted.append("429")
            wanted.append("default")
            for status in wanted:
                responses.setdefault(status, _error_response(DESCRIPTIONS[status]))
    return document
