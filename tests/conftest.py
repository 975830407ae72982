"""Shared fixtures: real PostgreSQL (pytest-django), real Redis on a test DB number, fast hashers."""

import inspect
import os
from collections.abc import AsyncIterator, Iterator
from dataclasses import replace
from urllib.parse import urlsplit, urlunsplit

import pytest
import redis
from django.conf import settings as django_settings

from pms import wiring

# pytest-xdist's worker ("gw0", "gw1", ...; "" without xdist): each worker has a Redis DB of its
# own (devstack claims one per worker: PMS_TEST_REDIS_DB="15,14"), a MongoDB database of its own,
# and pytest-django's per-worker PostgreSQL database. Pub/sub channels are global in a Redis;
# their names carry entity UUIDs, so runs sharing it do not hear each other's topics.
XDIST_WORKER = os.environ.get("PYTEST_XDIST_WORKER", "")
_REDIS_DBS = [int(db) for db in os.environ.get("PMS_TEST_REDIS_DB", "15").split(",")]
TEST_REDIS_DB = _REDIS_DBS[int(XDIST_WORKER[2:] or 0) % len(_REDIS_DBS)]
if XDIST_WORKER and int(XDIST_WORKER[2:]) >= len(_REDIS_DBS):
    raise RuntimeError(f"worker {XDIST_WORKER} has no Redis DB of its own in PMS_TEST_REDIS_DB (run scripts/test)")
TEST_MONGO_DATABASE = f"pms_test_{XDIST_WORKER}" if XDIST_WORKER else "pms_test"


def redis_url_with_db(url: str, db: int) -> str:
    parts = urlsplit(url)
    if parts.scheme == "unix":
        query = "&".join(p for p in parts.query.split("&") if p and not p.startswith("db="))
        return urlunsplit(parts._replace(query=f"{query}&db={db}".lstrip("&")))
    return urlunsplit(parts._replace(path=f"/{db}"))


# PMS_TEST_REDIS_CLUSTER=1: the whole run on a local 3-shard Redis Cluster (pms/rediscluster.py)
# instead of one Redis, as production's `redis+cluster://` would run it.
ON_REDIS_CLUSTER = os.environ.get("PMS_TEST_REDIS_CLUSTER") == "1"


@pytest.fixture(scope="session", autouse=True)
def realtime_test_stores() -> Iterator[None]:
    """Point the realtime core at the test Redis DB (keys only; pub/sub ignores DB numbers) and MongoDB `pms_test`."""
    cluster = None
    if ON_REDIS_CLUSTER:
        from pms.rediscluster import LocalCluster

        cluster = LocalCluster().start()
        url = cluster.url
    else:
        url = redis_url_with_db(django_settings.REDIS_URL, TEST_REDIS_DB)
    django_settings.REDIS_URL = url
    django_settings.MONGO_DATABASE = TEST_MONGO_DATABASE
    wiring.configure(replace(wiring.realtime_settings(), redis_url=url, mongo_database=TEST_MONGO_DATABASE))
    yield
    if cluster is not None:
        cluster.stop()


@pytest.fixture(scope="session")
def session_cluster_client(realtime_test_stores: None) -> Iterator[redis.Redis | None]:
    """With PMS_TEST_REDIS_CLUSTER=1, one blocking cluster client for the whole run (else None). A new
    one per test read the slot map and parsed the COMMAND table each time, leaving its objects to
    the garbage collector: 4,250 objects of cyclic garbage per socket test instead of 630."""
    if not ON_REDIS_CLUSTER:
        yield None
        return
    from redis.cluster import RedisCluster

    from realtime.connections import ClusterAddress

    nodes = ClusterAddress(django_settings.REDIS_URL).nodes
    cluster_client = RedisCluster(host=nodes[0][0], port=nodes[0][1], decode_responses=True)
    yield cluster_client  # type: ignore[misc]  # answers the same commands
    cluster_client.close()


@pytest.fixture(autouse=True)
def clean_redis(session_cluster_client: redis.Redis | None) -> Iterator[redis.Redis]:
    """Flush the test Redis DB before each test (only the run's test DB, never the developer's data)."""
    if session_cluster_client is not None:
        from redis.cluster import RedisCluster

        session_cluster_client.flushdb(target_nodes=RedisCluster.PRIMARIES)
        yield session_cluster_client
        return
    client = redis.Redis.from_url(django_settings.REDIS_URL, decode_responses=True)
    client.flushdb()
    yield client
    client.close()


@pytest.fixture
async def close_loop_clients() -> AsyncIterator[None]:
    """Close the test loop's Redis and MongoDB clients when the test ends. A cluster client left to the
    garbage collector warns (`Unclosed ClusterNode`) inside whichever later test collects it."""
    yield
    from realtime import connections

    await connections.aclose_loop_clients()


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Every coroutine test that may open a cluster client (tests/cluster, or the whole run with
    PMS_TEST_REDIS_CLUSTER=1) closes its loop's clients in its own loop."""
    for item in items:
        on_cluster = ON_REDIS_CLUSTER or "tests/cluster/" in item.nodeid
        if on_cluster and inspect.iscoroutinefunction(getattr(item, "function", None)):
            item.fixturenames.append("close_loop_clients")  # type: ignore[attr-defined]  # a marker is too late here


@pytest.fixture(autouse=True)
def fast_password_hashing(settings: pytest.FixtureRequest) -> None:
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]  # type: ignore[attr-defined]
