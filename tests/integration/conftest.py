"""Fixtures shared by the integration modules."""
from __future__ import annotations

import pytest

from tests.support.ray_cluster import start_local_cluster


@pytest.fixture(scope="module")
def ray_cluster(tmp_path_factory):
    with pytest.MonkeyPatch.context() as mp:  # nodes cache snapshot blobs here, not in ~/.cache
        mp.setenv("RUNYARD_CACHE_DIR", str(tmp_path_factory.mktemp("ray-node-cache")))
        cluster = start_local_cluster(num_nodes=3, cpus_per_node=2)
    yield cluster
    cluster.shutdown()
