"""Every catalog entry builds, runs forward and backward, and trains an epoch on real data.

The registries drive the parameter lists: adding a family, activation, norm, init, loss,
optimizer, schedule or metric adds its test case.
"""

import io
import math
from typing import Any

import numpy as np
import pytest
import torch
from torch import nn

from models.data import Dataset, dataset_info, list_datasets, load_dataset
from models.families import build_model, check_model, get_family, list_families
from models.families.conv import BLOCKS
from models.layers import DropConnectLinear, list_activations, list_inits, list_norms
from models.metrics import METRICS, list_metrics
from models.training.config import LOSSES, OPTIMIZERS, PREPROCESS, SCHEDULES, TrainConfig, n_outputs
from models.training.export import Exported, Standardize
from models.training.results import EpochMetrics, NonFiniteLossError, TrainResult
from models.training.steps import Schedule
from models.training.trainer import train

# A small real dataset of each kind a family may take.
DATA_FOR_KIND = {
    "image": "digits",
    "tabular": "iris",
    "sequence": "waveforms",
    "graph": "motifs",
}
SMALL = {"waveforms": {"n_samples": 120, "length": 32}}
# The macro family's default stages are conv stages; on graphs it takes graph stages.
FIELDS_ON = {("macro", "motifs"): {"blocks": ["gcn", "gin"]}}


def dataset(name: str) -> Dataset:
    return load_dataset(name, options=SMALL.get(name))


def run(
    model: dict[str, Any], data: Dataset, **training: Any
) -> tuple[list[EpochMetrics], TrainResult]:
    events = list(train(model, TrainConfig(**{"epochs": 1, **training}), data, seed=0))
    *epochs, result = events
    assert isinstance(result, TrainResult)
    assert all(isinstance(e, EpochMetrics) for e in epochs)
    return epochs, result  # type: ignore[return-value]


def forward_backward(model: dict[str, Any], data_name: str) -> nn.Module:
    info = dataset_info(data_name, SMALL.get(data_name))
    assert check_model(model, info) == []
    net = build_model(model, info.input_shape, info.n_outputs)
    x = torch.randn(4, *info.input_shape)
    out = net(x)
    assert out.shape == (4, info.n_outputs)
    out.square().mean().backward()
    missing = [n for n, p in net.named_parameters() if p.grad is None]
    assert missing == [], f"parameters without gradient: {missing}"
    return net


def family_cases() -> list[tuple[str, str]]:
    return [(f, DATA_FOR_KIND[kind]) for f in list_families() for kind in get_family(f).kinds]


@pytest.mark.slow  # an epoch of every family on every kind of data: some 15 s
@pytest.mark.parametrize(("family", "data_name"), family_cases())
def test_every_family_on_every_kind_it_accepts(family: str, data_name: str) -> None:
    model = {"family": family, **FIELDS_ON.get((family, data_name), {})}
    forward_backward(model, data_name)
    epochs, result = run(model, dataset(data_name))
    assert len(epochs) == 1 and math.isfinite(epochs[0].metrics["val_loss"])
    assert result.metrics["param_count"] > 0


@pytest.mark.parametrize("block", BLOCKS)
@pytest.mark.parametrize("dims_family", ["cnn", "conv1d"])
def test_every_block_type(block: str, dims_family: str) -> None:
    data_name = "digits" if dims_family == "cnn" else "waveforms"
    model = {"family": dims_family, "block": block, "stages": 2, "width": 8}
    forward_backward(model, data_name)
    run(model, dataset(data_name))


@pytest.mark.parametrize("skip", [True, False])
def test_residual_skip_is_searchable(skip: bool) -> None:
    net = forward_backward({"family": "resnet", "skip": skip, "width": 8}, "digits")
    assert any(getattr(m, "skip", None) is skip for m in net.modules())


@pytest.mark.parametrize("activation", list_activations())
def test_every_activation(activation: str) -> None:
    model = {"family": "mlp", "activation": activation, "width": 16, "leaky_slope": 0.2}
    net = forward_backward(model, "iris")
    if activation == "leaky_relu":
        assert any(isinstance(m, nn.LeakyReLU) and m.negative_slope == 0.2 for m in net.modules())
    run(model, dataset("iris"))


@pytest.mark.parametrize("norm", list_norms())
@pytest.mark.parametrize("family", ["mlp", "cnn", "conv1d"])
def test_every_norm(norm: str, family: str) -> None:
    data_name = {"mlp": "iris", "cnn": "digits", "conv1d": "waveforms"}[family]
    model = {"family": family, "norm": norm, "groups": 4, "width": 16}
    if family == "mlp":
        model["width"] = 16
    info = dataset_info(data_name, SMALL.get(data_name))
    if norm == "instance" and family == "mlp":
        assert check_model(model, info) == [
            ("norm", "instance norm needs spatial inputs (a conv family); dense layers have none")
        ]
        return
    forward_backward(model, data_name)
    run(model, dataset(data_name))


def test_group_count_must_divide_the_width() -> None:
    errors = check_model(
        {"family": "cnn", "norm": "group", "groups": 3, "width": 16}, dataset_info("digits")
    )
    assert errors == [("groups", "group norm: 3 groups do not divide 16 channels")]


@pytest.mark.parametrize("init", list_inits())
def test_every_init(init: str) -> None:
    torch.manual_seed(0)
    net = forward_backward(
        {"family": "mlp", "init": init, "width": 256, "hidden_layers": 2}, "digits"
    )
    hidden = [m for m in net.modules() if isinstance(m, nn.Linear)][1]  # 256 x 256
    w = hidden.weight.detach()
    fan_in = w.shape[1]
    expected_std = {
        "xavier_uniform": math.sqrt(2 / (2 * fan_in)),
        "xavier_normal": math.sqrt(2 / (2 * fan_in)),
        "kaiming_uniform": math.sqrt(2 / fan_in),
        "kaiming_normal": math.sqrt(2 / fan_in),
        "orthogonal": math.sqrt(1 / fan_in),
        "normal": 0.02,
        "default": math.sqrt(1 / (3 * fan_in)),  # PyTorch: U(-1/sqrt(fan_in), 1/sqrt(fan_in))
    }[init]
    assert float(w.std()) == pytest.approx(expected_std, rel=0.08)
    if init == "orthogonal":
        assert torch.allclose(w @ w.T, torch.eye(256), atol=1e-4)
    if init != "default":
        assert float(hidden.bias.abs().max()) == 0.0


@pytest.mark.parametrize("loss", [name for name in LOSSES if name != "auto"])
def test_every_loss(loss: str) -> None:
    data_name = {"cross_entropy": "iris", "bce": "breast_cancer"}.get(loss, "diabetes")
    data = dataset(data_name)
    cfg = TrainConfig(loss=loss, huber_delta=0.5)
    assert n_outputs(cfg, data.info) == (1 if loss == "bce" else data.info.n_outputs)
    _, result = run({"family": "mlp", "width": 16}, data, loss=loss, huber_delta=0.5)
    assert math.isfinite(result.metrics["val_loss"])


@pytest.mark.parametrize("optimizer", OPTIMIZERS)
def test_every_optimizer_learns(optimizer: str) -> None:
    extra = {"momentum": 0.9, "nesterov": True} if optimizer == "sgd" else {}
    lr = 0.05 if optimizer == "sgd" else 0.01
    epochs, _ = run(
        {"family": "mlp", "width": 32},
        dataset("iris"),
        optimizer=optimizer,
        lr=lr,
        epochs=15,
        **extra,
    )
    assert epochs[-1].metrics["val_accuracy"] > 0.8, epochs[-1].metrics


@pytest.mark.parametrize("schedule", SCHEDULES)
def test_every_schedule(schedule: str) -> None:
    cfg = TrainConfig(
        schedule=schedule,
        lr=1.0,
        epochs=10,
        warmup_epochs=2,
        step_size=3,
        gamma=0.5,
        plateau_patience=1,
        plateau_factor=0.5,
    )
    sched = Schedule(cfg)
    lrs = []
    for epoch in range(10):
        lrs.append(sched.lr(epoch))
        sched.observe(1.0)  # a flat validation loss: plateau decays
    assert lrs[:2] == pytest.approx([1 / 3, 2 / 3])  # linear warm-up
    expected_after = {
        "none": [1.0] * 8,
        "step": [1, 1, 1, 0.5, 0.5, 0.5, 0.25, 0.25],
        "cosine": [0.5 * (1 + math.cos(math.pi * e / 8)) for e in range(8)],
        "plateau": None,
    }[schedule]
    if expected_after is not None:
        assert lrs[2:] == pytest.approx(expected_after)
    else:
        assert lrs[-1] < lrs[2]  # decayed on the plateau
    run({"family": "mlp", "width": 8}, dataset("iris"), schedule=schedule, epochs=3)


@pytest.mark.parametrize("preprocess", PREPROCESS)
def test_preprocessing_is_fitted_on_the_training_split_only(preprocess: str) -> None:
    data = dataset("wine")
    _, result = run({"family": "mlp", "width": 8}, data, preprocess=preprocess)
    state = torch.load(io.BytesIO(result.state_dict), weights_only=True)
    shift, scale = state["pre.shift"].numpy(), state["pre.scale"].numpy()
    x = data.x_train
    if preprocess == "standardize":
        assert np.allclose(shift, x.mean(0), rtol=1e-5) and np.allclose(scale, x.std(0), rtol=1e-5)
        assert not np.allclose(shift, data.x_val.mean(0), rtol=1e-3)
    elif preprocess == "minmax":
        assert np.allclose(shift, x.min(0)) and np.allclose(scale, x.max(0) - x.min(0))
    else:
        assert np.all(shift == 0) and np.all(scale == 1)


@pytest.mark.parametrize("metric", list_metrics())
def test_every_metric_is_measured_on_its_tasks(metric: str) -> None:
    for task in METRICS[metric].tasks:
        name = {"multiclass": "iris", "binary": "breast_cancer", "regression": "diabetes"}[task]
        epochs, result = run({"family": "mlp", "width": 16, "dropout": 0.2}, dataset(name))
        assert math.isfinite(result.metrics[metric])
        assert (metric in epochs[0].metrics) == METRICS[metric].per_epoch


def test_regularizers_change_training() -> None:
    data = dataset("digits")
    base = {"family": "mlp", "width": 32}
    _, plain = run(base, data, epochs=2)
    for model, training in [
        ({**base, "dropout": 0.5}, {}),
        ({**base, "dropconnect": 0.5}, {}),
        (base, {"l1": 1e-3}),
        (base, {"l2": 1e-2}),
        (base, {"l1": 1e-3, "l2": 1e-2}),  # elastic net
        (base, {"weight_decay": 0.1}),
        (base, {"augment_shift": 1}),
        (base, {"augment_noise": 0.5}),
        (base, {"clip_norm": 0.1}),
        (base, {"clip_value": 0.001}),
    ]:
        _, regularized = run(model, data, epochs=2, **training)
        assert regularized.metrics["train_loss"] != plain.metrics["train_loss"], (model, training)


def test_spatial_dropout_drops_whole_channels() -> None:
    net = forward_backward({"family": "cnn", "spatial_dropout": 0.5, "width": 8}, "digits")
    drops = [m for m in net.modules() if isinstance(m, nn.Dropout2d)]
    assert drops
    drops[0].train()
    out = drops[0](torch.ones(2, 8, 4, 4))
    per_channel = out.flatten(2)
    assert torch.all((per_channel == 0).all(-1) | (per_channel == 2).all(-1))


def test_dropconnect_masks_weights_only_in_training() -> None:
    layer = DropConnectLinear(64, 64, p=0.5)
    x = torch.ones(1, 64)
    layer.train()
    assert not torch.allclose(layer(x), layer(x))  # a fresh weight mask per pass
    layer.eval()
    assert torch.allclose(layer(x), nn.functional.linear(x, layer.weight, layer.bias))


def test_early_stopping_keeps_the_best_epoch() -> None:
    data = dataset("iris")
    epochs, result = run(
        {"family": "mlp", "width": 256, "hidden_layers": 3},
        data,
        epochs=200,
        lr=0.05,
        early_stopping_patience=3,
    )
    assert result.stopped_early and len(epochs) < 200
    losses = [e.metrics["val_loss"] for e in epochs]
    assert result.best_epoch == 1 + int(np.argmin(losses))
    assert result.metrics["val_loss"] == min(losses)
    assert len(epochs) - result.best_epoch == 3


def test_huge_learning_rate_fails_with_the_epoch() -> None:
    with pytest.raises(NonFiniteLossError, match=r"^non-finite (loss|gradient) at epoch 1$"):
        run({"family": "mlp"}, dataset("digits"), optimizer="sgd", lr=1e8, epochs=3)


def test_nan_inputs_fail_at_once() -> None:
    data = dataset("iris")
    x = data.x_train.copy()
    x[3, 0] = np.nan
    broken = Dataset(data.info, x, data.y_train, data.x_val, data.y_val)
    with pytest.raises(NonFiniteLossError, match="non-finite loss at epoch 1"):
        run({"family": "mlp"}, broken, preprocess="none")


def test_training_is_reproducible_with_the_seed() -> None:
    data = dataset("digits")
    model = {"family": "cnn", "width": 8, "spatial_dropout": 0.1}
    a, _ = run(model, data, epochs=2, augment_shift=1)
    b, _ = run(model, data, epochs=2, augment_shift=1)
    assert [e.metrics for e in a] == [e.metrics for e in b]


@pytest.mark.parametrize("data_name", ["digits", "breast_cancer", "diabetes"])
def test_exports_reproduce_the_model(data_name: str) -> None:
    import warnings

    data = dataset(data_name)
    model = {"family": "mlp", "width": 16}
    _, result = run(model, data, epochs=2)
    cfg = TrainConfig()
    info = data.info
    net = build_model(model, info.input_shape, n_outputs(cfg, info))
    ones = torch.ones(info.input_shape)
    post = Standardize(torch.zeros(1), torch.ones(1)) if info.task == "regression" else None
    exported = Exported(Standardize(torch.zeros(info.input_shape), ones), net, post)
    exported.load_state_dict(torch.load(io.BytesIO(result.state_dict), weights_only=True))
    exported.eval()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        scripted = torch.jit.load(io.BytesIO(result.torchscript))
    x = torch.tensor(data.x_val)
    with torch.no_grad():
        eager, traced = exported(x), scripted(x)
    assert torch.allclose(eager, traced, atol=1e-5)
    if info.task == "regression":  # outputs in the targets' own units
        rmse = float((eager - torch.tensor(data.y_val)).pow(2).mean().sqrt())
        assert rmse == pytest.approx(result.metrics["val_rmse"], rel=1e-4)
    else:
        labels = eager.squeeze(1) > 0 if info.task == "binary" else eager.argmax(1)
        acc = float((labels.long() == torch.tensor(data.y_val)).float().mean())
        assert acc == pytest.approx(result.metrics["val_accuracy"], abs=1e-6)


@pytest.mark.parametrize("name", list_datasets())
def test_every_dataset_trains_an_epoch(name: str) -> None:
    data = dataset(name)
    model = {"family": "mlp", "width": 8}
    _, result = run(model, data)
    assert math.isfinite(result.metrics["val_loss"])


def test_non_finite_reason_names_the_gradient_when_it_was_the_gradient() -> None:
    from models.training.steps import non_finite_reason

    w = torch.zeros(3, requires_grad=True)
    w.grad = torch.tensor([0.0, float("nan"), 1.0])
    assert non_finite_reason([w], epoch=4, last_step_epoch=3) == "non-finite gradient at epoch 3"
    w.grad = torch.ones(3)
    assert non_finite_reason([w], epoch=4, last_step_epoch=3) == "non-finite loss at epoch 4"


def test_clipping_checks_the_gradient_norm_every_step() -> None:
    data = dataset("digits")
    with pytest.raises(NonFiniteLossError, match=r"^non-finite (loss|gradient) at epoch 1$"):
        run({"family": "mlp"}, data, optimizer="sgd", lr=1e8, clip_value=1e30, clip_norm=1e30)
    epochs, _ = run({"family": "mlp"}, data, epochs=2, clip_norm=0.5)
    assert epochs[-1].metrics["grad_norm"] > 0


@pytest.mark.parametrize("n_classes", [2, 5])
def test_f1_matches_scikit_learn(n_classes: int) -> None:
    from sklearn.metrics import f1_score

    from models.metrics import f1_scores

    g = torch.Generator().manual_seed(n_classes)
    pred = torch.randint(0, n_classes, (400,), generator=g)
    target = torch.randint(0, n_classes, (400,), generator=g)
    expected = f1_score(target, pred, average=None, labels=range(n_classes), zero_division=0)
    assert np.allclose(f1_scores(pred, target, n_classes).numpy(), expected, atol=1e-6)


def test_ece_of_a_perfectly_calibrated_and_an_overconfident_model() -> None:
    from models.metrics import expected_calibration_error

    target = torch.tensor([0, 1] * 50)
    confident_right = torch.nn.functional.one_hot(target, 2).float()
    assert expected_calibration_error(confident_right, target) == pytest.approx(0.0)
    confident_wrong = torch.nn.functional.one_hot(1 - target, 2).float()
    assert expected_calibration_error(confident_wrong, target) == pytest.approx(1.0)


def test_every_epoch_reports_the_generalization_gap_as_a_catalog_metric() -> None:
    from models.metrics import METRICS

    epochs, result = run({"family": "mlp"}, dataset("digits"), epochs=2)
    for epoch in epochs:
        m = epoch.metrics
        assert m["val_gap"] == pytest.approx(m["val_loss"] - m["train_loss"])
    assert "val_gap" in result.metrics  # a constraint or an objective reads it at the end
    assert METRICS["val_gap"].per_epoch and METRICS["val_gap"].direction == "minimize"
