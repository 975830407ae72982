"""The request parser of `/api/v1`: Django Ninja's, refusing NUL characters in query strings and forms.

PostgreSQL text cannot hold U+0000 (psycopg refuses to send it) and no filter of this API has a
use for it, so a query value (or name) containing it is a validation error of that parameter
(422, `fields` naming `query.<name>` as Ninja does), found before any view runs, rather than a
database error in the middle of one. Bodies are left to their schemas (`text()` fields refuse
NUL with their own field path) and, for the rest, to the `DataError` handler of pms/api.py.
"""

from typing import Any

from django.http import HttpRequest
from django.utils.datastructures import MultiValueDict
from ninja.errors import ValidationError
from ninja.parser import Parser

NUL = "\x00"
NUL_REASON = "must not contain NUL (U+0000) characters"


class ApiParser(Parser):
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
