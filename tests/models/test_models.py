"""Unit tests of ``models/``: registries, the MLP, datasets and the training loop."""

import math
from dataclasses import replace

import numpy as np
import pytest
import torch
from sklearn import datasets as skd
from torch import nn

from models.builder import MLP, build_model, family_fields, list_families
from models.data import Dataset, list_datasets, load_dataset
from models.layers import create_act_layer, list_activations
from models.train import EpochMetrics, NonFiniteLossError, TrainConfig, list_optimizers, train

SMALL_MLP = {"family": "mlp", "hidden_layers": 1, "width": 32}


@pytest.fixture(scope="module")
def digits() -> Dataset:
    return load_dataset("digits")


# -- layers and builder -----------------------------------------------------------------------


@pytest.mark.parametrize("name", list_activations())
def test_every_activation_builds_and_runs_in_an_mlp(name: str) -> None:
    torch.manual_seed(0)
    spec = {"family": "mlp", "hidden_layers": 2, "width": 8, "activation": name, "dropout": 0.1}
    model = build_model(spec, in_features=5, out_features=3)
    x = torch.randn(4, 5)

    logits = model(x)
    logits.sum().backward()

    assert logits.shape == (4, 3)
    assert torch.isfinite(logits).all()
    act_type = type(create_act_layer(name))
    assert sum(isinstance(m, act_type) for m in model.modules()) == 2
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in model.parameters())


def test_activation_registry_is_sorted_and_nonempty() -> None:
    names = list_activations()
    assert names == sorted(names)
    assert {"relu", "gelu", "tanh", "sigmoid"} <= set(names)


def test_unknown_activation_lists_the_valid_names() -> None:
    with pytest.raises(ValueError, match="unknown activation 'relu6'") as info:
        create_act_layer("relu6")
    for name in list_activations():
        assert name in str(info.value)


def test_unknown_activation_fails_building_the_model() -> None:
    with pytest.raises(ValueError, match="relu6"):
        build_model({"family": "mlp", "activation": "relu6"}, 4, 2)


def test_unknown_family_lists_the_valid_names() -> None:
    with pytest.raises(ValueError, match="unknown model family 'transformer'") as info:
        build_model({"family": "transformer"}, 4, 2)
    for family in list_families():
        assert family in str(info.value)


def test_unknown_mlp_field_is_an_error() -> None:
    with pytest.raises(TypeError):
        build_model({"family": "mlp", "depth": 3}, 4, 2)


@pytest.mark.parametrize("family", list_families())
def test_family_defaults_build_a_model(family: str) -> None:
    model = build_model({"family": family, **family_fields(family)}, 6, 4)

    assert model(torch.zeros(2, 6)).shape == (2, 4)


@pytest.mark.parametrize(("hidden_layers", "dropout"), [(1, 0.0), (3, 0.0), (3, 0.5)])
def test_mlp_shape_follows_its_config(hidden_layers: int, dropout: float) -> None:
    spec = {"family": "mlp", "hidden_layers": hidden_layers, "width": 16, "dropout": dropout}
    model = build_model(spec, 7, 2)

    assert isinstance(model, MLP)
    linears = [m for m in model.modules() if isinstance(m, nn.Linear)]
    assert [(m.in_features, m.out_features) for m in linears] == (
        [(7, 16)] + [(16, 16)] * (hidden_layers - 1) + [(16, 2)]
    )
    dropouts = [m for m in model.modules() if isinstance(m, nn.Dropout)]
    assert len(dropouts) == (hidden_layers if dropout > 0 else 0)
    # The head emits raw logits: no activation after the last Linear.
    assert isinstance(list(model.modules())[-1], nn.Linear)


# -- datasets ---------------------------------------------------------------------------------


def test_unknown_dataset_lists_the_valid_names() -> None:
    with pytest.raises(ValueError, match="unknown dataset 'mnist'") as info:
        load_dataset("mnist")
    for name in list_datasets():
        assert name in str(info.value)


@pytest.mark.parametrize("name", list_datasets())
def test_dataset_split_is_complete_stratified_and_standardized(name: str) -> None:
    raw = getattr(skd, f"load_{name}")()
    n_total = len(raw.target)
    n_classes = len(np.unique(raw.target))

    data = load_dataset(name, val_fraction=0.25, split_seed=3)

    assert data.name == name
    assert len(data.x_train) + len(data.x_val) == n_total
    assert len(data.x_val) == math.ceil(0.25 * n_total)
    assert len(data.y_train) == len(data.x_train)
    assert len(data.y_val) == len(data.x_val)
    assert data.n_features == raw.data.shape[1]
    assert data.x_val.shape[1] == data.n_features
    assert data.n_classes == n_classes
    assert data.x_train.dtype == np.float32
    assert data.x_val.dtype == np.float32
    assert data.y_train.dtype == np.int64
    # Stratified: every class appears in both splits, in about the same share.
    assert set(np.unique(data.y_val)) == set(range(n_classes))
    assert set(np.unique(data.y_train)) == set(range(n_classes))
    full = np.bincount(raw.target) / n_total
    val = np.bincount(data.y_val, minlength=n_classes) / len(data.y_val)
    assert np.abs(full - val).max() < 0.05
    # Standardized with the training split's statistics: train columns have mean 0 and std 1
    # (constant columns std 0), while validation columns are not re-centred on their own.
    np.testing.assert_allclose(data.x_train.mean(axis=0), 0.0, atol=1e-4)
    std = data.x_train.std(axis=0)
    assert np.all(np.isclose(std, 1.0, atol=1e-3) | np.isclose(std, 0.0, atol=1e-6))
    assert np.abs(data.x_val.mean(axis=0)).max() > 1e-3
    assert np.isfinite(data.x_train).all()
    assert np.isfinite(data.x_val).all()


@pytest.mark.parametrize("name", ["iris", "wine"])
def test_both_splits_go_through_one_affine_map(name: str) -> None:
    # Standardizing is z = (x - mean) / std per column, an increasing affine map. If both
    # splits used the training statistics, the sorted z of both splits together is that map of
    # the sorted raw column; had validation used its own statistics, no single map would fit.
    raw = np.asarray(getattr(skd, f"load_{name}")().data, dtype=np.float64)
    data = load_dataset(name, val_fraction=0.3, split_seed=1)
    z = np.concatenate([data.x_train, data.x_val]).astype(np.float64)

    for j in range(raw.shape[1]):
        zs, xs = np.sort(z[:, j]), np.sort(raw[:, j])
        scale, shift = np.polyfit(zs, xs, 1)
        assert scale > 0
        residual = np.abs(zs * scale + shift - xs).max()
        assert residual < 1e-3 * (xs.max() - xs.min()), (j, residual)
        # ... and that map is the training split's: its mean maps to z = 0.
        train_raw = data.x_train[:, j].astype(np.float64) * scale + shift
        assert shift == pytest.approx(train_raw.mean(), rel=1e-4, abs=1e-4)
        assert scale == pytest.approx(train_raw.std(), rel=1e-3)


def test_same_seed_gives_the_same_split_and_another_seed_another() -> None:
    a = load_dataset("wine", split_seed=7)
    b = load_dataset("wine", split_seed=7)
    c = load_dataset("wine", split_seed=8)

    np.testing.assert_array_equal(a.x_train, b.x_train)
    np.testing.assert_array_equal(a.y_val, b.y_val)
    np.testing.assert_array_equal(a.x_val, b.x_val)
    assert a.x_train.shape == c.x_train.shape
    assert not np.array_equal(a.x_train, c.x_train)


def test_val_fraction_sets_the_split_size() -> None:
    small = load_dataset("digits", val_fraction=0.1)
    large = load_dataset("digits", val_fraction=0.5)

    assert len(small.x_val) == math.ceil(0.1 * 1797)
    assert len(large.x_val) == math.ceil(0.5 * 1797)


# -- training ---------------------------------------------------------------------------------


def test_training_digits_reaches_90_percent_within_10_epochs(digits: Dataset) -> None:
    cfg = TrainConfig(epochs=10, batch_size=64, optimizer="adam", lr=1e-2)
    curve: list[EpochMetrics] = []
    for metrics in train({"family": "mlp", "width": 64}, cfg, digits, seed=0):
        curve.append(metrics)
        if metrics.val_accuracy > 0.9:
            break

    assert all(isinstance(m, EpochMetrics) for m in curve)
    assert [m.epoch for m in curve] == list(range(1, len(curve) + 1))
    assert curve[-1].val_accuracy > 0.9, [m.val_accuracy for m in curve]
    for m in curve:
        assert 0.0 <= m.val_accuracy <= 1.0
        assert math.isfinite(m.train_loss)
        assert math.isfinite(m.val_loss)
    # Untrained, ten classes sit near chance: loss near ln(10) = 2.3. It must have dropped.
    assert curve[-1].val_loss < 1.0


def test_train_yields_one_metrics_per_epoch(digits: Dataset) -> None:
    curve = list(train(SMALL_MLP, TrainConfig(epochs=3, lr=1e-2), digits, seed=1))

    assert [m.epoch for m in curve] == [1, 2, 3]
    assert curve[-1].train_loss < curve[0].train_loss
    assert curve[0].as_dict() == {
        "epoch": 1,
        "train_loss": curve[0].train_loss,
        "val_loss": curve[0].val_loss,
        "val_accuracy": curve[0].val_accuracy,
    }


def test_diverging_training_raises_non_finite_loss(digits: Dataset) -> None:
    cfg = TrainConfig(epochs=3, optimizer="sgd", lr=1e6)
    curve: list[EpochMetrics] = []

    with pytest.raises(NonFiniteLossError, match=r"^non-finite loss at epoch \d+$") as info:
        curve.extend(train({"family": "mlp", "width": 64}, cfg, digits, seed=0))

    epoch = int(str(info.value).rsplit(" ", 1)[1])
    assert epoch == len(curve) + 1  # the epoch it names is the one that did not finish
    assert isinstance(info.value, FloatingPointError)


def test_non_finite_features_are_caught(digits: Dataset) -> None:
    x_train = digits.x_train.copy()
    x_train[0, 0] = np.nan
    bad = replace(digits, x_train=x_train)

    # Every batch is finite except the one holding row 0; some batch of epoch 1 holds it.
    with pytest.raises(NonFiniteLossError, match="non-finite loss at epoch 1"):
        list(train(SMALL_MLP, TrainConfig(epochs=1), bad, seed=0))


def test_same_seed_gives_identical_metrics(digits: Dataset) -> None:
    cfg = TrainConfig(epochs=2, lr=1e-2, batch_size=128)
    spec = {**SMALL_MLP, "dropout": 0.2}

    a = list(train(spec, cfg, digits, seed=5))
    b = list(train(spec, cfg, digits, seed=5))
    c = list(train(spec, cfg, digits, seed=6))

    assert a == b
    assert a != c


@pytest.mark.parametrize("optimizer", list_optimizers())
def test_every_optimizer_runs_an_epoch(digits: Dataset, optimizer: str) -> None:
    # Plain SGD needs a larger step than the adaptive methods to learn in one epoch.
    lr = 0.1 if optimizer == "sgd" else 1e-2
    cfg = TrainConfig(epochs=1, optimizer=optimizer, lr=lr, momentum=0.5, weight_decay=1e-4)

    (metrics,) = list(train(SMALL_MLP, cfg, digits, seed=0))

    assert metrics.epoch == 1
    assert math.isfinite(metrics.train_loss)
    assert math.isfinite(metrics.val_loss)
    # One epoch of any optimizer at this rate beats chance (10 classes) clearly.
    assert metrics.val_accuracy > 0.3


def test_optimizer_registry_has_the_basics() -> None:
    assert {"sgd", "adam"} <= set(list_optimizers())
    assert list_optimizers() == sorted(list_optimizers())
