"""The result of a training names the epoch whose weights it exports: the best epoch on the
monitored metric, with or without early stopping, and the exports reproduce that epoch."""

import io
import warnings
from typing import Literal

import pytest
import torch
from torch.nn import functional as F

from models.data import load_dataset
from models.training.config import TrainConfig
from models.training.results import EpochMetrics, TrainResult
from models.training.trainer import train

# A wide MLP at a high learning rate on iris: the validation metrics wander, and with this
# seed the last epoch is worse than an earlier one on both.
MODEL = {"family": "mlp", "width": 64, "hidden_layers": 2}
CFG = TrainConfig(epochs=12, lr=0.05)


@pytest.mark.parametrize(
    "monitor", [("val_loss", "minimize"), ("val_accuracy", "maximize")], ids=lambda m: m[0]
)
def test_the_exported_weights_are_the_best_epochs_without_early_stopping(
    monitor: tuple[str, Literal["maximize", "minimize"]],
) -> None:
    data = load_dataset("iris")
    *epochs, result = list(train(MODEL, CFG, data, seed=0, monitor=monitor))
    assert isinstance(result, TrainResult)
    assert all(isinstance(e, EpochMetrics) for e in epochs) and len(epochs) == CFG.epochs
    name, direction = monitor
    scores = [e.metrics[name] for e in epochs]  # type: ignore[union-attr]
    best = max(scores) if direction == "maximize" else min(scores)
    first_best = 1 + scores.index(best)  # a tie keeps the earlier epoch
    assert first_best < CFG.epochs and scores[-1] != best  # the case at hand: the last is worse

    assert result.best_epoch == first_best and not result.stopped_early
    kept = epochs[first_best - 1].metrics  # type: ignore[union-attr]
    assert {k: result.metrics[k] for k in kept} == kept  # that epoch's metrics, not the last's

    # The downloaded TorchScript takes raw inputs and scores exactly that epoch.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        scripted = torch.jit.load(io.BytesIO(result.torchscript))
    x, y = torch.tensor(data.x_val), torch.tensor(data.y_val)
    with torch.no_grad():
        logits = scripted(x)
    accuracy = float((logits.argmax(1) == y).float().mean())
    assert accuracy == pytest.approx(kept["val_accuracy"], abs=1e-6)
    assert float(F.cross_entropy(logits, y)) == pytest.approx(kept["val_loss"], rel=1e-5)
    last = epochs[-1].metrics  # type: ignore[union-attr]
    assert abs(last[name] - kept[name]) > 1e-3  # so the check above tells them apart
