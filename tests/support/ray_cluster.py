"""A multi-node Ray cluster on 127.0.0.1 for integration tests.

    cluster = start_local_cluster(num_nodes=3, cpus_per_node=2)
    try:
        ray.init(address=cluster.address, namespace=f"t-{uuid.uuid4().hex}")
        ref = f.options(resources={cluster.node_resource(2): 0.01}).remote()
        cluster.kill_node(cluster.node_ids[2])          # the task fails with NodeDiedError
        JobSubmissionClient(cluster.dashboard_url)      # Jobs API on the head's dashboard
        subprocess.run(..., env={**os.environ, **cluster.env})
    finally:
        cluster.shutdown()

Why ``ray.cluster_utils.Cluster`` and not ``ray start`` processes: every node's processes
are children of this process with known pids, so ``kill_node`` SIGKILLs exactly one node
(raylet, agents; its workers exit when their raylet dies) and ``shutdown`` kills exactly
this cluster. A ``ray start`` cluster has to be torn down with ``ray stop``, which kills
every Ray process *on the machine by name* -- a network namespace does not isolate pids,
so that would take down other people's clusters. ``add_node(wait=False)`` also lets the
worker nodes boot in parallel. The cluster is still an ordinary one: other processes join
it with ``ray.init(address=cluster.address)`` given ``cluster.env``.

Authentication: Ray 2.60 enables token auth by default and would write
``~/.ray/auth_token``. Here the mode is explicit (``RAY_AUTH_MODE=token``) and the token
comes from ``RAY_AUTH_TOKEN``, one random value per test process (Ray caches the token
in C++, so a second cluster in the same process must reuse it). Nothing is written under
``$HOME``. Tests keep auth on because users' clusters have it on: a runyard client that
forgets the token fails here too.

Network: even with node IP 127.0.0.1 Ray listens on all interfaces and advertises this
machine's address (see DESIGN.md); in a namespace whose only interface is ``lo``
everything binds 127.0.0.1 (checked with ``ss -ltn``). So clusters start only inside a
private network namespace (``scripts/test.sh``, or ``unshare --net`` then
``ip link set lo up``); elsewhere ``start_local_cluster`` skips (fails under ``CI=true``).
Ray still probes 8.8.8.8 for "its" address there and logs a harmless
``network_util.cc ... falling back`` warning: without a route nothing leaves.

Pitfalls: Ray caches ``RAY_AUTH_MODE`` at import, so the auth config is reloaded after the
environment changes; unix socket paths must stay < 108 bytes, so the session root is a
short ``/tmp/ry-*`` (not pytest's ``tmp_path``); tasks default to ``max_retries=3``.
"""

from __future__ import annotations

import os
import secrets
import shutil
import socket
import tempfile
from dataclasses import dataclass, field
from typing import Any

from tests.support import services

OBJECT_STORE_BYTES = 100 * 1024 * 1024  # Ray's floor is ~75 MiB; 3 nodes fit easily
_PROCESS_TOKEN = secrets.token_hex(16)

# Set in os.environ while a cluster runs (node processes inherit them) and handed to
# subprocesses that must join. RAY_ADDRESS/RAY_AUTH_TOKEN_PATH would override ours.
_REMOVED_VARS = ("RAY_ADDRESS", "RAY_AUTH_TOKEN_PATH")


def loopback_only() -> bool:
    """True in a network namespace whose only interface is an up loopback."""
    try:
        names = [name for _, name in socket.if_nameindex()]
    except OSError:
        return False
    if names != ["lo"]:
        return False
    try:  # a fresh namespace has lo down: binding works, connecting does not
        with socket.socket() as server:
            server.bind(("127.0.0.1", 0))
            server.listen(1)
            with socket.create_connection(server.getsockname(), timeout=1):
                pass
    except OSError:
        return False
    return True


def require_ray() -> None:
    """Skip (fail under CI=true) unless ray[default] imports and only loopback exists."""
    try:
        import ray.cluster_utils  # noqa: F401
        import ray.dashboard  # noqa: F401  (ray[default], for the Jobs API)
    except ImportError as exc:
        services.unavailable("ray", f"ray[default] not importable: {exc}")
    if not loopback_only():
        services.unavailable(
            "ray",
            "needs a private network namespace whose loopback is up (Ray would otherwise "
            "listen on and advertise this machine's address): run under `unshare --net` "
            "after `ip link set lo up`, or scripts/test.sh",
        )


@dataclass
class LocalRayCluster:
    """Handle on a running cluster.

    ``node_ids[i]`` is the i-th node ever started and carries resource ``node_<i>``;
    0 is the head. Killed nodes stay in ``node_ids``; ``live_node_ids`` drops them.
    """

    address: str
    dashboard_url: str
    node_ids: list[str]
    env: dict[str, str]
    _cluster: Any = field(repr=False)
    _temp_dir: str = field(repr=False)
    _saved_env: dict[str, str | None] = field(repr=False)
    _cpus_per_node: int = field(repr=False)
    _resources: dict[str, float] | None = field(repr=False)

    @property
    def head_node_id(self) -> str:
        return self.node_ids[0]

    @property
    def live_node_ids(self) -> list[str]:
        alive = {node.node_id for node in self._cluster.list_all_nodes()}
        return [node_id for node_id in self.node_ids if node_id in alive]

    @staticmethod
    def node_resource(index: int) -> str:
        """Custom resource (amount 1) that pins work to node ``index``: ``{"node_2": 0.01}``."""
        return f"node_{index}"

    def add_node(self, timeout: float = 60.0) -> str:
        """Start one more worker node (~2-3 s) and return its id; it gets the next ``node_<i>``.

        Lets a test kill a node of a shared cluster without shrinking it for other tests.
        """
        index = len(self.node_ids)
        node = self._cluster.add_node(**_node_args(index, self._cpus_per_node, self._resources))
        self._cluster.wait_for_nodes(timeout=timeout)
        self.node_ids.append(node.node_id)
        return node.node_id

    def kill_node(self, node_id: str) -> None:
        """SIGKILL one worker node's processes, as if its machine died.

        Tasks running there fail with ``NodeDiedError`` 0.5-1 s later (measured) unless
        Ray retries them: tasks default to ``max_retries=3``, and a retried task that needs
        the dead node's resource waits forever as infeasible.
        """
        if node_id == self.head_node_id:
            raise ValueError("killing the head node stops the GCS, i.e. the whole cluster")
        for node in list(self._cluster.worker_nodes):
            if node.node_id == node_id:
                self._cluster.remove_node(node, allow_graceful=False)
                return
        raise KeyError(f"no live worker node {node_id}")

    def shutdown(self) -> None:
        """Disconnect this process's driver, kill every node, restore the environment."""
        import ray

        try:
            if ray.is_initialized():
                ray.shutdown()
            self._cluster.shutdown()
        finally:
            _restore_env(self._saved_env)
            shutil.rmtree(self._temp_dir, ignore_errors=True)

    def __enter__(self) -> LocalRayCluster:
        return self

    def __exit__(self, *exc: object) -> None:
        self.shutdown()


def cluster_env(temp_dir: str) -> dict[str, str]:
    """What a process needs to start or join a cluster of this module (auth, temp dir)."""
    return {
        "RAY_AUTH_MODE": "token",
        "RAY_AUTH_TOKEN": _PROCESS_TOKEN,
        "RAY_TMPDIR": temp_dir,  # sessions, sockets and the "current cluster" file
        "RAY_USAGE_STATS_ENABLED": "0",
    }


def _apply_env(env: dict[str, str]) -> dict[str, str | None]:
    names = [*env, *_REMOVED_VARS]
    saved = {name: os.environ.get(name) for name in names}
    for name in _REMOVED_VARS:
        os.environ.pop(name, None)
    os.environ.update(env)
    _reload_ray_auth_config()
    return saved


def _restore_env(saved: dict[str, str | None]) -> None:
    for name, value in saved.items():
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value
    _reload_ray_auth_config()


def _reload_ray_auth_config() -> None:
    # Ray reads RAY_AUTH_MODE into its C++ config once, when ``ray`` is imported; without a
    # reload this process keeps talking "disabled" to a token-mode GCS. Same two calls, in
    # this order, as Ray's own ``authentication_test_utils.reset_auth_token_state``.
    from ray._raylet import AuthenticationTokenLoader, Config

    Config.initialize("")
    AuthenticationTokenLoader.instance().reset_cache()


def _node_args(index: int, cpus: int, resources: dict[str, float] | None) -> dict[str, Any]:
    return {
        "node_ip_address": "127.0.0.1",
        "num_cpus": cpus,
        "resources": {**(resources or {}), f"node_{index}": 1},
        "object_store_memory": OBJECT_STORE_BYTES,
    }


def start_local_cluster(
    num_nodes: int = 3,
    cpus_per_node: int = 2,
    resources: dict[str, float] | None = None,
    timeout: float = 60.0,
) -> LocalRayCluster:
    """Start a head plus ``num_nodes - 1`` worker nodes on 127.0.0.1 and wait for all.

    ``resources`` is added to every node, besides its own ``node_<i>``. The head runs the
    dashboard (Jobs API) on 127.0.0.1. On 2 idle cores 3 nodes take 6-8 s (head ~4.4 s,
    the workers in parallel ~2.3 s; one after the other they took ~6 s), 15-25 s when
    the machine is busy: share one cluster per module and ``add_node`` for node deaths.
    Skips (fails under ``CI=true``) via ``require_ray`` when Ray cannot run here.
    """
    if num_nodes < 1:
        raise ValueError("num_nodes must be >= 1")
    require_ray()
    from ray.cluster_utils import Cluster

    # Unix socket paths must stay under 108 bytes: keep the root short, not pytest's tmp_path.
    temp_dir = tempfile.mkdtemp(prefix="ry-", dir="/tmp")
    env = cluster_env(temp_dir)
    saved = _apply_env(env)
    cluster = None
    try:
        head_args = _node_args(0, cpus_per_node, resources)
        head_args.update(include_dashboard=True, dashboard_host="127.0.0.1", dashboard_port=0)
        cluster = Cluster(initialize_head=True, head_node_args=head_args)
        workers = [
            cluster.add_node(wait=False, **_node_args(i, cpus_per_node, resources))
            for i in range(1, num_nodes)
        ]
        cluster.wait_for_nodes(timeout=timeout)  # all registered and alive in the GCS
        return LocalRayCluster(
            address=cluster.address,
            dashboard_url=f"http://{cluster.webui_url}",
            node_ids=[cluster.head_node.node_id] + [node.node_id for node in workers],
            env=env,
            _cluster=cluster,
            _temp_dir=temp_dir,
            _saved_env=saved,
            _cpus_per_node=cpus_per_node,
            _resources=resources,
        )
    except BaseException:
        if cluster is not None:
            cluster.shutdown()
        _restore_env(saved)
        shutil.rmtree(temp_dir, ignore_errors=True)
        raise


