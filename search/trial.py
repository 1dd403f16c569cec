"""The body of one trial as it runs inside a Ray worker.

It is a generator: Ray's streaming returns hand each yielded event to the scheduler as soon
as it exists, so per-epoch metrics reach Optuna while the trial still trains, and cancelling
the task stops training between two batches.
"""

import os
from collections.abc import Iterator
from typing import Any

import ray
import torch

from models.data import Dataset
from models.train import TrainConfig, train


def run_trial(
    data: Dataset, task: dict[str, Any], seed: int, cpus: float, gpus: float
) -> Iterator[dict[str, Any]]:
    """Train the task's network and yield events.

    Yields:
        ``{"event": "start", "node_id", "pid", "device"}`` once, then
        ``{"event": "epoch", "epoch", "train_loss", "val_loss", "val_accuracy"}`` per epoch.
    """
    # Ray exports OMP_NUM_THREADS per task, but torch's intra-op pool is sized at import; a
    # trial must not use more cores than it reserved or parallel trials fight for them.
    torch.set_num_threads(max(1, int(cpus)))
    device = "cuda" if gpus > 0 and torch.cuda.is_available() else "cpu"
    yield {
        "event": "start",
        "node_id": ray.get_runtime_context().get_node_id(),
        "pid": os.getpid(),
        "device": device,
    }
    for metrics in train(task["model"], TrainConfig(**task["training"]), data, seed, device):
        yield {"event": "epoch", **metrics.as_dict()}
