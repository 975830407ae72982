"""The local Redis Cluster of the tests (pms/rediscluster.py) keeps only nodes that are its own: a
free port another redis-server took meanwhile (another xdist worker's cluster) is given up."""

import shutil
from pathlib import Path

import pytest

from pms import rediscluster
from pms.rediscluster import LocalCluster
from tests.faults.conftest import RedisProcess

pytestmark = pytest.mark.skipif(shutil.which("redis-server") is None, reason="redis-server not installed")


def test_a_port_another_redis_server_answers_on_is_given_up_for_a_free_one(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    (tmp_path / "other").mkdir()
    other = RedisProcess(rediscluster._free_port(), tmp_path / "other")
    other.start()  # returns once it answers
    node = None
    try:
        ports = [other.port, rediscluster._free_port()]  # the first port "picked" is the one already served
        monkeypatch.setattr(rediscluster, "_free_port", lambda: ports.pop(0))
        cluster = LocalCluster(masters=1, replicas=0)
        cluster.root = tmp_path
        node = cluster._start_node(timeout=10)
        assert node.port != other.port and not ports
        assert int(node.info("server")["process_id"]) == node.process.pid
    finally:
        other.stop()
        if node is not None and node.alive:
            node.process.kill()
            node.process.wait()
