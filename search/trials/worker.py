"""The body of every trial as it runs inside a Ray worker, and workers warmed in advance.

A trial is a Ray streaming task (:func:`search.trials.batching.run_batched` around
:func:`run_trial`): its events (:mod:`search.trials.events`) reach Optuna while the trial still
trains, and cancelling the task stops training between two batches of data. What it runs is
its :class:`~search.trials.base.Payload`.
"""

import logging
import math
import os
import time
from collections.abc import Iterator

import ray
import torch

from models.data import Dataset
from search.trials.base import Payload
from search.trials.events import Event, Started

log = logging.getLogger(__name__)


def run_trial(
    payload: Payload, data: Dataset | None, seed: int, cpus: float, gpus: float
) -> Iterator[Event]:
    """Run one trial in this worker: size torch for its reservation, then its payload."""
    yield from payload.run(data, seed, start(cpus, gpus))


def start(cpus: float, gpus: float) -> Started:
    """Size torch for the trial's reservation and say where it runs."""
    # Workers are reused. A task cancelled at the wrong instant (Ray interrupts it with an
    # asynchronous KeyboardInterrupt, which can land inside torch.no_grad's own exit) leaves
    # gradients off in the worker's thread, and every later trial there would fail with
    # "element 0 of tensors does not require grad": each trial starts from a clean state.
    torch.set_grad_enabled(True)
    # Ray exports OMP_NUM_THREADS per task, but torch's intra-op pool is sized at import; a
    # trial must not use more cores than it reserved or parallel trials fight for them.
    torch.set_num_threads(max(1, int(cpus)))
    # The GPU Ray assigned is the only one visible (CUDA_VISIBLE_DEVICES), hence cuda:0.
    device = "cuda" if gpus > 0 and torch.cuda.is_available() else "cpu"
    return Started(ray.get_runtime_context().get_node_id(), os.getpid(), device)


def _warm_worker() -> int:
    """Run in a fresh worker: the imports above (torch, the catalog, the trainer) are done by
    unpickling this function; one tiny training step initializes torch's kernels and
    allocator the way a trial's first batch would."""
    import search.trials.train  # noqa: F401  (the trainer and the catalog, as a trial needs)

    torch.set_num_threads(1)
    net = torch.nn.Sequential(torch.nn.Linear(8, 8), torch.nn.ReLU(), torch.nn.Linear(8, 2))
    opt = torch.optim.Adam(net.parameters())
    loss = torch.nn.functional.cross_entropy(net(torch.randn(4, 8)), torch.tensor([0, 1, 0, 1]))
    loss.backward()  # type: ignore[no-untyped-call]
    opt.step()
    return os.getpid()


def warm_workers(timeout_s: float = 60.0) -> set[int]:
    """Start one trial-ready Ray worker per CPU of the cluster, so the first trials of the
    first study do not pay ``import torch`` (about 2 s a worker on a small machine).

    Ray keeps idle workers, up to one per CPU, and hands them the next tasks. Returns the
    process ids of the workers warmed within ``timeout_s``.
    """
    cpus = math.floor(ray.cluster_resources().get("CPU", 0))
    if cpus < 1:
        return set()
    started = time.monotonic()
    warm = ray.remote(_warm_worker).options(num_cpus=1)
    refs = [warm.remote() for _ in range(cpus)]
    ready, _ = ray.wait(refs, num_returns=len(refs), timeout=timeout_s)
    pids = {ray.get(r) for r in ready}
    log.info("warmed %d Ray workers in %.1f s", len(pids), time.monotonic() - started)
    return pids
