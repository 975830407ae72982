"""The API's one 422 for a value the schema let through and a service refuses.

It has the shape of a schema validation error (pms/api.py's handler): code `bad_request`,
HTTP 422, `fields: [{field, reason}]`, and names the field the way Ninja names a body
field, by its place in the request: `body.payload.<field>` (views take their body as
`payload`). The message is the reason itself, since a service refuses one field at a time.
"""

from realtime.errors import BAD_REQUEST, ProtocolError

BODY = "body.payload"


def invalid(field: str, reason: str, *, location: str = BODY) -> ProtocolError:
    """A 422 `bad_request` naming `<location>.<field>` (just `field` when `location` is empty) with `reason`."""
    path = f"{location}.{field}" if location else field
    return ProtocolError(BAD_REQUEST, reason, http_status=422, fields=[{"field": path, "reason": reason}])
