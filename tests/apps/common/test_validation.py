"""The one 422 of the services: the shape and field naming of a schema validation error."""

from apps.common.validation import invalid, invalid_fields


def test_invalid_names_the_body_field_as_ninja_does_and_carries_the_reason() -> None:
    error = invalid("endDate", "must be after startDate")
    assert (error.code, error.http_status) == ("bad_request", 422)
    assert error.as_dict() == {
        "code": "bad_request",
        "message": "must be after startDate",
        "fields": [{"field": "body.payload.endDate", "reason": "must be after startDate"}],
    }


def test_invalid_outside_the_body_names_the_field_at_its_own_location() -> None:
    assert invalid("file", "empty file", location="").data["fields"] == [{"field": "file", "reason": "empty file"}]
    assert invalid("city", "bad", location="query").data["fields"] == [{"field": "query.city", "reason": "bad"}]


def test_invalid_fields_names_several_in_order_with_one_message() -> None:
    error = invalid_fields({"property_type": "bad choice", "zip_code": "too long"}, "not saved", location="")
    assert error.as_dict() == {
        "code": "bad_request",
        "message": "not saved",
        "fields": [{"field": "property_type", "reason": "bad choice"}, {"field": "zip_code", "reason": "too long"}],
    }
