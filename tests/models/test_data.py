"""The data layer and the registries' error messages."""

import numpy as np
import pytest
from torch import nn

from models.data import (
    check_options,
    dataset_info,
    dataset_options,
    from_arrays,
    kind_of,
    list_datasets,
    load_dataset,
)
from models.families import build_model, list_families
from models.layers import create_act_layer, list_activations


@pytest.mark.parametrize("name", list_datasets())
def test_split_is_complete_and_stratified(name: str) -> None:
    data = load_dataset(name, val_fraction=0.25, split_seed=1)
    info = data.info
    n_train, n_val = len(data.x_train), len(data.x_val)
    assert n_train + n_val == info.n_samples
    assert n_val == pytest.approx(0.25 * info.n_samples, abs=1)
    assert data.x_train.shape[1:] == info.input_shape and data.x_train.dtype == np.float32
    if info.task == "regression":
        assert data.y_train.dtype == np.float32 and data.y_train.shape[1] == info.n_outputs
        return
    assert data.y_train.dtype == np.int64
    classes = np.arange(info.n_outputs)
    assert set(np.unique(data.y_val)) == set(classes)  # every class in validation
    # Stratified: class shares agree between the splits.
    share_tr = np.bincount(data.y_train, minlength=info.n_outputs) / n_train
    share_va = np.bincount(data.y_val, minlength=info.n_outputs) / n_val
    # As close as whole samples allow: karate's 34 nodes leave 9 for validation.
    assert np.abs(share_tr - share_va).max() < max(0.06, 1 / n_val)


def test_kinds_tasks_and_shapes_of_the_bundled_sets() -> None:
    shapes = {
        n: (dataset_info(n).task, dataset_info(n).kind, dataset_info(n).input_shape)
        for n in ("digits", "breast_cancer", "diabetes", "waveforms")
    }
    assert shapes == {
        "digits": ("multiclass", "image", (1, 8, 8)),
        "breast_cancer": ("binary", "tabular", (30,)),
        "diabetes": ("regression", "tabular", (10,)),
        "waveforms": ("multiclass", "sequence", (1, 64)),
    }


def test_same_seed_same_split_other_seed_other_split() -> None:
    a, b = load_dataset("wine", split_seed=3), load_dataset("wine", split_seed=3)
    c = load_dataset("wine", split_seed=4)
    assert np.array_equal(a.x_val, b.x_val)
    assert not np.array_equal(a.x_val, c.x_val)


def test_raw_arrays_are_not_scaled_by_the_loader() -> None:
    from sklearn.datasets import load_wine

    data = load_dataset("wine")
    raw = np.asarray(load_wine().data, np.float32)
    assert np.isin(data.x_train[:, 0], raw[:, 0]).all()  # preprocessing happens per trial


def test_unknown_names_list_the_valid_ones() -> None:
    with pytest.raises(ValueError, match="unknown dataset 'nope'; valid: breast_cancer, "):
        load_dataset("nope")
    with pytest.raises(ValueError, match="unknown activation 'nope'; valid: elu, gelu"):
        create_act_layer("nope")
    with pytest.raises(ValueError, match=f"valid: {', '.join(list_families())}"):
        build_model({"family": "nope"}, (4,), 3)
    with pytest.raises(ValueError, match="unknown field 'depth'"):
        build_model({"family": "mlp", "depth": 3}, (4,), 3)


@pytest.mark.parametrize(
    ("given", "message"),
    [
        ({"n_samples": 5}, "option 'n_samples' must be >= 30, got 5"),
        ({"n_samples": 1.5}, "option 'n_samples' must be an integer, got 1.5"),
        ({"noise": True}, "option 'noise' must be a number, got True"),
        ({"bogus": 1}, "unknown option 'bogus' for dataset 'waveforms'"),
    ],
)
def test_generator_options_are_checked(given: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError) as info:
        check_options("waveforms", given)
    assert str(info.value).startswith(message)


def test_generator_options_shape_the_data() -> None:
    assert set(dataset_options("classification")) == {
        "n_samples",
        "n_features",
        "n_classes",
        "seed",
    }
    data = load_dataset(
        "classification", options={"n_samples": 200, "n_features": 7, "n_classes": 4}
    )
    assert data.info.input_shape == (7,) and data.info.n_outputs == 4 and data.info.n_samples == 200
    assert dataset_options("digits") == {}


def test_from_arrays_infers_the_kind_from_the_rank() -> None:
    rng = np.random.default_rng(0)
    y = np.repeat(np.arange(2), 20)
    for shape, kind in [((40, 5), "tabular"), ((40, 2, 9), "sequence"), ((40, 1, 6, 6), "image")]:
        data = from_arrays("up", rng.normal(size=shape), y, "binary", 0.25, 0)
        assert data.info.kind == kind == kind_of(rng.normal(size=shape))
    with pytest.raises(ValueError, match="x must have 2, 3 or 4 dimensions"):
        kind_of(np.zeros(5))


@pytest.mark.parametrize(("hidden_layers", "dropout"), [(1, 0.0), (3, 0.5)])
def test_mlp_shape_follows_its_config(hidden_layers: int, dropout: float) -> None:
    net = build_model(
        {"family": "mlp", "hidden_layers": hidden_layers, "width": 16, "dropout": dropout},
        (64,),
        10,
    )
    linears = [m for m in net.modules() if isinstance(m, nn.Linear)]
    assert [(m.in_features, m.out_features) for m in linears] == [(64, 16)] + [(16, 16)] * (
        hidden_layers - 1
    ) + [(16, 10)]
    assert sum(isinstance(m, nn.Dropout) for m in net.modules()) == (
        hidden_layers if dropout else 0
    )
    widths = build_model({"family": "mlp", "widths": [32, 8]}, (4,), 3)
    assert [m.out_features for m in widths.modules() if isinstance(m, nn.Linear)] == [32, 8, 3]


def test_activation_registry() -> None:
    assert {
        "relu",
        "leaky_relu",
        "elu",
        "selu",
        "swish",
        "silu",
        "gelu",
        "tanh",
        "sigmoid",
        "softplus",
    } <= set(list_activations())
