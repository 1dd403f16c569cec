"""Measurements of a network before training: the data as the network sees it, the loss it
starts from, and each layer's activations and gradients on one batch."""

import math
from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from torch import nn

from models.data import Dataset

# Activations that output exactly zero on negative inputs: a unit that is zero for a whole
# batch gets no gradient through it ("dead").
_RELUS = (nn.ReLU, nn.ReLU6)
# Activations that saturate (flat at both ends): outputs near the ends pass tiny gradients.
_SQUASH: dict[type[nn.Module], tuple[float, float]] = {nn.Tanh: (-1.0, 1.0), nn.Sigmoid: (0.0, 1.0)}
_HOOKED: tuple[type[nn.Module], ...] = (
    *_RELUS,
    *_SQUASH,
    nn.LeakyReLU,
    nn.ELU,
    nn.SELU,
    nn.SiLU,
    nn.GELU,
    nn.Softplus,
)


def data_summary(data: Dataset, x_train: torch.Tensor) -> dict[str, Any]:
    """Shapes, class balance and the range of the inputs after preprocessing.

    Args:
        data: the raw split.
        x_train: the training inputs as the network sees them (scaled), (N, *input_shape).
    """
    info = data.info
    x = x_train.float()
    summary: dict[str, Any] = {
        "task": info.task,
        "kind": info.kind,
        "input_shape": list(info.input_shape),
        "n_train": len(data.x_train),
        "n_val": len(data.x_val),
        "n_outputs": info.n_outputs,
        "x_min": float(x.min()),
        "x_max": float(x.max()),
        "x_mean": float(x.mean()),
        "x_std": float(x.std()),
        "non_finite_inputs": int((~torch.isfinite(x)).sum()),
    }
    if info.task != "regression":
        counts = np.bincount(data.y_train.astype(np.int64), minlength=info.n_outputs)
        summary["class_counts"] = [int(c) for c in counts]
        summary["majority_fraction"] = float(counts.max() / max(1, counts.sum()))
    else:
        y = data.y_train.astype(np.float64)
        summary["y_mean"], summary["y_std"] = float(y.mean()), float(y.std())
    return summary


def expected_initial_loss(loss: str, data: Dataset) -> float | None:
    """The loss of a network that knows nothing yet: ln C for cross-entropy (uniform
    predictions), ln 2 for BCE, 1 for MSE on standardized targets; None for the others."""
    if loss == "cross_entropy":
        return math.log(data.info.n_outputs)
    if loss == "bce":
        return math.log(2.0)
    if loss == "mse":
        return 1.0
    return None


def layer_stats(
    net: nn.Module,
    xb: torch.Tensor,
    yb: torch.Tensor,
    loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
) -> tuple[float, list[dict[str, Any]], dict[str, float]]:
    """One forward and backward pass on a batch, watching every activation (forward hooks)
    and every parameter's gradient.

    Returns:
        the batch's loss; one row per activation module (``dead_fraction`` for ReLUs: the
        units zero on every sample of the batch; ``saturated_fraction`` for tanh and sigmoid:
        outputs within 1% of either end; output ``mean`` and ``std``); each parameter's
        gradient norm.
    """
    rows: list[dict[str, Any]] = []
    handles = []
    for name, module in net.named_modules():
        if isinstance(module, _HOOKED):
            handles.append(module.register_forward_hook(_watch(name, module, rows)))
    try:
        net.train()
        net.zero_grad(set_to_none=True)
        loss = loss_fn(net(xb).float(), yb)
        loss.backward()  # type: ignore[no-untyped-call]
    finally:
        for handle in handles:
            handle.remove()
    grads = {n: float(p.grad.norm()) for n, p in net.named_parameters() if p.grad is not None}
    net.zero_grad(set_to_none=True)
    return float(loss.detach()), rows, grads


def _watch(name: str, module: nn.Module, rows: list[dict[str, Any]]) -> Any:
    def hook(_: nn.Module, __: Any, out: Any) -> None:
        if not isinstance(out, torch.Tensor) or out.ndim < 2:
            return
        o = out.detach().float()
        row: dict[str, Any] = {
            "layer": name,
            "activation": type(module).__name__,
            "mean": float(o.mean()),
            "std": float(o.std()) if o.numel() > 1 else 0.0,
        }
        if isinstance(module, _RELUS):
            # A unit is a feature (dense) or a channel (conv, over every position).
            units = o.transpose(0, 1).reshape(o.shape[1], -1)
            row["dead_fraction"] = float((units <= 0).all(dim=1).float().mean())
        for kind, (low, high) in _SQUASH.items():
            if isinstance(module, kind):
                margin = 0.01 * (high - low)
                near = (o < low + margin) | (o > high - margin)
                row["saturated_fraction"] = float(near.float().mean())
        rows.append(row)

    return hook
