"""The training loop every trial runs: per-epoch metrics out, NaN guard in."""

import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from models.builder import build_model
from models.data import Dataset


class NonFiniteLossError(FloatingPointError):
    """The loss turned NaN or infinite; continuing would only waste the trial's budget."""


@dataclass(frozen=True)
class TrainConfig:
    """How to fit a network. ``momentum`` applies to SGD and RMSprop only."""

    epochs: int = 10
    batch_size: int = 64
    optimizer: str = "adam"
    lr: float = 1e-3
    weight_decay: float = 0.0
    momentum: float = 0.0


_OPTIMIZERS: dict[str, Callable[..., torch.optim.Optimizer]] = {
    "sgd": lambda p, c: torch.optim.SGD(
        p, lr=c.lr, momentum=c.momentum, weight_decay=c.weight_decay
    ),
    "rmsprop": lambda p, c: torch.optim.RMSprop(
        p, lr=c.lr, momentum=c.momentum, weight_decay=c.weight_decay
    ),
    "adam": lambda p, c: torch.optim.Adam(p, lr=c.lr, weight_decay=c.weight_decay),
    "adamw": lambda p, c: torch.optim.AdamW(p, lr=c.lr, weight_decay=c.weight_decay),
}


def list_optimizers() -> list[str]:
    """Optimizer names accepted in ``TrainConfig.optimizer``."""
    return sorted(_OPTIMIZERS)


@dataclass(frozen=True)
class EpochMetrics:
    """One point of a learning curve."""

    epoch: int
    train_loss: float
    val_loss: float
    val_accuracy: float

    def as_dict(self) -> dict[str, float]:
        return {
            "epoch": self.epoch,
            "train_loss": self.train_loss,
            "val_loss": self.val_loss,
            "val_accuracy": self.val_accuracy,
        }


def _evaluate(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> tuple[float, float]:
    model.eval()
    with torch.no_grad():
        logits = model(x)
        loss = nn.functional.cross_entropy(logits, y).item()
        acc = (logits.argmax(dim=1) == y).float().mean().item()
    return loss, acc


def train(
    model_spec: dict[str, Any],
    cfg: TrainConfig,
    data: Dataset,
    seed: int,
    device: str = "cpu",
) -> Iterator[EpochMetrics]:
    """Train a network from its spec, yielding metrics after every epoch.

    Args:
        model_spec: ``{"family": ..., **fields}`` as validated by the API.
        cfg: optimizer and schedule.
        data: split, standardized arrays.
        seed: seeds weight init and batch order, so a trial is reproducible.
        device: ``"cpu"`` or a CUDA device string.

    Raises:
        NonFiniteLossError: a batch loss became NaN/Inf ("non-finite loss at epoch k").
    """
    torch.manual_seed(seed)
    gen = np.random.default_rng(seed)
    model = build_model(model_spec, data.n_features, data.n_classes).to(device)
    opt = _OPTIMIZERS[cfg.optimizer](model.parameters(), cfg)
    # torch.tensor copies: arrays read from Ray's object store are read-only views.
    x_tr = torch.tensor(data.x_train, device=device)
    y_tr = torch.tensor(data.y_train, device=device)
    x_va = torch.tensor(data.x_val, device=device)
    y_va = torch.tensor(data.y_val, device=device)
    n = len(x_tr)
    for epoch in range(1, cfg.epochs + 1):
        model.train()
        order = torch.from_numpy(gen.permutation(n)).to(device)
        total = 0.0
        for start in range(0, n, cfg.batch_size):
            idx = order[start : start + cfg.batch_size]
            loss = nn.functional.cross_entropy(model(x_tr[idx]), y_tr[idx])
            if not torch.isfinite(loss):
                raise NonFiniteLossError(f"non-finite loss at epoch {epoch}")
            opt.zero_grad(set_to_none=True)
            loss.backward()  # type: ignore[no-untyped-call]
            opt.step()
            total += loss.item() * len(idx)
        val_loss, val_acc = _evaluate(model, x_va, y_va)
        if not math.isfinite(val_loss):
            raise NonFiniteLossError(f"non-finite loss at epoch {epoch}")
        yield EpochMetrics(epoch, total / n, val_loss, val_acc)
