"""Catalog plugins (issue 19): an installed package's entry points add model families, datasets
and functions, declared and checked exactly as the built-in ones; broken entries are left out
with the reason logged; a study naming a plugin the cluster's workers lack is refused."""

import logging
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch

from models.data import dataset_plugin, list_datasets, load_dataset
from models.families import build_model, check_model, family_plugin, list_families
from models.plugins import Plugin, inventory
from models.training.config import TrainConfig
from models.training.results import TrainResult
from models.training.trainer import train
from search.checks import plugin_errors
from search.functions import function_plugin, get_function
from search.spec import DatasetRef, TrainTask
from tests.models._plugin import install, on_path
from tests.service.store.test_conditional_updates import SPEC

ORIGIN = Plugin("tuneforge-example-plugin", "0.1.0")


@pytest.fixture
def plugin(tmp_path: Path) -> Iterator[Path]:
    yield from on_path(install(tmp_path))


def test_the_registries_list_the_plugin_s_entries_with_their_origin(plugin: Path) -> None:
    assert "gated_mlp" in list_families() and "spirals" in list_datasets()
    assert family_plugin("gated_mlp") == dataset_plugin("spirals") == ORIGIN
    assert function_plugin("styblinski_tang") == ORIGIN
    assert family_plugin("mlp") is None and dataset_plugin("digits") is None
    assert inventory()["families"] == {"gated_mlp": "tuneforge-example-plugin 0.1.0"}


def test_the_plugin_s_entries_are_checked_and_run_as_built_in_ones(plugin: Path) -> None:
    data = load_dataset("spirals", options={"n_samples": 400, "seed": 3})
    assert (data.info.task, data.info.input_shape, data.info.n_samples) == ("binary", (2,), 400)
    with pytest.raises(ValueError, match="turns"):
        load_dataset("spirals", options={"turns": 50.0})  # above its declared bound
    assert check_model({"family": "gated_mlp", "layers": 9}, data.info) != []
    assert check_model({"family": "gated_mlp", "layers": 3, "width": 32}, data.info) == []
    net = build_model({"family": "gated_mlp", "width": 8}, (2,), 1)
    assert net(torch.zeros(5, 2)).shape == (5, 1)
    spec = {"family": "gated_mlp", "layers": 2, "width": 32}
    result = list(train(spec, TrainConfig(epochs=30, lr=0.01), data, 0))[-1]
    assert isinstance(result, TrainResult) and result.metrics["val_accuracy"] > 0.8
    cost = get_function("styblinski_tang")
    assert cost.fn({"x1": -2.9035, "x2": -2.9035}) == pytest.approx(-78.33198, abs=1e-3)


def test_broken_entries_are_left_out_with_the_reason(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    extra = (
        "[tuneforge.families]\n"
        "mlp = tuneforge_example_plugin:GATED_MLP\n"  # a built-in's name
        "not_a_family = tuneforge_example_plugin:SPIRALS\n"  # the wrong type
        "missing = tuneforge_example_plugin.nowhere:THING\n"  # does not import
    )
    with caplog.at_level(logging.WARNING, logger="models.plugins"):
        for _ in on_path(install(tmp_path, extra)):
            families = list_families()
            assert "gated_mlp" in families and "not_a_family" not in families
            assert "missing" not in families and family_plugin("mlp") is None
    said = caplog.text
    assert "'mlp' of tuneforge-example-plugin 0.1.0 left out: the name is taken" in said
    assert "'not_a_family'" in said and "is no Family" in said
    assert "'missing'" in said and "does not load" in said


def test_a_study_naming_a_plugin_the_workers_lack_is_refused_at_its_path(plugin: Path) -> None:
    spec = SPEC.__class__(
        **{
            **SPEC.__dict__,
            "task": TrainTask(DatasetRef(name="spirals"), {"family": "gated_mlp"}),
        }
    )
    everything = inventory()
    assert plugin_errors(spec, [everything]) == []
    assert plugin_errors(spec, []) == []  # no replica has looked yet: nothing to check against
    bare = {"families": {}, "datasets": {}, "functions": {}}
    errors = {e.loc: e.msg for e in plugin_errors(spec, [bare])}
    assert set(errors) == {("task", "model", "family"), ("task", "dataset", "name")}
    assert (
        "family 'gated_mlp' comes from the plugin package tuneforge-example-plugin 0.1.0"
        in (errors[("task", "model", "family")])
    )
    older = {**everything, "families": {"gated_mlp": "tuneforge-example-plugin 0.0.9"}}
    [stale] = plugin_errors(spec, [older])
    assert "they have tuneforge-example-plugin 0.0.9" in stale.msg
    # One live replica whose workers have it is enough.
    assert plugin_errors(spec, [bare, everything]) == []
