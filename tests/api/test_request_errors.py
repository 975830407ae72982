"""Values no column can hold answer 422 in the one error shape, never 500 (found by the fuzz run):
NUL characters in a query string (pms/parsing.py: 422 naming the parameter), and values a body
schema lets through but PostgreSQL refuses, such as NUL in text or a UTC offset beyond ±15:59
(pms/api.py maps `DataError` to 422; nothing is written)."""

import pytest
from django.test import Client

from apps.properties.models import Amenity, Property
from tests.apps.api_world import World, build_world

pytestmark = pytest.mark.django_db


@pytest.fixture
def world(db: None) -> World:
    return build_world()


def test_nul_in_body_text_is_a_422_and_writes_nothing(world: World, client: Client) -> None:
    response = world.api(client, "admin").post("/amenities", {"name": "Po\x00ol", "category": "outdoor"})
    assert response.status_code == 422, response.content
    assert response.json()["error"]["code"] == "bad_request"
    assert not Amenity.objects.exists()


def test_nul_in_a_json_column_key_is_a_422(world: World, client: Client) -> None:
    response = world.api(client, "landlord").patch(f"/units/{world.unit.pk}", {"unitFeatures": {"a\x00": [1]}})
    assert response.status_code == 422, response.content
    world.unit.refresh_from_db()
    assert world.unit.unit_features is None


def test_nul_in_a_query_value_is_a_validation_error(world: World, client: Client) -> None:
    response = world.api(client, "admin").get("/properties", city="Spring\x00field")
    assert response.status_code == 422, response.content
    assert response.json()["error"]["fields"] == [
        {"field": "query.city", "reason": "must not contain NUL (U+0000) characters"}
    ]


def test_a_value_the_database_refuses_is_a_422_and_changes_nothing(world: World, client: Client) -> None:
    # Pydantic accepts offsets up to ±23:59; PostgreSQL stops at ±15:59.
    response = world.api(client, "landlord").patch(
        f"/properties/{world.prop.pk}", {"hasHudApproval": True, "hudApprovalDate": "2026-02-09T09:41:02-18:37"}
    )
    assert response.status_code == 422, response.content
    assert response.json()["error"]["code"] == "bad_request"
    assert Property.objects.get(pk=world.prop.pk).has_hud_approval is False
