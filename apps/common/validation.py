"""The API's one 422 for a value the schema let through and a service refuses.

It has the shape of a schema validation error (pms/api.py's handler): code `bad_request`,
HTTP 422, `fields: [{field, reason}]`, and names the field the way Ninja names a body
field, by its place in the request: `body.payload.<field>` (views take their body as
`payload`). The message is the reason itself, since a service refuses one field at a time.
"""

from collections.abc import Mapping

from realtime.errors import BAD_REQUEST, ProtocolError

BODY = "body.payload"


def invalid_fields(reasons: Mapping[str, str], message: str, *, location: str = BODY) -> ProtocolError:
    """A 422 `bad_request` with `message`, naming each `<location>.<field>` (just `field` when
    `location` is empty) with its reason, in the order given."""
    return ProtocolError(
        BAD_REQUEST,
        message,
        http_status=422,
        fields=[
            {"field": f"{location}.{field}" if location else field, "reason": reason}
            for field, reason in reasons.items()
        ],
    )


def invalid(field: str, reason: str, *, location: str = BODY) -> ProtocolError:
    """A 422 `bad_request` naming one field, with `reason` as the message too."""
    return invalid_fields({field: reason}, reason, location=location)
