"""The session's Redis Cluster is what the cluster tests assume: 3 masters, each with a replica in sync."""

from __future__ import annotations

from harness import LocalCluster
from harness.redis_cluster import cluster_info, cluster_nodes


def test_the_cluster_has_three_replicated_masters(redis_cluster: LocalCluster) -> None:
    assert len(redis_cluster.ports) == 6 and redis_cluster.healthy()
    nodes = cluster_nodes(redis_cluster.ports[0])
    assert sum(1 for n in nodes if n.master and n.slots) == 3
    assert sum(hi - lo + 1 for n in nodes if n.master for lo, hi in n.slots) == 16384
    assert all(cluster_info(port)["cluster_state"] == "ok" for port in redis_cluster.ports)
