"""/healthz and /readyz."""

import os
import signal
import time

# Imported before any garbage is collected: pytest's unraisable-exception hook imports it on
# first use, and a collection during that import (the loop-bound clients pyproject.toml's
# filterwarnings ignores) re-entered the hook on a half-imported module and failed a setup here
# after the multi-process tests ran.
import tracemalloc  # noqa: F401
from collections.abc import Iterator
from dataclasses import replace

import pytest
from django.test import Client

from pms import health
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


@pytest.fixture
def draining_process() -> Iterator[None]:
    health.DRAIN.started_at = time.monotonic() - 1.5
    yield
    health.DRAIN.started_at = None


def test_a_draining_process_is_not_ready_but_alive(client: Client, draining_process: None) -> None:
    response = client.get("/readyz")
    assert response.status_code == 503
    body = response.json()
    assert body["status"] == "draining" and body["drainingFor"] >= 1.5 and body["pid"] == os.getpid()
    assert client.get("/healthz").status_code == 200


def test_draining_is_armed_only_where_a_server_handler_can_be_deferred() -> None:
    # Here: no running loop to defer the stop on, and grace 0 means "stop at once".
    before = signal.getsignal(signal.SIGTERM)
    assert health.arm_drain_on_sigterm(5.0) is False
    assert health.arm_drain_on_sigterm(0.0) is False
    assert signal.getsignal(signal.SIGTERM) is before
