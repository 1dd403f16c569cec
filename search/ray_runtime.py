"""Connecting to Ray: a local, loopback-only Ray in embedded mode, a cluster otherwise."""

import logging
import os

import ray

_LOOPBACK = "127.0.0.1"


def connect(address: str = "", num_cpus: int | None = None) -> None:
    """Start (embedded) or join (cluster) Ray; a no-op when already connected.

    Args:
        address: a Ray cluster's address; empty starts a local Ray bound to loopback.
        num_cpus: CPUs the local Ray offers (default: all cores).
    """
    if ray.is_initialized():
        return
    if address:
        ray.init(address=address, logging_level=logging.WARNING)
        return
    # Ray maps 127.0.0.1 to the machine's routable address unless clustering is off; with it
    # off, Ray resolves the node address to loopback. The environment variable reaches the
    # raylet and workers it spawns; the constant covers this process, where Ray is imported.
    os.environ["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = "0"
    ray._private.ray_constants.ENABLE_RAY_CLUSTER = False
    ray.init(
        _node_ip_address=_LOOPBACK,
        num_cpus=num_cpus,
        include_dashboard=False,
        logging_level=logging.WARNING,
    )


def node_ip() -> str:
    """The address this process's Ray node uses."""
    return str(ray.util.get_node_ip_address())


def disconnect() -> None:
    if ray.is_initialized():
        ray.shutdown()
