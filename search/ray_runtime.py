"""Connecting to Ray: a local, loopback-only Ray in embedded mode, a cluster otherwise."""

import logging
import os

import ray

_LOOPBACK = "127.0.0.1"
# What Ray says on every start of the service that its user can do nothing about: a driver
# started outside the main thread (the scheduler's) sets no SIGTERM handler (the service
# handles its own signals); a new local Ray turned on token authentication, as it should.
_NOISE = {
    "ray._private.worker": "SIGTERM handler is not set",
    "ray._private.authentication.authentication_token_setup": "Token authentication is enabled",
}


class _Drop(logging.Filter):
    def __init__(self, text: str) -> None:
        super().__init__()
        self._text = text

    def filter(self, record: logging.LogRecord) -> bool:
        return self._text not in record.getMessage()


for _logger, _text in _NOISE.items():
    logging.getLogger(_logger).addFilter(_Drop(_text))


def connect(address: str = "", num_cpus: int | None = None) -> None:
    """Start (embedded) or join (cluster) Ray; a no-op when already connected.

    Args:
        address: a Ray cluster's address; empty starts a local Ray bound to loopback.
        num_cpus: CPUs the local Ray offers (default: all cores).
    """
    if ray.is_initialized():
        return
    if address:
        if address.split(":")[0] in (_LOOPBACK, "localhost"):
            _stay_on_loopback()  # a cluster of nodes on this machine (tests, a laptop)
        ray.init(address=address, logging_level=logging.WARNING)
        return
    _stay_on_loopback()
    ray.init(
        address="local",  # never join a cluster some address file or RAY_ADDRESS names
        _node_ip_address=_LOOPBACK,
        num_cpus=num_cpus,
        include_dashboard=False,
        logging_level=logging.WARNING,
    )


def _stay_on_loopback() -> None:
    # Ray maps 127.0.0.1 to the machine's routable address unless clustering is off; with it
    # off, Ray resolves the node address to loopback. The environment variable reaches the
    # raylet and workers it spawns; the constant covers this process, where Ray is imported.
    os.environ["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = "0"
    ray._private.ray_constants.ENABLE_RAY_CLUSTER = False


def unplaceable(cpu: float, gpu: float) -> str | None:
    """Why no live node of the cluster can run a trial needing ``cpu`` and ``gpu``, or None.

    Ray would keep such a task pending forever; a study asking for it should fail at once.
    """
    nodes = [n["Resources"] for n in ray.nodes() if n.get("Alive")]
    if any(r.get("CPU", 0) >= cpu and r.get("GPU", 0) >= gpu for r in nodes):
        return None
    most_cpu = max((r.get("CPU", 0) for r in nodes), default=0)
    most_gpu = max((r.get("GPU", 0) for r in nodes), default=0)
    return (
        f"no Ray node can run a trial with resources cpu={cpu:g}, gpu={gpu:g} "
        f"(largest node: {most_cpu:g} CPU, {most_gpu:g} GPU)"
    )


def node_ip() -> str:
    """The address this process's Ray node uses."""
    return str(ray.util.get_node_ip_address())


def disconnect() -> None:
    if ray.is_initialized():
        ray.shutdown()
