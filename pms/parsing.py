"""The request parser of `/api/v1`: Django Ninja's, refusing NUL characters in query strings and forms,
bodies that are not JSON, and JSON text that is not Unicode.

PostgreSQL text cannot hold U+0000 (psycopg refuses to send it) and no filter of this API has a
use for it, so a query value (or name) containing it is a validation error of that parameter
(422, `fields` naming `query.<name>` as Ninja does), found before any view runs, rather than a
database error in the middle of one. Bodies are left to their schemas (`text()` fields refuse
NUL with their own field path) and, for the rest, to the `DataError` handler of pms/api.py.

A JSON body must say so: a `Content-Type` other than `application/json` (or `...+json`) is
refused with 415 `bad_request` (UNSUPPORTED_MEDIA_TYPE) instead of being parsed as JSON anyway:
`text/plain` is what a cross-site form can send without a CORS preflight. A body without a
`Content-Type` is read as JSON (scripts often omit it). JSON can spell a lone surrogate
(`\\ud800`), which neither PostgreSQL nor MongoDB can store: such a body is a 422 naming the field
(NOT_UNICODE_REASON) before any view runs. pms/api.py renders these (Ninja wraps whatever the
parser raises into a 400 `HttpError`; the handler answers the cause).
"""

import json
from typing import Any

from django.http import HttpRequest
from django.utils.datastructures import MultiValueDict
from ninja.errors import ValidationError
from ninja.parser import Parser

from realtime.codecs import unencodable_field
from realtime.errors import BAD_REQUEST, ProtocolError

NUL = "\x00"
NUL_REASON = "must not contain NUL (U+0000) characters"
NOT_UNICODE_REASON = "must be valid Unicode text (a lone surrogate such as \\ud800 is not)"
UNSUPPORTED_MEDIA_TYPE = "This endpoint takes a JSON body: send it with 'Content-Type: application/json'."


def is_json_media_type(content_type: str) -> bool:
    """`application/json` or a `+json` type (parameters such as charset ignored); "" counts as JSON."""
    media_type = content_type.split(";", 1)[0].strip().lower()
    return media_type in ("", "application/json") or (
        media_type.startswith("application/") and media_type.endswith("+json")
    )


class ApiParser(Parser):
    def parse_body(self, request: HttpRequest) -> Any:
        if not is_json_media_type(request.content_type or ""):
            raise ProtocolError(BAD_REQUEST, UNSUPPORTED_MEDIA_TYPE, http_status=415)
        data = json.loads(request.body)
        field = unencodable_field(data if isinstance(data, dict) else {"body": data})
        if field is not None:
            raise ValidationError([{"loc": ("body", field), "msg": NOT_UNICODE_REASON, "type": "string_unicode"}])
        return data

    def parse_querydict(self, data: MultiValueDict, list_fields: list[str], request: HttpRequest) -> dict[str, Any]:
        result = super().parse_querydict(data, list_fields, request)
        if data is request.FILES:
            return result
        where = "query" if data is request.GET else "form"
        errors = [
            {"loc": (where, name.replace(NUL, "\\u0000")), "msg": NUL_REASON, "type": "string_nul"}
            for name, value in result.items()
            if NUL in name or any(NUL in item for item in _strings(value))
        ]
        if errors:
            raise ValidationError(errors)
        return result


def _strings(value: Any) -> list[str]:
    values = value if isinstance(value, list) else [value]
    return [item for item in values if isinstance(item, str)]
