"""The pre-flight check on real data and real networks: each scenario of issue 17 is flagged
with its sentence (a diverging learning rate, dead ReLUs, labels shuffled against their inputs)
and a healthy spec passes."""

import json
import math
from dataclasses import replace

import numpy as np
import pytest
import torch
from torch import nn

from models.data import Dataset, load_dataset
from models.preflight import check_point
from models.preflight.fits import lr_range_test
from models.preflight.stats import layer_stats

MLP = {"family": "mlp", "hidden_layers": 2, "width": 64}


@pytest.fixture(scope="module")
def digits() -> Dataset:
    return load_dataset("digits")


def test_a_healthy_spec_passes(digits: Dataset) -> None:
    report = check_point(MLP, {"lr": 1e-3}, digits, seed=0)
    assert report.passed, report.findings
    assert report.codes() == set()
    assert report.findings[0].code == "healthy"
    # The measurements behind it: the loss starts at ln 10, a tiny subset is memorized, and
    # a short fit on the whole split is far above chance on validation.
    assert report.initial_loss["expected"] == pytest.approx(math.log(10))
    assert abs(report.initial_loss["loss"] - math.log(10)) < 0.3
    assert report.overfit["train_accuracy"] == 1.0
    assert report.short_fit["val_accuracy"] > 0.8
    assert report.data["input_shape"] == [1, 8, 8]
    assert sum(report.data["class_counts"]) == len(digits.x_train)
    assert abs(report.data["x_mean"]) < 0.1  # standardized
    assert all(r.get("dead_fraction", 0.0) < 0.1 for r in report.layers)
    # The range test's suggestion brackets a learning rate that trains well.
    low, high = report.lr_range["suggested"]
    assert 1e-5 < low < high < 1.0
    lr_line = next(f for f in report.findings if f.code == "lr_range")
    assert lr_line.field == "training.lr" and "log-uniform" in lr_line.message


def test_a_diverging_learning_rate_is_flagged(digits: Dataset) -> None:
    report = check_point(MLP, {"optimizer": "sgd", "lr": 5.0}, digits, seed=0)
    assert not report.passed
    assert "lr_diverges" in report.codes()
    finding = next(f for f in report.findings if f.code == "lr_diverges")
    assert finding.severity == "error" and finding.field == "training.lr"
    assert finding.message.startswith("training.lr = 5 diverges")
    # What to change: bounds below the configured rate, from the range test.
    low, high = report.lr_range["suggested"]
    assert high < 5.0
    assert f"[{low:.3g}, {high:.3g}]" in finding.message
    # Not mistaken for a data problem.
    assert "labels_unlearnable" not in report.codes()


def test_dead_relus_from_raw_inputs_are_flagged(digits: Dataset) -> None:
    # Inputs offset far below zero and not scaled: every unit of the first ReLU layer whose
    # weights sum positive sees only negative inputs.
    shifted = replace(digits, x_train=digits.x_train - 1000, x_val=digits.x_val - 1000)
    report = check_point(MLP, {"preprocess": "none"}, shifted, seed=0)
    assert not report.passed
    assert {"dead_relu", "inputs_unscaled"} <= report.codes()
    dead = next(f for f in report.findings if f.code == "dead_relu")
    assert "output zero for every sample" in dead.message
    assert "training.preprocess: standardize" in dead.message
    assert max(r.get("dead_fraction", 0.0) for r in report.layers) >= 0.3


def test_dead_relus_from_a_huge_negative_bias_are_measured() -> None:
    # Bad init + huge bias: every hidden unit's pre-activation is negative for any input.
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 16), nn.ReLU(), nn.Linear(16, 3))
    nn.init.normal_(net[0].weight, std=0.01)
    nn.init.constant_(net[0].bias, -100.0)
    x, y = torch.randn(64, 8), torch.randint(0, 3, (64,))
    _, rows, grads = layer_stats(net, x, y, nn.functional.cross_entropy)
    assert rows[0]["layer"] == "1" and rows[0]["dead_fraction"] == 1.0
    assert grads["0.weight"] == 0.0  # dead units pass no gradient back
    # A healthy init of the same network keeps most units alive.
    healthy = nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 3))
    _, rows, _ = layer_stats(healthy, x, y, nn.functional.cross_entropy)
    assert rows[0]["dead_fraction"] < 0.3


def test_labels_shuffled_against_inputs_are_a_data_problem(digits: Dataset) -> None:
    rng = np.random.default_rng(0)
    shuffled = replace(digits, y_train=rng.permutation(digits.y_train))
    report = check_point(MLP, {"lr": 1e-3}, shuffled, seed=0)
    assert not report.passed
    assert report.codes() == {"labels_unlearnable"}
    finding = report.findings[0]
    assert "a data problem, not a model problem" in finding.message
    # The tiny subset is memorized (the model can learn) while validation stays at chance.
    assert report.overfit["train_accuracy"] == 1.0
    assert report.short_fit["val_accuracy"] < 0.2


def test_a_slow_optimizer_is_not_mistaken_for_a_data_problem(digits: Dataset) -> None:
    # Too few steps at too low a rate: validation after the short fit is near chance, but
    # what the tiny subset taught already carries over to validation samples.
    report = check_point(MLP, {"lr": 1e-4, "batch_size": 256}, digits, seed=0)
    assert report.short_fit["val_accuracy"] < 0.2
    assert report.overfit["val_accuracy"] > 0.3
    assert "labels_unlearnable" not in report.codes()
    assert "cannot_overfit" in report.codes()  # raise training.lr, it says


def test_a_network_that_cannot_learn_is_a_model_problem(digits: Dataset) -> None:
    # One unit wide: it cannot tell 10 classes apart, whatever the data.
    report = check_point({"family": "mlp", "hidden_layers": 1, "width": 1}, {}, digits, seed=0)
    assert "cannot_overfit" in report.codes()
    assert "labels_unlearnable" not in report.codes()


def test_the_range_test_stops_where_the_loss_runs_away(digits: Dataset) -> None:
    x = torch.tensor(digits.x_train).flatten(1)
    x = (x - x.mean(0)) / x.std(0).clamp(min=1)
    y = torch.tensor(digits.y_train)
    net = nn.Sequential(nn.Linear(64, 32), nn.ReLU(), nn.Linear(32, 10))
    from models.training.config import TrainConfig

    out = lr_range_test(
        net, TrainConfig(optimizer="sgd"), x, y, nn.functional.cross_entropy, steps=80
    )
    assert out["diverge_lr"] is not None and out["best_lr"] < out["diverge_lr"]
    assert out["losses"][0] > min(out["losses"])  # the loss fell before it ran away
    assert len(out["lrs"]) == len(out["losses"]) < 80


def test_the_report_is_plain_json(digits: Dataset) -> None:
    report = check_point(MLP, {"optimizer": "sgd", "lr": 5.0}, digits, seed=0)
    doc = json.loads(json.dumps(report.to_dict(), allow_nan=False))
    assert doc["passed"] is False
    assert {f["code"] for f in doc["findings"]} >= {"lr_diverges"}


@pytest.mark.gpu
def test_the_check_runs_on_a_gpu(digits: Dataset) -> None:
    if not torch.cuda.is_available():
        pytest.skip("no CUDA device")
    healthy = check_point(MLP, {"lr": 1e-3}, digits, seed=0, device="cuda")
    assert healthy.passed, healthy.findings
    diverging = check_point(MLP, {"optimizer": "sgd", "lr": 5.0}, digits, seed=0, device="cuda")
    assert "lr_diverges" in diverging.codes()
