"""Ensembles of real trained networks: members rebuilt from their exported weights, combined,
scored (NLL, ECE) and exported as one TorchScript module."""

import io
import math

import numpy as np
import pytest
import torch

from models.data import Dataset, load_dataset
from models.ensemble import build, greedy_weights, nll, rebuild
from models.training.config import TrainConfig
from models.training.results import TrainResult
from models.training.trainer import train

TRAINING = {"epochs": 10, "lr": 3e-3}  # members that fit well: then averaging helps


def _train(data: Dataset, width: int, seed: int) -> tuple[dict, bytes]:
    model = {"family": "mlp", "hidden_layers": 1, "width": width}
    *_, result = train(model, TrainConfig(**TRAINING), data, seed)
    assert isinstance(result, TrainResult)
    return model, result.state_dict


@pytest.fixture(scope="module")
def trained() -> tuple[Dataset, list]:
    data = load_dataset("digits")
    members = []
    for seed, width in enumerate((32, 32, 32, 28, 28)):  # a deep ensemble: seeds differ
        model, weights = _train(data, width, seed)
        members.append(rebuild(model, TRAINING, data.info, weights))
    return data, members


def test_a_rebuilt_member_predicts_like_the_trained_one(trained: tuple[Dataset, list]) -> None:
    data, members = trained
    x = torch.tensor(data.x_val[:50])
    with torch.no_grad():
        acc = (members[0](x).argmax(1).numpy() == data.y_val[:50]).mean()
    assert acc > 0.7  # raw inputs in: the member scales them itself


@pytest.mark.parametrize("method", ["average", "vote", "greedy"])
def test_an_ensemble_beats_its_best_member_on_nll(
    trained: tuple[Dataset, list], method: str
) -> None:
    data, members = trained
    built = build(members, method, data.info, TRAINING, data.x_val, data.y_val)  # type: ignore[arg-type]
    best = min(m["nll"] for m in built.member_metrics)
    assert built.metrics["nll"] < best
    assert 0 <= built.metrics["ece"] < 1 and built.metrics["val_accuracy"] > 0.8
    # The export is one module: raw inputs in, the ensemble's scores out.
    module = torch.jit.load(io.BytesIO(built.torchscript))
    x, y = torch.tensor(data.x_val), torch.tensor(data.y_val)
    with torch.no_grad():
        out = module(x)
    acc = float((out.argmax(1) == y).float().mean())
    assert acc == pytest.approx(built.metrics["val_accuracy"], abs=1e-6)
    if method != "vote":  # log-probabilities: their NLL is the reported one
        assert torch.exp(out).sum(1).allclose(torch.ones(len(x)), atol=1e-4)
        assert nll(torch.exp(out), y) == pytest.approx(built.metrics["nll"], rel=1e-4)


def test_greedy_selection_prefers_the_better_member() -> None:
    y = torch.tensor([0, 1, 0, 1])
    good = torch.tensor([[0.9, 0.1], [0.1, 0.9], [0.8, 0.2], [0.2, 0.8]])
    bad = torch.tensor([[0.5, 0.5]] * 4)
    wrong = torch.tensor([[0.1, 0.9], [0.9, 0.1], [0.2, 0.8], [0.8, 0.2]])
    counts = greedy_weights([bad, good, wrong], y, rounds=10)
    assert counts[1] >= 1 and counts[2] == 0
    assert math.isfinite(nll(good, y))


def test_regression_is_refused(trained: tuple[Dataset, list]) -> None:
    data = load_dataset("diabetes")
    with pytest.raises(ValueError, match="regression"):
        build([], "average", data.info, {}, data.x_val, np.zeros(len(data.x_val)))
