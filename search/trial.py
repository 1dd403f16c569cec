"""The body of one trial as it runs inside a Ray worker.

It is a generator: Ray's streaming returns hand each yielded event to the scheduler as soon
as it exists, so per-epoch metrics reach Optuna while the trial still trains, and cancelling
the task stops training between two batches.
"""

import os
from collections.abc import Iterator
from typing import Any, Literal

import ray
import torch

from models.data import Dataset
from models.train import EpochMetrics, TrainConfig, train


def run_trial(
    data: Dataset,
    task: dict[str, Any],
    seed: int,
    cpus: float,
    gpus: float,
    monitor: tuple[str, Literal["maximize", "minimize"]] = ("val_loss", "minimize"),
) -> Iterator[dict[str, Any]]:
    """Train the task's network and yield events.

    Yields:
        ``{"event": "start", "node_id", "pid", "device"}`` once;
        ``{"event": "epoch", "epoch", "metrics"}`` per epoch;
        ``{"event": "result", "metrics", "best_epoch", "stopped_early", "grad_norms",
        "state_dict", "torchscript"}`` last (weights and TorchScript as bytes).
    """
    # Ray exports OMP_NUM_THREADS per task, but torch's intra-op pool is sized at import; a
    # trial must not use more cores than it reserved or parallel trials fight for them.
    torch.set_num_threads(max(1, int(cpus)))
    # The GPU Ray assigned is the only one visible (CUDA_VISIBLE_DEVICES), hence cuda:0.
    device = "cuda" if gpus > 0 and torch.cuda.is_available() else "cpu"
    yield {
        "event": "start",
        "node_id": ray.get_runtime_context().get_node_id(),
        "pid": os.getpid(),
        "device": device,
    }
    for item in train(task["model"], TrainConfig(**task["training"]), data, seed, device, monitor):
        if isinstance(item, EpochMetrics):
            yield {"event": "epoch", "epoch": item.epoch, "metrics": item.metrics}
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
