"""The local Redis Cluster of the tests (pms/rediscluster.py) keeps only nodes that are its own: a
free port another redis-server took meanwhile (another xdist worker's cluster) is given up."""

import shutil
import subprocess
import time
from pathlib import Path

import pytest

from pms import rediscluster
from pms.rediscluster import LocalCluster

pytestmark = pytest.mark.skipif(shutil.which("redis-server") is None, reason="redis-server not installed")


def test_a_port_another_redis_server_answers_on_is_given_up_for_a_free_one(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    taken = rediscluster._free_port()
    other = subprocess.Popen(
        ["redis-server", "--port", str(taken), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    node = None
    try:
        deadline = time.monotonic() + 10
        while subprocess.run(["redis-cli", "-p", str(taken), "PING"], capture_output=True).stdout.strip() != b"PONG":
            assert time.monotonic() < deadline, "the other redis-server did not start"
            time.sleep(0.05)
        ports = [taken, rediscluster._free_port()]  # the first port "picked" is the one already served
        monkeypatch.setattr(rediscluster, "_free_port", lambda: ports.pop(0))
        cluster = LocalCluster(masters=1, replicas=0)
        cluster.root = tmp_path
        node = cluster._start_node(timeout=10)
        assert node.port != taken and not ports
        assert int(node.info("server")["process_id"]) == node.process.pid
    finally:
        for process in (other, node.process if node is not None else None):
            if process is not None and process.poll() is None:
                process.kill()
                process.wait()
