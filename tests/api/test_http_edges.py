"""The HTTP edges answer in the one error shape with stable codes (issue #15): bodies too large for
the server (413 `too_large`, not a 500), paths no route serves (a JSON 404 unless a browser asks
for a page), bodies that are not JSON (415) or whose JSON text is not Unicode (422)."""

import json
from typing import Any

import pytest
from django.test import Client

from apps.properties.models import Amenity
from pms.api import BODY_TOO_LARGE
from pms.parsing import NOT_UNICODE_REASON, UNSUPPORTED_MEDIA_TYPE
from tests.apps.api_world import World, build_world

pytestmark = pytest.mark.django_db

LOGIN = "/api/v1/auth/login"
AMENITY = {"name": "Pool", "category": "outdoor"}


@pytest.fixture
def world(db: None) -> World:
    return build_world()


def error_of(response, status: int, code: str) -> dict:
    assert response.status_code == status, response.content
    assert response["Content-Type"].startswith("application/json"), response["Content-Type"]
    error = response.json()["error"]
    assert error["code"] == code and error["message"], error
    return error


def test_a_json_body_over_the_limit_is_a_413_too_large(client: Client, settings: Any) -> None:
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 1000
    body = json.dumps({"email": "a@b.test", "password": "x" * 2000})
    error = error_of(client.post(LOGIN, body, content_type="application/json"), 413, "too_large")
    assert error["message"] == BODY_TOO_LARGE.format(limit=1000)


def test_the_body_limit_is_django_s_default_unless_configured() -> None:
    from django.conf import settings

    assert settings.DATA_UPLOAD_MAX_MEMORY_SIZE == 2_621_440


@pytest.mark.parametrize("path", ["/api/v1/no-such-thing", "/api/v1/properties/x/y/z", "/api/nope", "/api/"])
def test_unrouted_api_paths_answer_a_json_404_even_for_browsers(client: Client, path: str) -> None:
    error_of(client.get(path, HTTP_ACCEPT="text/html,application/xhtml+xml,*/*;q=0.8"), 404, "not_found")
    error_of(client.post(path, "{}", content_type="application/json"), 404, "not_found")


@pytest.mark.parametrize("accept", ["application/json", "*/*", ""])
def test_unrouted_paths_answer_a_json_404_to_clients_that_do_not_ask_for_html(client: Client, accept: str) -> None:
    error_of(client.get("/no-such-page.json", HTTP_ACCEPT=accept), 404, "not_found")


def test_a_browser_gets_the_html_404_page_outside_the_api(client: Client) -> None:
    response = client.get("/no-such-page/", HTTP_ACCEPT="text/html,application/xhtml+xml,*/*;q=0.8")
    assert response.status_code == 404
    assert response["Content-Type"].startswith("text/html")


def test_web_app_pages_stay_html(client: Client) -> None:
    response = client.get("/", HTTP_ACCEPT="text/html")
    assert response.status_code == 200 and response["Content-Type"].startswith("text/html")


@pytest.mark.parametrize(
    "content_type", ["text/plain", "text/plain;charset=UTF-8", "application/x-www-form-urlencoded", "application/xml"]
)
def test_a_body_that_is_not_declared_json_is_a_415_and_writes_nothing(
    world: World, client: Client, content_type: str
) -> None:
    api = world.api(client, "admin")
    response = client.post("/api/v1/amenities", json.dumps(AMENITY), content_type=content_type, **api.headers)
    error = error_of(response, 415, "bad_request")
    assert error["message"] == UNSUPPORTED_MEDIA_TYPE
    assert not Amenity.objects.exists()


def test_text_plain_login_is_refused_before_the_password_is_checked(client: Client) -> None:
    body = json.dumps({"email": "nobody@example.test", "password": "x"})
    error_of(client.post(LOGIN, body, content_type="text/plain"), 415, "bad_request")


@pytest.mark.parametrize(
    "content_type", ["application/json", "application/json; charset=utf-8", "application/merge-patch+json"]
)
def test_json_bodies_are_taken_with_any_json_media_type(world: World, client: Client, content_type: str) -> None:
    api = world.api(client, "admin")
    response = client.post("/api/v1/amenities", json.dumps(AMENITY), content_type=content_type, **api.headers)
    assert response.status_code == 201, response.content


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ('{"name": "Po\\ud800ol", "category": "outdoor"}', "body.name"),
        ('{"name": "Pool", "category": "outdoor", "\\udc00": 1}', "body."),
    ],
)
def test_json_text_that_is_not_unicode_is_a_422_naming_the_field(
    world: World, client: Client, body: str, field: str
) -> None:
    api = world.api(client, "admin")
    response = client.post("/api/v1/amenities", body, content_type="application/json", **api.headers)
    error = error_of(response, 422, "bad_request")
    assert error["fields"] == [{"field": field, "reason": NOT_UNICODE_REASON}]
    assert not Amenity.objects.exists()


def test_raw_utf8_encoded_surrogates_in_a_body_are_a_422(world: World, client: Client) -> None:
    api = world.api(client, "admin")
    body = b'{"name": "Po\xed\xa0\x80ol", "category": "outdoor"}'  # json.loads reads these bytes as \ud800
    response = client.post("/api/v1/amenities", body, content_type="application/json", **api.headers)
    error_of(response, 422, "bad_request")
    assert not Amenity.objects.exists()
