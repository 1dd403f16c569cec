"""Deep ensembles of trained classifiers: members rebuilt from their exports, combined by
averaging, voting or Caruana's greedy forward selection, scored on validation (metric, NLL,
ECE) and exported as one TorchScript module.

Members are :class:`~models.training.export.Exported` modules (raw inputs in, logits out), as
each trial saved them (``weights.pt`` with the ``model`` and ``training`` of its spec.json).
"""

import io
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import torch
from torch import nn

from models.data import DatasetInfo
from models.families import build_model
from models.metrics import expected_calibration_error, f1_scores
from models.training.config import TrainConfig, n_outputs, resolve_loss
from models.training.export import (
    Exported,
    Standardize,
    predict,
    torchscript_bytes,
    weights_bytes,
)

Method = Literal["average", "vote", "greedy"]
METHODS: tuple[Method, ...] = ("average", "vote", "greedy")
GREEDY_ROUNDS = 25  # Caruana's forward selection: additions tried, with replacement


def rebuild(
    model: Mapping[str, Any], training: Mapping[str, Any], info: DatasetInfo, weights: bytes
) -> Exported:
    """A trained member from its spec's ``model`` and ``training`` and its ``weights.pt``.

    Raises:
        ValueError: the weights do not fit the network the spec builds.
    """
    cfg = TrainConfig(**training)
    net = build_model(dict(model), info.input_shape, n_outputs(cfg, info))
    shape = info.input_shape
    pre = Standardize(torch.zeros(shape), torch.ones(shape))
    post = (
        Standardize(torch.zeros(info.n_outputs), torch.ones(info.n_outputs))
        if info.task == "regression"
        else None
    )
    member = Exported(pre, net, post)
    state = torch.load(io.BytesIO(weights), map_location="cpu", weights_only=True)
    try:
        member.load_state_dict(state)
    except RuntimeError as exc:
        raise ValueError(f"the weights do not fit the member's network: {exc}") from exc
    return member.train(False)


def probabilities(member: nn.Module, x: torch.Tensor, loss: str) -> torch.Tensor:
    """Class probabilities (N, C) of one member: softmax of its logits, or for a BCE member
    (one logit) the pair (1 - p, p)."""
    with torch.no_grad():
        out = predict(member, x, 4096).float()
    if loss == "bce":
        p1 = torch.sigmoid(out.squeeze(1))
        return torch.stack([1 - p1, p1], dim=1)
    return torch.softmax(out, dim=1)


def nll(probs: torch.Tensor, y: torch.Tensor) -> float:
    """Mean negative log-likelihood of the labels ``y`` under ``probs``."""
    return float(-torch.log(probs[torch.arange(len(y)), y].clamp(min=1e-12)).mean())


def scores(probs: torch.Tensor, y: torch.Tensor, n_classes: int) -> dict[str, float]:
    """Validation accuracy, macro F1 (and the positive class's F1 when binary), NLL, ECE."""
    pred = probs.argmax(dim=1)
    f1 = f1_scores(pred, y, n_classes)
    out = {
        "val_accuracy": float((pred == y).float().mean()),
        "val_f1_macro": float(f1.mean()),
        "nll": nll(probs, y),
        "ece": expected_calibration_error(probs, y),
    }
    if n_classes == 2:
        out["val_f1"] = float(f1[1])
    return out


def vote_probabilities(member_probs: Sequence[torch.Tensor]) -> torch.Tensor:
    """The majority vote's class scores: each member's vote counts one, and its mean
    probability breaks ties; what is reported as probabilities (NLL, ECE) is the members'
    mean probability, so a vote scores the same likelihood as an average and differs in its
    predicted class only."""
    stacked = torch.stack(list(member_probs))  # (M, N, C)
    votes = nn.functional.one_hot(stacked.argmax(dim=2), stacked.shape[2]).float().mean(0)
    return votes + 1e-3 * stacked.mean(0)


def greedy_weights(
    member_probs: Sequence[torch.Tensor], y: torch.Tensor, rounds: int = GREEDY_ROUNDS
) -> list[int]:
    """Caruana et al. (2004): start from the best member, then repeatedly add (with
    replacement) the member whose addition lowers the ensemble's NLL on ``y`` most; keep the
    prefix that scored best. Returns how many times each member was picked."""
    counts = [0] * len(member_probs)
    total = torch.zeros_like(member_probs[0])
    best_nll, best_counts = math.inf, list(counts)
    for step in range(1, rounds + 1):
        trial = [nll((total + p) / step, y) for p in member_probs]
        pick = int(np.argmin(trial))
        counts[pick] += 1
        total = total + member_probs[pick]
        if trial[pick] < best_nll - 1e-9:
            best_nll, best_counts = trial[pick], list(counts)
    return best_counts


class Ensemble(nn.Module):
    """Raw inputs in, (N, C) out: the log of the weighted mean of the members' class
    probabilities (``average``, ``greedy``), or the vote's scores (``vote``)."""

    weights: torch.Tensor

    def __init__(
        self, members: Sequence[nn.Module], weights: Sequence[float], loss: str, vote: bool
    ) -> None:
        super().__init__()
        self.members = nn.ModuleList(members)
        w = torch.tensor([float(v) for v in weights])
        self.register_buffer("weights", w / w.sum())
        self.bce, self.vote = loss == "bce", vote

    def _probs(self, member: nn.Module, x: torch.Tensor) -> torch.Tensor:
        out = member(x).float()
        if self.bce:
            p1 = torch.sigmoid(out[:, 0])
            return torch.stack([1 - p1, p1], dim=1)
        return torch.softmax(out, dim=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        probs = [self._probs(m, x) for m in self.members]
        if self.vote:
            return vote_probabilities(probs)
        mean = (self.weights[:, None, None] * torch.stack(probs)).sum(0)  # (M, N, C) → (N, C)
        return torch.log(mean.clamp(min=1e-12))


@dataclass
class Built:
    """An ensemble and what it scored: its ``weights`` per member (0: left out)."""

    weights: list[float]
    metrics: dict[str, float]
    member_metrics: list[dict[str, float]]
    torchscript: bytes
    state_dict: bytes  # of the TorchScript's module (:class:`Ensemble`)


def build(
    members: Sequence[nn.Module],
    method: Method,
    info: DatasetInfo,
    training: Mapping[str, Any],
    x_val: np.ndarray,
    y_val: np.ndarray,
) -> Built:
    """Combine ``members`` (best first) by ``method``, score on the validation split, export.

    Raises:
        ValueError: a regression dataset (ensembles here combine class probabilities).
    """
    if info.task == "regression":
        raise ValueError("ensembles combine class probabilities: this dataset is regression")
    loss = resolve_loss(TrainConfig(**training), info)
    x, y = torch.tensor(x_val), torch.tensor(y_val).long()
    probs = [probabilities(m, x, loss) for m in members]
    member_metrics = [scores(p, y, info.n_outputs) for p in probs]
    if method == "greedy":
        weights = [float(c) for c in greedy_weights(probs, y)]
    else:
        weights = [1.0] * len(members)
    total = sum(weights)
    mean = sum(w / total * p for w, p in zip(weights, probs, strict=True))
    assert isinstance(mean, torch.Tensor)
    metrics = scores(mean, y, info.n_outputs)
    if method == "vote":
        chosen = vote_probabilities(probs).argmax(dim=1)
        f1 = f1_scores(chosen, y, info.n_outputs)
        metrics["val_accuracy"] = float((chosen == y).float().mean())
        metrics["val_f1_macro"] = float(f1.mean())
        if info.n_outputs == 2:
            metrics["val_f1"] = float(f1[1])
    kept = [(m, w) for m, w in zip(members, weights, strict=True) if w > 0]
    module = Ensemble([m for m, _ in kept], [w for _, w in kept], loss, method == "vote")
    torchscript = torchscript_bytes(module.train(False), x[:2])
    return Built(weights, metrics, member_metrics, torchscript, weights_bytes(module))
