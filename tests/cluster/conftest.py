"""The Redis Cluster of the cluster tests: six of Debian's redis-server (three masters, three
replicas, `pms/rediscluster.py`), started once per session; skipped when redis-server is missing.

Every test here runs against that cluster: `realtime_test_stores` and `clean_redis` (tests/conftest.py)
are overridden to point the realtime core and the server processes at `redis+cluster://...`
for the test and back at the suite's Redis after it. The end-to-end fixtures (servers, clients)
are tests/e2e's.
"""

import shutil
from collections.abc import Iterator
from dataclasses import replace

import pytest
import redis
import redis.cluster
from django.conf import settings as django_settings

from pms import wiring
from pms.rediscluster import LocalCluster
from realtime import connections
from tests.conftest import TEST_MONGO_DATABASE
from tests.e2e import conftest as e2e_conftest
from tests.e2e.conftest import fast_password_hashing, open_client, server_env, start_servers  # noqa: F401


@pytest.fixture(scope="session")
def redis_cluster() -> Iterator[LocalCluster]:
    if shutil.which("redis-server") is None:
        pytest.skip("redis-server not installed (scripts/test installs Debian's package)")
    cluster = LocalCluster(masters=3, replicas=1, node_timeout_ms=1000).start()
    yield cluster
    cluster.stop()


@pytest.fixture
def realtime_test_stores(redis_cluster: LocalCluster) -> Iterator[None]:
    """The realtime core and the servers on the cluster for this test; the suite's Redis after it."""
    redis_cluster.wait_ok()  # a previous test may have failed a master over
    before_url, before_config = django_settings.REDIS_URL, connections.current_settings()
    django_settings.REDIS_URL = redis_cluster.url
    django_settings.MONGO_DATABASE = TEST_MONGO_DATABASE
    wiring.configure(replace(before_config, redis_url=redis_cluster.url, mongo_database=TEST_MONGO_DATABASE))
    yield
    django_settings.REDIS_URL = before_url
    wiring.configure(before_config)


@pytest.fixture
def clean_redis(realtime_test_stores: None, redis_cluster: LocalCluster) -> Iterator[redis.Redis]:
    """Flush every master of the cluster before each test."""
    client = connections.get_sync_redis()
    assert connections.is_cluster(client)
    client.flushdb(target_nodes=redis.cluster.RedisCluster.PRIMARIES)
    yield client


@pytest.fixture(autouse=True)
def patient_server_start(monkeypatch: pytest.MonkeyPatch) -> None:
    """Servers here start beside six redis-server processes: up to 60 s to answer /healthz (the first
    request imports the URLconf, which took over 20 s on the loaded 2-core CI machine)."""
    monkeypatch.setattr(e2e_conftest, "START_TIMEOUT", 60.0)
