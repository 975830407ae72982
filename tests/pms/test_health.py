"""/healthz and /readyz."""

from collections.abc import Iterator
from dataclasses import replace

import pytest
from django.test import Client

from realtime import connections

pytestmark = pytest.mark.django_db


def test_healthz_answers_without_touching_stores(client: Client) -> None:
    response = client.get("/healthz")
    assert response.status_code == 200 and response.json() == {"status": "ok"}


def test_readyz_reports_every_store(client: Client) -> None:
    body = client.get("/readyz").json()
    assert set(body["checks"]) == {"postgres", "redis", "mongo"}
    assert body["checks"]["postgres"]["ok"] and body["checks"]["redis"]["ok"]


@pytest.fixture
def broken_redis_and_mongo() -> Iterator[None]:
    original = connections.current_settings()
    connections.configure(
        replace(
            original,
            redis_url="redis://127.0.0.1:1/0",
            redis_socket_timeout=0.5,
            mongo_url="mongodb://127.0.0.1:1/",
            mongo_timeout_ms=300,
        )
    )
    yield
    connections.configure(original)


def test_readyz_names_the_stores_that_fail(client: Client, broken_redis_and_mongo: None) -> None:
    response = client.get("/readyz")
    assert response.status_code == 503
    body = response.json()
    assert body["status"] == "unavailable"
    assert body["failed"] == ["redis", "mongo"]
    assert body["checks"]["postgres"]["ok"] is True
    assert "error" in body["checks"]["redis"]
