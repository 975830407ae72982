"""Exact decimal inputs (money, bathrooms) whose OpenAPI schema says exactly what is accepted.

Pydantic documents a `Decimal` field as "any number or any string", whatever its `max_digits` and
`decimal_places`; clients (and the schema-driven fuzz run) then send "1e400" or 3.14159 and get a
422 the document did not announce. Annotate such a field with `decimal_schema(...)` as well:

    Money = Annotated[Decimal, Field(gt=0, max_digits=10, decimal_places=2), decimal_schema(10, 2, positive=True)]

Validation stays pydantic's; the document then says the same: a string of at most `max_digits`
digits with at most `decimal_places` after the point (the wire form of money), or a whole number
in range.
"""

from pydantic import WithJsonSchema


def decimal_schema(max_digits: int, decimal_places: int, *, positive: bool = False) -> WithJsonSchema:
    """The JSON schema of a non-negative (positive: > 0) `DECIMAL(max_digits, decimal_places)` input."""
    whole_digits = max_digits - decimal_places
    fraction = rf"(\.[0-9]{{1,{decimal_places}}})?" if decimal_places else ""
    whole = rf"(0|[1-9][0-9]{{0,{whole_digits - 1}}})" if whole_digits > 0 else "0"
    string_schema = {
        "type": "string",
        "pattern": f"^{whole}{fraction}$",
        "description": f"Exact decimal: up to {whole_digits} digits before the point and {decimal_places} after"
        + (", above zero." if positive else "."),
    }
    integer_schema = {"type": "integer", "minimum": 1 if positive else 0, "maximum": 10**whole_digits - 1}
    return WithJsonSchema({"anyOf": [string_schema, integer_schema]})
