"""The Redis Cluster of the cluster tests: six of Debian's redis-server (three masters, three
replicas, `pms/rediscluster.py`), started once per session; skipped when redis-server is missing."""

import shutil
from collections.abc import Iterator

import pytest

from pms.rediscluster import LocalCluster


@pytest.fixture(scope="session")
def redis_cluster() -> Iterator[LocalCluster]:
    if shutil.which("redis-server") is None:
        pytest.skip("redis-server not installed (scripts/test installs Debian's package)")
    cluster = LocalCluster(masters=3, replicas=1, node_timeout_ms=1000).start()
    yield cluster
    cluster.stop()
