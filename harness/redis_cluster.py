"""A real Redis Cluster for the tests: 3 masters and 3 replicas on free ports, in a scratch folder.

Started the way an operator does it (`redis-server --cluster-enabled yes` six times, then
`redis-cli --cluster create ... --cluster-replicas 1`), and only handed out once every node
says `cluster_state:ok` and every master has a replica, so a fault test can rely on a
failover. A short `cluster-node-timeout` keeps failovers within a few seconds.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import redis

from harness.processes import Server, free_port, start_process
from harness.tls import TlsFiles

NODE_TIMEOUT_MS = 1000
MASTERS = 3


def _redis_server() -> str:
    exe = shutil.which("redis-server")
    if exe is None:
        raise RuntimeError("redis-server is not installed (make tools installs it)")
    return exe


def _client(port: int, tls: TlsFiles | None = None) -> redis.Redis:
    options: dict[str, Any] = {}
    if tls is not None:
        options = {"ssl": True, "ssl_ca_certs": str(tls.ca)}
    return redis.Redis(
        port=port, socket_timeout=1, socket_connect_timeout=1, decode_responses=True, **options
    )


def cluster_info(port: int, tls: TlsFiles | None = None) -> dict[str, str]:
    """`CLUSTER INFO` of one node; empty when the node does not answer."""
    try:
        with _client(port, tls) as client:
            info = client.execute_command("CLUSTER INFO")
    except redis.RedisError:
        return {}
    return {str(k): str(v) for k, v in dict(info).items()}


@dataclass(frozen=True)
class Node:
    port: int
    node_id: str
    master: bool
    failed: bool
    master_id: str
    slots: tuple[tuple[int, int], ...]


def cluster_nodes(port: int, tls: TlsFiles | None = None) -> list[Node]:
    """`CLUSTER NODES` as one node sees them (redis-py parses the text into a dict)."""
    with _client(port, tls) as client:
        parsed = dict(client.execute_command("CLUSTER NODES"))
    nodes = []
    for address, entry in parsed.items():
        flags = str(entry["flags"]).split(",")
        nodes.append(
            Node(
                port=int(str(address).rsplit(":", 1)[1].split("@")[0]),
                node_id=str(entry["node_id"]),
                master="master" in flags,
                failed="fail" in flags or "fail?" in flags,
                master_id=str(entry["master_id"]),
                slots=tuple((int(span[0]), int(span[-1])) for span in entry["slots"]),
            )
        )
    return nodes


def replica_in_sync(port: int, tls: TlsFiles | None = None) -> bool:
    try:
        with _client(port, tls) as client:
            return bool(client.info("replication").get("master_link_status") == "up")
    except redis.RedisError:
        return False


@dataclass
class LocalCluster:
    """Six `redis-server` processes forming one cluster; `stop()` ends every one of them.

    With `tls`, every node serves TLS only (client port, cluster bus and replication), with a
    certificate signed by the test CA; clients connect with `rediss://` and the CA file.
    """

    work_dir: Path
    tls: TlsFiles | None = None
    servers: dict[int, Server] = field(default_factory=dict)
    bus_ports: dict[int, int] = field(default_factory=dict)

    @property
    def ports(self) -> list[int]:
        return sorted(self.servers)

    def seeds_uri(self, count: int = 2) -> str:
        """`REDIS_URI` as LibreChat spells a cluster: a few seed nodes, comma-separated."""
        scheme = "rediss" if self.tls is not None else "redis"
        return ",".join(f"{scheme}://127.0.0.1:{port}" for port in self.running()[:count])

    def start_node(self, port: int, bus_port: int | None = None) -> Server:
        """Start (or restart, with its nodes file and bus port) the node on `port`."""
        bus_port = bus_port or self.bus_ports.get(port) or free_port()
        self.bus_ports[port] = bus_port
        node_dir = self.work_dir / str(port)
        node_dir.mkdir(parents=True, exist_ok=True)
        cmd = [_redis_server(), "--bind", "127.0.0.1", "--dir", str(node_dir)]
        if self.tls is None:
            cmd += ["--port", str(port)]
        else:
            cmd += ["--port", "0", "--tls-port", str(port), "--tls-cert-file", str(self.tls.cert)]
            cmd += ["--tls-key-file", str(self.tls.key), "--tls-ca-cert-file", str(self.tls.ca)]
            cmd += ["--tls-cluster", "yes", "--tls-replication", "yes", "--tls-auth-clients", "no"]
        cmd += ["--cluster-enabled", "yes", "--cluster-config-file", f"nodes-{port}.conf"]
        cmd += ["--cluster-port", str(bus_port)]  # a free one: port + 10000 may be taken or too high
        cmd += ["--cluster-node-timeout", str(NODE_TIMEOUT_MS), "--appendonly", "no", "--save", ""]
        server = start_process(cmd, port, self.work_dir / f"redis-{port}.log", cwd=node_dir)
        self.servers[port] = server
        return server

    def create(self) -> None:
        addresses = [f"127.0.0.1:{port}" for port in self.ports]
        tls = ["--tls", "--cacert", str(self.tls.ca)] if self.tls is not None else []
        done = subprocess.run(
            [
                "redis-cli",
                *tls,
                "--cluster",
                "create",
                *addresses,
                "--cluster-replicas",
                "1",
                "--cluster-yes",
            ],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        if done.returncode != 0:
            raise RuntimeError(f"redis-cli --cluster create failed:\n{done.stdout}\n{done.stderr}")

    def running(self) -> list[int]:
        return [p for p in self.ports if self.servers[p].proc.poll() is None]

    def healthy(self) -> bool:
        """Every running node says ok, and each of the 3 masters has a replica in sync."""
        running = self.running()
        if not all(cluster_info(p, self.tls).get("cluster_state") == "ok" for p in running):
            return False
        nodes = [n for n in cluster_nodes(running[0], self.tls) if not n.failed and n.port in running]
        masters = {n.node_id for n in nodes if n.master and n.slots}
        synced = {n.master_id for n in nodes if not n.master and replica_in_sync(n.port, self.tls)}
        return len(masters) == MASTERS and masters <= synced

    def wait_healthy(self, timeout: float = 30) -> float:
        """Seconds until `healthy()`; raises with the nodes' view when it never is."""
        started = time.monotonic()
        while not self.healthy():
            if time.monotonic() - started > timeout:
                raise TimeoutError(f"cluster not healthy after {timeout}s: {self.describe()}")
            time.sleep(0.1)
        return time.monotonic() - started

    def describe(self) -> str:
        running = self.running()
        return repr(cluster_nodes(running[0], self.tls)) if running else "no node running"

    def master_of(self, key: str) -> int:
        """The port of the master that serves `key` now."""
        running = self.running()
        with _client(running[0], self.tls) as client:
            slot = int(client.execute_command("CLUSTER KEYSLOT", key))
        for node in cluster_nodes(running[0], self.tls):
            if node.master and not node.failed and any(lo <= slot <= hi for lo, hi in node.slots):
                return node.port
        raise LookupError(f"no master serves slot {slot}")

    def kill(self, port: int) -> None:
        """SIGKILL one node: no goodbye to its clients or its peers."""
        server = self.servers[port]
        os.kill(server.proc.pid, signal.SIGKILL)
        server.proc.wait(timeout=10)

    def stop(self) -> None:
        for server in self.servers.values():
            server.stop()


def start_redis_cluster(work_dir: Path, tls: TlsFiles | None = None) -> LocalCluster:
    """Six nodes on free ports, joined into 3 masters + 3 replicas, healthy when returned."""
    cluster = LocalCluster(work_dir, tls)
    work_dir.mkdir(parents=True, exist_ok=True)
    try:
        for _ in range(2 * MASTERS):
            cluster.start_node(free_port())
        cluster.create()
        cluster.wait_healthy()
    except BaseException:
        cluster.stop()
        raise
    return cluster
