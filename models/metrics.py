"""Metrics a study can optimize, and the functions that compute them.

Per-epoch metrics are reported every epoch (learning curves, pruning); final metrics are
computed once, on the trained model.
"""

import itertools
from dataclasses import dataclass
from typing import Literal

import torch

from models.data import Task

Direction = Literal["maximize", "minimize"]
_CLASS: tuple[Task, ...] = ("multiclass", "binary")


@dataclass(frozen=True)
class Metric:
    name: str
    tasks: tuple[Task, ...]
    per_epoch: bool
    direction: Direction
    doc: str


METRICS: dict[str, Metric] = {
    m.name: m
    for m in (
        Metric(
            "val_loss", ("multiclass", "binary", "regression"), True, "minimize", "Validation loss."
        ),
        Metric(
            "train_loss", ("multiclass", "binary", "regression"), True, "minimize", "Training loss."
        ),
        Metric(
            "val_gap",
            ("multiclass", "binary", "regression"),
            True,
            "minimize",
            "Generalization gap: val_loss - train_loss (over-fitting shows as a growing gap).",
        ),
        Metric("val_accuracy", _CLASS, True, "maximize", "Validation accuracy."),
        Metric("val_f1_macro", _CLASS, True, "maximize", "Macro-averaged F1 over classes."),
        Metric("val_f1", ("binary",), True, "maximize", "F1 of the positive class (binary)."),
        Metric("val_rmse", ("regression",), True, "minimize", "Root mean squared error."),
        Metric("val_mae", ("regression",), True, "minimize", "Mean absolute error."),
        Metric(
            "param_count",
            ("multiclass", "binary", "regression"),
            False,
            "minimize",
            "Trainable parameters.",
        ),
        Metric(
            "latency_ms",
            ("multiclass", "binary", "regression"),
            False,
            "minimize",
            "Inference time per sample (ms, batch of the validation set).",
        ),
        Metric(
            "mc_nll", _CLASS, False, "minimize", "MC-dropout predictive negative log-likelihood."
        ),
        Metric(
            "mc_ece", _CLASS, False, "minimize", "MC-dropout expected calibration error (15 bins)."
        ),
        Metric("value", (), False, "minimize", "A function task's value (task.kind: function)."),
        Metric(
            "val_episode_accuracy",
            (),
            True,
            "maximize",
            "Mean query accuracy over meta-validation episodes (task.kind: fewshot).",
        ),
        Metric(
            "val_episode_ci95",
            (),
            True,
            "minimize",
            "Half-width of val_episode_accuracy's 95% interval (task.kind: fewshot).",
        ),
    )
}
# The metrics of one task kind only (no dataset task measures them), by kind.
_KIND_ONLY = {"val_episode_accuracy": "fewshot", "val_episode_ci95": "fewshot"}


def list_metrics() -> list[str]:
    return list(METRICS)


def metric_error(name: str, task: Task) -> str | None:
    """Why ``name`` cannot be measured on a ``task`` dataset, or None."""
    if name not in METRICS:
        return f"unknown metric {name!r}; valid: {', '.join(METRICS)}"
    if not METRICS[name].tasks:
        kind = _KIND_ONLY.get(name, "function")
        return f"{name} is measured by {kind} tasks (task.kind: {kind}) only"
    if task not in METRICS[name].tasks:
        return f"{name} needs a {' or '.join(METRICS[name].tasks)} dataset; this one is {task}"
    return None


def f1_scores(pred: torch.Tensor, target: torch.Tensor, n_classes: int) -> torch.Tensor:
    """F1 of every class. Shapes: (N,), (N,) → (n_classes,). A class never predicted nor
    present scores 0, as in scikit-learn's ``zero_division=0``."""
    tp = torch.bincount(target[pred == target], minlength=n_classes).float()
    denom = torch.bincount(pred, minlength=n_classes) + torch.bincount(target, minlength=n_classes)
    return torch.where(denom > 0, 2 * tp / denom.clamp(min=1), torch.zeros_like(tp))


def expected_calibration_error(probs: torch.Tensor, target: torch.Tensor, bins: int = 15) -> float:
    """ECE: the gap between confidence and accuracy, averaged over confidence bins."""
    conf, pred = probs.max(dim=1)
    correct = (pred == target).float()
    edges = torch.linspace(0, 1, bins + 1, device=probs.device)
    ece = torch.zeros((), device=probs.device)
    for lo, hi in itertools.pairwise(edges):
        mask = (conf > lo) & (conf <= hi)
        if mask.any():
            ece += mask.float().mean() * (conf[mask].mean() - correct[mask].mean()).abs()
    return float(ece)
