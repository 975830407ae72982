"""A local Redis Cluster of Debian's `redis-server` (7.0+) for the cluster tests and by hand.

    python -m pms.rediscluster [--masters 3] [--replicas 1] [--node-timeout-ms 1000]
        # starts 6 nodes on free 127.0.0.1 ports, prints the PMS_REDIS_URL to use, stops on Ctrl-C

Each node runs in a temporary directory of its own (its `nodes.conf`, log, no RDB/AOF), with
`cluster-node-timeout` small so a killed master is failed over in about a second (replicas
sync at once, `repl-diskless-sync-delay 0`, and may always take over,
`cluster-replica-validity-factor 0`), and
`cluster-require-full-coverage no` so the other shards keep serving while one fails over.
`redis-cli --cluster create ... --cluster-replicas N --cluster-yes` assigns the slots; start
returns once every node reports `cluster_state:ok` and sees all masters, never after a bare sleep.
Nothing here is imported by the application.
"""

from __future__ import annotations

import argparse
import atexit
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

REDIS_SERVER = "redis-server"
REDIS_CLI = "redis-cli"
HOST = "127.0.0.1"


def _free_port() -> int:
    """A free port whose cluster bus port (+10000) is below 65536 and free too."""
    while True:
        with socket.socket() as sock:
            sock.bind((HOST, 0))
            port = int(sock.getsockname()[1])
        if port + 10000 >= 65536:
            continue
        with socket.socket() as bus:
            try:
                bus.bind((HOST, port + 10000))
            except OSError:
                continue
        return port


def _wait(check: Callable[[], bool], what: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what}: not within {timeout} s")
        time.sleep(0.05)


MAX_PORT_TRIES = 20


def _owned(node: Node, timeout: float) -> bool:
    """Until the server on the node's port answers: True when it is the node's own process."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not node.alive:
            return False  # it could not bind: the port was taken meanwhile
        process_id = node.info("server").get("process_id", "").strip()
        if process_id:
            return int(process_id) == node.process.pid
        time.sleep(0.05)
    return False


@dataclass
class Node:
    port: int
    folder: Path
    process: subprocess.Popen[bytes]

    @property
    def address(self) -> str:
        return f"{HOST}:{self.port}"

    def cli(self, *args: str, timeout: float = 5.0) -> str:
        """One redis-cli command against this node; its output ('' when the node does not answer)."""
        try:
            done = subprocess.run(
                [REDIS_CLI, "-h", HOST, "-p", str(self.port), *args],
                capture_output=True,
                timeout=timeout,
                check=False,
            )
        except subprocess.TimeoutExpired:
            return ""
        return done.stdout.decode(errors="replace")

    def info(self, section: str = "cluster") -> dict[str, str]:
        """`CLUSTER INFO` (section "cluster") or `INFO <section>` as a dict."""
        text = self.cli("CLUSTER", "INFO") if section == "cluster" else self.cli("INFO", section)
        return dict(line.split(":", 1) for line in text.replace("\r", "").splitlines() if ":" in line)

    @property
    def alive(self) -> bool:
        return self.process.poll() is None


@dataclass
class LocalCluster:
    """`masters * (1 + replicas)` redis-server processes forming one cluster on 127.0.0.1."""

    masters: int = 3
    replicas: int = 1
    node_timeout_ms: int = 1000
    nodes: list[Node] = field(default_factory=list)
    root: Path | None = None

    @property
    def url(self) -> str:
        """The `PMS_REDIS_URL` of this cluster: every node as a seed."""
        return "redis+cluster://" + ",".join(node.address for node in self.nodes)

    def start(self, timeout: float = 30.0) -> LocalCluster:
        if shutil.which(REDIS_SERVER) is None or shutil.which(REDIS_CLI) is None:
            raise RuntimeError("redis-server/redis-cli not found: apt-get install redis-server")
        self.root = Path(tempfile.mkdtemp(prefix="pms-redis-cluster-"))
        atexit.register(self.stop)  # redis-server outlives its parent: never leave nodes behind
        try:
            for _ in range(self.masters * (1 + self.replicas)):
                self.nodes.append(self._start_node(timeout))
            subprocess.run(
                [
                    REDIS_CLI,
                    "--cluster",
                    "create",
                    *[node.address for node in self.nodes],
                    "--cluster-replicas",
                    str(self.replicas),
                    "--cluster-yes",
                ],
                capture_output=True,
                timeout=timeout,
                check=True,
            )
            self.wait_ok(timeout)
        except BaseException:
            self.stop()
            raise
        return self

    def restart(self, node: Node, timeout: float = 30.0) -> None:
        """Start a killed node again on its port and folder: its `nodes.conf` keeps its identity,
        so it rejoins, as a replica of the master that took its slots over."""
        index = self.nodes.index(node)
        self.nodes[index] = self._spawn(node.port)
        self.wait_ok(timeout)

    def _start_node(self, timeout: float) -> Node:
        """A node on a free port that is really its own. Two clusters starting at once (one per
        pytest-xdist worker) can pick the same free port: the second redis-server cannot bind and
        exits, and the first one answers its PINGs, so both clusters took it for theirs (the two
        workers' suites then wrote into one another's cluster; CI saw it once). The node is kept
        only when the server answering on its port is its own process; else a new port is tried."""
        for _ in range(MAX_PORT_TRIES):
            node = self._spawn(_free_port())
            if _owned(node, timeout):
                return node
            if node.alive:
                node.process.kill()
            node.process.wait()
        raise RuntimeError(f"no redis node could keep a free port in {MAX_PORT_TRIES} tries")

    def _spawn(self, port: int) -> Node:
        assert self.root is not None
        folder = self.root / str(port)
        folder.mkdir(exist_ok=True)
        args = [
            REDIS_SERVER,
            "--port", str(port),
            "--bind", HOST,
            "--dir", str(folder),
            "--logfile", str(folder / "redis.log"),
            "--cluster-enabled", "yes",
            "--cluster-config-file", str(folder / "nodes.conf"),
            "--cluster-node-timeout", str(self.node_timeout_ms),
            "--cluster-require-full-coverage", "no",
            "--cluster-allow-reads-when-down", "no",
            "--cluster-replica-validity-factor", "0",
            "--repl-diskless-sync-delay", "0",
            "--save", "",
            "--appendonly", "no",
        ]  # fmt: skip
        process = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        return Node(port, folder, process)

    def wait_ok(self, timeout: float = 30.0) -> None:
        """Until every live node reports `cluster_state:ok` with all slots served by `masters` masters,
        and every live replica is in sync with its master (only then can it take over)."""

        def settled() -> bool:
            for node in self.nodes:
                if not node.alive:
                    continue
                info = node.info()
                if info.get("cluster_state") != "ok" or info.get("cluster_slots_ok") != "16384":
                    return False
                if int(info.get("cluster_size", "0")) != self.masters:
                    return False
                replication = node.info("replication")
                if replication.get("role") == "slave" and replication.get("master_link_status") != "up":
                    return False  # a replica that never synced cannot take over
            return True

        _wait(settled, "redis cluster state ok", timeout)

    def master_nodes(self) -> list[Node]:
        """The live nodes that currently are masters."""
        return [node for node in self.nodes if node.alive and node.info("replication").get("role") == "master"]

    def master_of_slot(self, slot: int, timeout: float = 10.0) -> Node:
        """The live master that says it serves `slot` (its own line of `CLUSTER NODES`)."""
        found: list[Node] = []

        def claimed() -> bool:
            found[:] = self._claiming(slot)
            return bool(found)

        _wait(claimed, f"a live master of slot {slot}", timeout)
        return found[0]

    def _claiming(self, slot: int) -> list[Node]:
        claiming = []
        for node in self.master_nodes():
            for line in node.cli("CLUSTER", "NODES").splitlines():
                parts = line.split()
                if "myself" not in parts[2] or "master" not in parts[2]:
                    continue
                for span in parts[8:]:
                    if span.startswith("["):
                        continue
                    low, _, high = span.partition("-")
                    if int(low) <= slot <= int(high or low):
                        claiming.append(node)
        return claiming

    def kill(self, node: Node) -> None:
        """SIGKILL one node (a crash: no failover handshake, no final write)."""
        node.process.send_signal(signal.SIGKILL)
        node.process.wait(timeout=10)

    def wait_failover(self, killed: Node, slot: int, timeout: float = 30.0) -> Node:
        """Until another node serves `slot` (a replica of the killed master was promoted) and the
        cluster is `ok` again; returns the new master."""
        promoted: list[Node] = []

        def moved() -> bool:
            promoted[:] = [node for node in self._claiming(slot) if node is not killed]
            return bool(promoted)

        _wait(moved, f"failover of slot {slot}", timeout)
        self.wait_ok(timeout)
        return promoted[0]

    def stop(self) -> None:
        for node in self.nodes:
            if node.alive:
                node.process.terminate()
        for node in self.nodes:
            try:
                node.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                node.process.kill()
                node.process.wait()
        self.nodes.clear()
        if self.root is not None:
            shutil.rmtree(self.root, ignore_errors=True)
            self.root = None


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--masters", type=int, default=3)
    parser.add_argument("--replicas", type=int, default=1)
    parser.add_argument("--node-timeout-ms", type=int, default=1000)
    options = parser.parse_args()
    cluster = LocalCluster(options.masters, options.replicas, options.node_timeout_ms).start()
    print(f"PMS_REDIS_URL={cluster.url}", flush=True)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    try:
        while all(node.alive for node in cluster.nodes):
            time.sleep(1)
        print("a node exited; stopping the cluster", flush=True)
        return 1
    except (KeyboardInterrupt, SystemExit):
        return 0
    finally:
        cluster.stop()


if __name__ == "__main__":
    sys.exit(main())
