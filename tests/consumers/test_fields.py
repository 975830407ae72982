"""Command field checks: a UUID field answers its canonical spelling, whatever spelling `uuid.UUID` reads."""

import pytest

from consumers.commands.fields import required_uuid
from realtime.errors import ProtocolError

CANONICAL = "0f8fad5b-d9cb-469f-a165-70867728950e"


@pytest.mark.parametrize(
    "spelling",
    [CANONICAL, CANONICAL.upper(), "{" + CANONICAL + "}", CANONICAL.replace("-", ""), "urn:uuid:" + CANONICAL],
)
def test_a_uuid_field_answers_the_canonical_spelling(spelling: str) -> None:
    assert required_uuid({"conversationId": spelling}, "conversationId") == CANONICAL


@pytest.mark.parametrize("value", [None, "", 7, "0f8fad5b-d9cb-469f-a165-70867728950", CANONICAL + "0", "x" * 65])
def test_anything_else_is_a_bad_request_naming_the_field(value: object) -> None:
    with pytest.raises(ProtocolError) as raised:
        required_uuid({"conversationId": value}, "conversationId")
    assert raised.value.code == "bad_request" and "conversationId" in raised.value.message
