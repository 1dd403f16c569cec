"""The body of one trial as it runs inside a Ray worker.

It is a generator: Ray's streaming returns hand each yielded event to the scheduler as soon
as it exists, so per-epoch metrics reach Optuna while the trial still trains, and cancelling
the task stops training between two batches.
"""

import logging
import math
import os
import time
from collections.abc import Iterator
from typing import Any, Literal

import ray
import torch

from models.data import Dataset
from models.train import EpochMetrics, TrainCheckpoint, TrainConfig, train
from search.functions import get_function

log = logging.getLogger(__name__)


def run_trial(
    data: Dataset | None,
    task: dict[str, Any],
    seed: int,
    cpus: float,
    gpus: float,
    monitor: tuple[str, Literal["maximize", "minimize"]] = ("val_loss", "minimize"),
) -> Iterator[dict[str, Any]]:
    """Train the task's network and yield events.

    ``task`` holds ``model`` and ``training`` (or, for a function task, ``function`` and
    ``options``: see :func:`function_result`; ``data`` is then None), and may hold
    ``checkpoint_every`` (epochs between checkpoints, 0: none) and ``resume`` (a checkpoint's
    state: continue after its epoch).

    Yields:
        ``{"event": "start", "node_id", "pid", "device"}`` once;
        ``{"event": "epoch", "epoch", "metrics"}`` per epoch;
        ``{"event": "checkpoint", "epoch", "state"}`` every ``checkpoint_every`` epochs (the
        scheduler keeps the newest: a trial cut short resumes from it);
        ``{"event": "result", "metrics", "best_epoch", "stopped_early", "grad_norms",
        "state_dict", "torchscript"}`` last (weights and TorchScript as bytes).
    """
    start = start_event(cpus, gpus)
    if "function" in task:  # over at once: one event, which says where it ran
        yield {**function_result(task), **{k: v for k, v in start.items() if k != "event"}}
        return
    yield start
    assert data is not None, "a training task needs its dataset"
    yield from train_events(data, task, seed, start["device"], monitor)


def function_result(task: dict[str, Any]) -> dict[str, Any]:
    """Evaluate a function task (``{"function": name, "options": arguments}``): the
    ``result`` event, whose one metric is ``value``. A function trial yields only this event,
    with the ``start`` event's ``node_id``, ``pid`` and ``device`` in it."""
    value = get_function(task["function"])(task["options"])
    return {"event": "result", "metrics": {"value": value}}


def start_event(cpus: float, gpus: float) -> dict[str, Any]:
    """Size torch for the trial's reservation and say where it runs (its first event)."""
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
    return {
        "event": "start",
        "node_id": ray.get_runtime_context().get_node_id(),
        "pid": os.getpid(),
        "device": device,
    }


def train_events(
    data: Dataset,
    task: dict[str, Any],
    seed: int,
    device: str,
    monitor: tuple[str, Literal["maximize", "minimize"]],
) -> Iterator[dict[str, Any]]:
    """Train the task's network: an ``epoch`` event per epoch, ``checkpoint`` events, then the
    ``result``."""
    items = train(
        task["model"],
        TrainConfig(**task["training"]),
        data,
        seed,
        device,
        monitor,
        checkpoint_every=int(task.get("checkpoint_every", 0)),
        resume=task.get("resume"),
    )
    for item in items:
        if isinstance(item, EpochMetrics):
            yield {"event": "epoch", "epoch": item.epoch, "metrics": item.metrics}
        elif isinstance(item, TrainCheckpoint):
            yield {"event": "checkpoint", "epoch": item.epoch, "state": item.state}
        else:
            yield {
                "event": "result",
                "metrics": item.metrics,
                "best_epoch": item.best_epoch,
                "stopped_early": item.stopped_early,
                "grad_norms": item.grad_norms,
                "state_dict": item.state_dict,
                "torchscript": item.torchscript,
            }


def _warm_worker() -> int:
    """Run in a fresh worker: the imports above (torch, the catalog, the trainer) are done by
    unpickling this function; one tiny training step initializes torch's kernels and
    allocator the way a trial's first batch would."""
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
