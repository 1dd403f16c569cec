"""The NAS-Bench-201 cell space: genotypes, the ``nb201`` family, and DARTS search on digits.

Real PyTorch on real data (scikit-learn's 8x8 digits), no mocks.
"""

import math
import warnings
from typing import Any

import numpy as np
import pytest
import torch
from torch import nn

from models.cells import (
    EDGES,
    OPS,
    Cell,
    Genotype,
    Supernet,
    derive_genotype,
    edge_name,
    format_genotype,
    has_path,
    parse_genotype,
    space_has_path,
)
from models.darts import DartsConfig, DartsEpoch, DartsResult, darts_search
from models.data import Dataset, DatasetInfo, load_dataset
from models.families import build_model, check_model, family_fields
from models.training.config import TrainConfig
from models.training.results import EpochMetrics, NonFiniteLossError, TrainResult
from models.training.trainer import train

ALL_NONE = "|none~0|+|none~0|none~1|+|none~0|none~1|none~2|"
CONV_HEAVY = "|conv3x3~0|+|conv3x3~0|conv3x3~1|+|conv3x3~0|conv3x3~1|conv3x3~2|"
SKIP_HEAVY = "|skip~0|+|skip~0|skip~1|+|skip~0|skip~1|skip~2|"
MIXED = "|conv3x3~0|+|none~0|skip~1|+|avgpool3x3~0|conv1x1~1|conv3x3~2|"
SMALL = {"channels": 8, "cells_per_stage": 1}  # keeps a digits epoch well under a second


@pytest.fixture(scope="module")
def digits() -> Dataset:
    return load_dataset("digits", 0.2, 0)


def genotype_with(**ops: str) -> Genotype:
    """All-none, except the edges named ``edge_j_i=op``."""
    return Genotype(tuple(ops.get(edge_name(e), "none") for e in EDGES))


# -- genotypes --------------------------------------------------------------------------------


@pytest.mark.parametrize("text", [ALL_NONE, CONV_HEAVY, SKIP_HEAVY, MIXED])
def test_genotype_round_trip(text: str) -> None:
    genotype = parse_genotype(text)
    assert format_genotype(genotype) == text
    assert parse_genotype(format_genotype(genotype)) == genotype


def test_genotype_edges_follow_the_canonical_order() -> None:
    assert EDGES == ((1, 0), (2, 0), (2, 1), (3, 0), (3, 1), (3, 2))
    assert [edge_name(e) for e in EDGES][:3] == ["edge_1_0", "edge_2_0", "edge_2_1"]
    edges = parse_genotype(MIXED).edges
    assert edges == {
        (1, 0): "conv3x3",
        (2, 0): "none",
        (2, 1): "skip",
        (3, 0): "avgpool3x3",
        (3, 1): "conv1x1",
        (3, 2): "conv3x3",
    }


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", r"3 groups joined by '\+'.*got 1"),
        ("|conv3x3~0|+|none~0|skip~1|", r"3 groups joined by '\+'.*got 2"),
        ("|conv5x5~0|+|none~0|skip~1|+|none~0|none~1|none~2|", r"unknown op 'conv5x5' on edge_1_0"),
        ("|conv3x3~0|+|none~0|skip~1|+|none~0|none~1|pool~2|", r"unknown op 'pool' on edge_3_2"),
        ("|conv3x3~0|+|none~0|+|none~0|none~1|none~2|", r"node 2 takes 2 inputs .*got 1"),
        ("|conv3x3~0|+|none~0|skip~1|+|none~0|none~1|none~2|skip~3|", r"node 3 takes 3 inputs"),
        ("|conv3x3~0|+|none~0|skip~2|+|none~0|none~1|none~2|", r"entry 1 of node 2 .*'skip~2'"),
        ("|conv3x3~0|+|skip~1|none~0|+|none~0|none~1|none~2|", r"entry 0 of node 2 .*'skip~1'"),
        ("|conv3x3|+|none~0|skip~1|+|none~0|none~1|none~2|", r"entry 'conv3x3' of node 1"),
        ("conv3x3~0|+|none~0|skip~1|+|none~0|none~1|none~2|", r"node 1's group must look like"),
    ],
)
def test_bad_genotypes_name_the_problem(text: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_genotype(text)


def test_a_genotype_needs_six_known_ops() -> None:
    with pytest.raises(ValueError, match="6 edges, got 2 ops"):
        Genotype(("skip", "skip"))
    with pytest.raises(ValueError, match="unknown op 'conv' on edge_2_0"):
        Genotype(("skip", "conv", "skip", "skip", "skip", "skip"))


@pytest.mark.parametrize(
    ("ops", "expected"),
    [
        ({}, False),  # all none
        ({"edge_3_0": "skip"}, True),
        ({"edge_1_0": "conv3x3", "edge_3_1": "avgpool3x3"}, True),
        ({"edge_2_0": "conv1x1"}, False),
        ({"edge_2_0": "skip", "edge_3_2": "skip"}, True),
        ({"edge_1_0": "skip", "edge_2_1": "skip", "edge_3_2": "skip"}, True),
        ({"edge_1_0": "skip", "edge_2_1": "skip"}, False),
        ({"edge_2_1": "skip", "edge_3_1": "skip", "edge_3_2": "skip"}, False),
    ],
)
def test_has_path(ops: dict[str, str], expected: bool) -> None:
    assert has_path(genotype_with(**ops)) is expected


@pytest.mark.parametrize(
    ("searched", "expected"),
    [
        ({}, False),
        ({(3, 0): ["none", "skip"]}, True),
        ({(1, 0): ["conv3x3", "none"], (3, 1): ["avgpool3x3"]}, True),
        ({(2, 0): list(OPS)}, False),
        ({(1, 0): ["skip"], (2, 1): ["conv1x1"], (3, 1): ["none"]}, False),
        ({(1, 0): ["skip"], (2, 1): ["conv1x1"], (3, 2): ["none", "skip"]}, True),
    ],
)
def test_space_has_path(searched: dict[tuple[int, int], list[str]], expected: bool) -> None:
    allowed = {edge: searched.get(edge, ["none"]) for edge in EDGES}
    assert space_has_path(allowed) is expected


def test_space_has_path_needs_every_edge() -> None:
    allowed = {edge: ["skip"] for edge in EDGES}
    del allowed[(2, 1)]
    with pytest.raises(ValueError, match="no ops given for edge_2_1"):
        space_has_path(allowed)
    with pytest.raises(ValueError, match="no ops given for edge_3_0"):
        space_has_path({**allowed, (2, 1): ["skip"], (3, 0): []})


# -- the nb201 family -------------------------------------------------------------------------


def nb201(**fields: Any) -> dict[str, Any]:
    return {"family": "nb201", **fields}


def param_count(net: nn.Module) -> int:
    return sum(p.numel() for p in net.parameters())


@pytest.mark.parametrize(
    "spec",
    [
        nb201(),
        nb201(genotype=MIXED, **SMALL),
        nb201(genotype=SKIP_HEAVY, stages=1),
        nb201(genotype=CONV_HEAVY, channels=4, stages=4, cells_per_stage=2),
        nb201(genotype=SKIP_HEAVY, edge_2_1="conv3x3", edge_3_0="none", **SMALL),
        nb201(edge_1_0=None, edge_3_2="avgpool3x3", **SMALL),
    ],
)
def test_nb201_builds_for_digits(spec: dict[str, Any], digits: Dataset) -> None:
    assert check_model(spec, digits.info) == []
    net = build_model(spec, digits.info.input_shape, 10)
    x = torch.tensor(digits.x_val[:5])
    assert net(x).shape == (5, 10)
    net(x).square().mean().backward()


def test_edge_fields_override_the_genotype(digits: Dataset) -> None:
    spec = nb201(genotype=SKIP_HEAVY, edge_2_1="conv3x3", edge_3_0="none", **SMALL)
    net = build_model(spec, digits.info.input_shape, 10)
    cell = next(m for m in net.modules() if isinstance(m, Cell))
    kinds = {name: type(op).__name__ for name, op in cell.edges.items()}
    assert kinds == {
        "edge_1_0": "Identity",
        "edge_2_0": "Identity",
        "edge_2_1": "Sequential",  # ReLU → Conv → BN
        "edge_3_0": "Zero",
        "edge_3_1": "Identity",
        "edge_3_2": "Identity",
    }
    fields = family_fields("nb201")
    assert fields["edge_2_1"]["choices"] == list(OPS)
    assert fields["edge_2_1"]["default"] is None and fields["edge_2_1"]["searchable"]


def test_conv_heavy_cells_have_more_parameters(digits: Dataset) -> None:
    shape = digits.info.input_shape
    conv = param_count(build_model(nb201(genotype=CONV_HEAVY), shape, 10))
    skip = param_count(build_model(nb201(genotype=SKIP_HEAVY), shape, 10))
    default = param_count(build_model(nb201(), shape, 10))
    assert skip < default < conv
    # 6 cells x 6 conv3x3 each (3x3xCxC weights + 2C BN) over widths 16, 32, 64.
    assert conv - skip == sum(2 * 6 * (9 * c * c + 2 * c) for c in (16, 32, 64))


@pytest.mark.parametrize(
    ("spec", "field", "message"),
    [
        (nb201(genotype=ALL_NONE), "genotype", "no path from input to output"),
        (
            nb201(edge_3_0="none", edge_3_1="none", edge_3_2="none"),
            "genotype",
            "no path from input to output",
        ),
        (nb201(genotype="|conv3x3~0|"), "genotype", "3 groups joined by '+'"),
        (nb201(genotype=MIXED.replace("conv1x1", "sep3x3")), "genotype", "unknown op 'sep3x3'"),
        (nb201(edge_2_1="conv5x5"), "edge_2_1", "unknown value 'conv5x5'; valid: none, skip"),
        (nb201(edge_2_1=3), "edge_2_1", "must be a string"),
        (nb201(stages=5), "stages", "must be <= 4"),
    ],
)
def test_check_model_reports_bad_cells(
    spec: dict[str, Any], field: str, message: str, digits: Dataset
) -> None:
    errors = check_model(spec, digits.info)
    assert len(errors) == 1 and errors[0][0] == field and message in errors[0][1], errors


def test_a_cell_without_a_path_still_builds(digits: Dataset) -> None:
    net = build_model(nb201(genotype=ALL_NONE, **SMALL), digits.info.input_shape, 10)
    net.train(False)
    out = net(torch.tensor(digits.x_val[:4]))
    assert torch.allclose(out, out[:1].expand(4, -1))  # the cells output zeros: no input left


def test_stages_must_fit_the_image() -> None:
    tiny = DatasetInfo("tiny", "multiclass", "image", (1, 2, 2), 3, 10)
    assert check_model(nb201(stages=2), tiny) == []
    assert check_model(nb201(stages=3), tiny) == [
        ("stages", "3 stages reduce a size-2 input below one pixel; at most 2")
    ]
    odd = DatasetInfo("odd", "multiclass", "image", (3, 5, 7), 3, 10)
    assert check_model(nb201(stages=4), odd) == []
    net = build_model(nb201(stages=4, **SMALL), odd.input_shape, 3)
    assert net(torch.randn(2, 3, 5, 7)).shape == (2, 3)  # 5x7 → 3x4 → 2x2 → 1x1


def test_the_traced_network_matches_the_eager_one(digits: Dataset) -> None:
    net = build_model(nb201(genotype=MIXED, **SMALL), digits.info.input_shape, 10).train(False)
    x = torch.tensor(digits.x_val[:8])
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")
        traced = torch.jit.trace(net, x)  # type: ignore[no-untyped-call]
        assert torch.allclose(traced(x), net(x), atol=1e-6)


def run_training(spec: dict[str, Any], data: Dataset, epochs: int) -> list[float]:
    events = list(train(spec, TrainConfig(epochs=epochs, lr=3e-3), data, seed=0))
    *epoch_metrics, result = events
    assert isinstance(result, TrainResult) and result.torchscript
    assert all(isinstance(e, EpochMetrics) for e in epoch_metrics)
    return [e.metrics["val_accuracy"] for e in epoch_metrics]  # type: ignore[union-attr]


@pytest.mark.slow  # trains for seconds
def test_nb201_trains_on_digits(digits: Dataset) -> None:
    accuracies = run_training(nb201(**SMALL), digits, epochs=3)
    assert len(accuracies) == 3 and accuracies[-1] > 0.8, accuracies


# -- DARTS ------------------------------------------------------------------------------------

SEARCH = DartsConfig(epochs=4, channels=8)


@pytest.fixture(scope="module")
def search(digits: Dataset) -> list[DartsEpoch | DartsResult]:
    return list(darts_search(digits, SEARCH, seed=0))


def test_supernet_shares_one_alpha(digits: Dataset) -> None:
    net = Supernet(digits.info.input_shape, 10, 8, 2, 3, ops=("none", "skip", "conv3x3"))
    assert [p.shape for p in net.arch_parameters()] == [(6, 3)]
    weights = net.weight_parameters()
    assert len(weights) + 1 == len(list(net.parameters()))
    assert all(p is not net.alpha for p in weights)
    out = net(torch.tensor(digits.x_val[:3]))
    assert out.shape == (3, 10)
    out.sum().backward()
    assert net.alpha.grad is not None and bool(net.alpha.grad.abs().sum() > 0)
    with pytest.raises(ValueError, match="ops must be distinct names"):
        Supernet(digits.info.input_shape, 10, 8, 1, 3, ops=("skip", "skip"))


def test_derive_genotype_skips_none() -> None:
    ops = ("none", "skip", "conv3x3")
    alpha = torch.tensor([[9.0, 1.0, 2.0], [0.0, 3.0, 1.0], [5.0, 0.0, 0.0]] * 2)
    assert derive_genotype(alpha, ops).ops == ("conv3x3", "skip", "skip") * 2
    assert derive_genotype(torch.zeros(6, 1), ("none",)).ops == ("none",) * 6


@pytest.mark.slow  # a DARTS search: seconds
def test_darts_search_on_digits(search: list[DartsEpoch | DartsResult]) -> None:
    *epochs, result = search
    assert [e.epoch for e in epochs if isinstance(e, DartsEpoch)] == [1, 2, 3, 4]
    assert isinstance(result, DartsResult) and result.search_seconds > 0
    for item in [*epochs, result]:
        alpha = np.array(item.alpha)
        assert alpha.shape == (6, len(OPS))
        assert np.all(alpha > 0) and np.allclose(alpha.sum(axis=1), 1.0, atol=1e-6)
        genotype = parse_genotype(item.genotype)
        assert has_path(genotype) and "none" not in genotype.ops
    metrics = [e.metrics for e in epochs if isinstance(e, DartsEpoch)]
    assert all(set(m) == {"val_accuracy", "val_loss", "train_loss"} for m in metrics)
    assert all(math.isfinite(v) for m in metrics for v in m.values())
    assert metrics[-1]["val_accuracy"] > 0.5, metrics  # the supernet itself learns


@pytest.mark.slow
def test_the_derived_genotype_trains_from_scratch(
    search: list[DartsEpoch | DartsResult], digits: Dataset
) -> None:
    result = search[-1]
    spec = nb201(genotype=result.genotype, **SMALL)
    assert check_model(spec, digits.info) == []
    accuracies = run_training(spec, digits, epochs=5)
    assert accuracies[-1] > 0.8, (result.genotype, accuracies)


@pytest.mark.slow
def test_darts_search_is_reproducible(digits: Dataset) -> None:
    # Two searches with the same seed, epoch by epoch (a small supernet: what is checked is
    # the seeding, not the search).
    config = DartsConfig(epochs=2, channels=4, stages=2)
    first = list(darts_search(digits, config, seed=0))
    again = list(darts_search(digits, config, seed=0))
    assert len(again) == 3
    assert [e.genotype for e in again] == [e.genotype for e in first]
    assert [e.alpha for e in again] == [e.alpha for e in first]


def test_darts_with_restricted_ops(digits: Dataset) -> None:
    config = DartsConfig(epochs=1, channels=4, stages=2)
    *_, result = darts_search(digits, config, seed=1, ops=["none", "avgpool3x3", "conv1x1"])
    assert isinstance(result, DartsResult)
    assert np.array(result.alpha).shape == (6, 3)
    assert set(parse_genotype(result.genotype).ops) <= {"avgpool3x3", "conv1x1"}


def test_darts_refuses_non_finite_losses_and_other_data(digits: Dataset) -> None:
    x = digits.x_train.copy()
    x[5, 0, 3, 3] = np.nan
    broken = Dataset(digits.info, x, digits.y_train, digits.x_val, digits.y_val)
    with pytest.raises(NonFiniteLossError, match=r"^non-finite loss at epoch 1$"):
        list(darts_search(broken, SEARCH, seed=0))
    iris = load_dataset("iris")
    with pytest.raises(ValueError, match="DARTS searches image cells; dataset 'iris' is tabular"):
        list(darts_search(iris, SEARCH, seed=0))
