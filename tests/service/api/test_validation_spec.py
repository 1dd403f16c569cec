"""A bad study spec gets a 422 that names the field, and nothing is written.

Every case posts a variant of ``examples/digits-mlp.yaml`` to an in-process app (real SQLite,
real migrations, no scheduler), then checks the error's ``path`` and message and that neither
a ``tf_studies`` row nor an Optuna study exists afterwards. Here: the table of one bad field
each, and how the errors are reported (``loc`` and ``path``, every error of a spec, the
cross-field ones).
"""

import copy
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from tests.service.api._validation import STUDIES, Spec, _assert_nothing_written, _detail_items


def _set(*keys: str, value: Any) -> Callable[[Spec], None]:
    """A mutation that sets ``spec[k0][k1]...[kn] = value``."""

    def mutate(spec: Spec) -> None:
        node = spec
        for key in keys[:-1]:
            node = node[key]
        node[keys[-1]] = value

    return mutate


def _drop(key: str) -> Callable[[Spec], None]:
    def mutate(spec: Spec) -> None:
        del spec[key]

    return mutate


def _update_param(name: str, **fields: Any) -> Callable[[Spec], None]:
    def mutate(spec: Spec) -> None:
        spec["search_space"][name].update(fields)

    return mutate


ACTIVATIONS_LISTED = ("relu", "gelu", "tanh", "elu", "swish")

# (id, mutation, expected path, substrings the message must contain)
CASES: list[tuple[str, Callable[[Spec], None], str, tuple[str, ...]]] = [
    (
        "unknown-algorithm",
        _set("algorithm", "name", value="annealing"),
        "algorithm.name",
        ("annealing", "random", "tpe"),
    ),
    (
        "unknown-algorithm-setting",
        _set("algorithm", "settings", "n_startups", value=5),
        "algorithm.settings.n_startups",
        ("n_startups", "n_startup_trials", "seed"),
    ),
    (
        "algorithm-setting-wrong-type",
        _set("algorithm", "settings", "multivariate", value="yes"),
        "algorithm.settings.multivariate",
        ("multivariate", "bool"),
    ),
    (
        "algorithm-setting-bool-for-int",
        _set("algorithm", "settings", "n_startup_trials", value=True),
        "algorithm.settings.n_startup_trials",
        ("n_startup_trials", "int"),
    ),
    (
        "float-low-above-high",
        _update_param("training.lr", low=0.1, high=0.01),
        'search_space["training.lr"]',
        ("low", "high"),
    ),
    (
        "int-low-above-high",
        _update_param("model.hidden_layers", low=3, high=1),
        'search_space["model.hidden_layers"]',
        ("low", "high"),
    ),
    (
        "log-with-zero-low",
        _update_param("training.lr", low=0.0),
        'search_space["training.lr"]',
        ("log", "low > 0"),
    ),
    (
        "log-with-negative-low",
        _update_param("training.lr", low=-1.0, high=0.1),
        'search_space["training.lr"]',
        ("log", "low > 0"),
    ),
    (
        "log-with-step",
        _update_param("training.lr", step=0.001),
        'search_space["training.lr"]',
        ("log", "step"),
    ),
    (
        "empty-choices",
        _update_param("model.activation", choices=[]),
        'search_space["model.activation"].choices',
        ("at least 1",),
    ),
    (
        "duplicate-choices",
        _update_param("model.activation", choices=["relu", "tanh", "relu"]),
        'search_space["model.activation"].choices',
        ("distinct",),
    ),
    (
        "unknown-param-type",
        _update_param("model.dropout", type="uniform"),
        'search_space["model.dropout"]',
        ("float", "int", "categorical"),
    ),
    (
        "max-trials-zero",
        _set("budget", "max_trials", value=0),
        "budget.max_trials",
        ("greater than 0",),
    ),
    (
        "max-trials-negative",
        _set("budget", "max_trials", value=-3),
        "budget.max_trials",
        ("greater than 0",),
    ),
    (
        "max-failed-trials-zero",
        _set("budget", "max_failed_trials", value=0),
        "budget.max_failed_trials",
        ("greater than 0",),
    ),
    (
        "timeout-negative",
        _set("budget", "timeout_s", value=-1),
        "budget.timeout_s",
        ("greater than 0",),
    ),
    (
        "parallelism-zero",
        _set("parallelism", value=0),
        "parallelism",
        ("greater than or equal to 1",),
    ),
    (
        "cpu-zero",
        _set("resources", "cpu", value=0),
        "resources.cpu",
        ("greater than 0",),
    ),
    (
        "fractional-gpu-above-one",
        _set("resources", "gpu", value=1.5),
        "resources.gpu",
        ("whole number",),
    ),
    (
        "negative-gpu",
        _set("resources", "gpu", value=-0.5),
        "resources.gpu",
        ("greater than or equal to 0",),
    ),
    (
        "unknown-dataset",
        _set("task", "dataset", "name", value="mnist"),
        "task.dataset.name",
        ("mnist", "digits", "iris", "wine", "breast_cancer"),
    ),
    (
        "unknown-activation-in-task",
        _set("task", "model", "activation", value="relu6"),
        "task.model.activation",
        ("relu6", *ACTIVATIONS_LISTED),
    ),
    (
        "unknown-optimizer",
        _set("task", "training", "optimizer", value="lbfgs"),
        "task.training.optimizer",
        ("lbfgs", "adam", "sgd"),
    ),
    (
        "unknown-model-family",
        _set("task", "model", "family", value="perceptron"),
        "task.model.family",
        ("unknown model family 'perceptron'", "mlp", "cnn", "transformer"),
    ),
    (
        "unknown-search-parameter",
        _set("search_space", "model.depth", value={"type": "int", "low": 1, "high": 4}),
        'search_space["model.depth"]',
        ("model.depth", "model.hidden_layers", "model.width"),
    ),
    (
        "float-param-on-int-field",
        _update_param("model.width", type="float"),
        'search_space["model.width"].type',
        ("model.width", "int"),
    ),
    (
        "numeric-param-on-name-field",
        _set("search_space", "training.optimizer", value={"type": "int", "low": 0, "high": 2}),
        'search_space["training.optimizer"].type',
        ("categorical",),
    ),
    (
        "invalid-choice-for-field",
        _update_param("model.activation", choices=["relu", "nope"]),
        'search_space["model.activation"].choices[1]',
        ("nope", *ACTIVATIONS_LISTED),
    ),
    (
        "range-outside-field-bounds",
        _update_param("model.dropout", high=1.0),
        'search_space["model.dropout"].high',
        ("model.dropout", "must be <= 0.95"),
    ),
    (
        "int-range-outside-field-bounds",
        _update_param("model.width", low=0, log=False),
        'search_space["model.width"].low',
        ("model.width", "must be >= 1"),
    ),
    (
        "unknown-objective-metric",
        _set("objective", "metric", value="f1"),
        "objective.metric",
        ("f1", "val_accuracy", "val_loss", "train_loss"),
    ),
    (
        "bad-direction",
        _set("objective", "direction", value="up"),
        "objective.direction",
        ("maximize", "minimize"),
    ),
    (
        "typo-top-level-field",
        _set("budgett", value={"max_trials": 3}),
        "budgett",
        ("Extra inputs",),
    ),
    (
        "typo-nested-field",
        _set("budget", "max_trails", value=3),
        "budget.max_trails",
        ("Extra inputs",),
    ),
    (
        "typo-in-param",
        _update_param("training.lr", hihg=0.1),
        'search_space["training.lr"].hihg',
        ("Extra inputs",),
    ),
    ("missing-task", _drop("task"), "task", ("Field required",)),
    ("missing-name", _drop("name"), "name", ("Field required",)),
    (
        "missing-dataset",
        _set("task", "dataset", value={"val_fraction": 0.2}),
        "task.dataset",
        ("exactly one of name", "upload_id"),
    ),
    ("name-with-space", _set("name", value="my study"), "name", ("pattern",)),
    ("name-leading-dash", _set("name", value="-study"), "name", ("pattern",)),
    ("name-too-long", _set("name", value="a" * 129), "name", ("pattern",)),
    ("name-empty", _set("name", value=""), "name", ("pattern",)),
]


@pytest.mark.parametrize(
    ("mutate", "path", "needles"),
    [pytest.param(m, p, n, id=i) for i, m, p, n in CASES],
)
def test_bad_spec_is_rejected_with_its_path_and_nothing_is_written(
    client: TestClient,
    tmp_path: Path,
    base_spec: Spec,
    mutate: Callable[[Spec], None],
    path: str,
    needles: tuple[str, ...],
) -> None:
    spec = copy.deepcopy(base_spec)
    mutate(spec)

    detail = _detail_items(client.post(STUDIES, json=spec))

    matching = [item for item in detail if item["path"] == path]
    assert matching, f"no error at {path}; got {[i['path'] for i in detail]}"
    msg = matching[0]["msg"]
    for needle in needles:
        assert needle in msg, f"{needle!r} not in {msg!r}"
    _assert_nothing_written(client, tmp_path)


def test_error_loc_starts_at_body_and_path_renders_it(client: TestClient, base_spec: Spec) -> None:
    spec = copy.deepcopy(base_spec)
    spec["search_space"]["model.activation"]["choices"] = ["relu", "nope"]

    (item,) = _detail_items(client.post(STUDIES, json=spec))

    assert item["loc"] == ["body", "search_space", "model.activation", "choices", 1]
    assert item["path"] == 'search_space["model.activation"].choices[1]'
    assert item["type"] == "value_error"


def test_every_error_of_a_spec_is_reported(
    client: TestClient, tmp_path: Path, base_spec: Spec
) -> None:
    spec = copy.deepcopy(base_spec)
    spec["budget"]["max_trials"] = 0
    spec["parallelism"] = 0
    spec["objective"]["metric"] = "f 1"  # no metric name at all: a field's own check

    paths = {item["path"] for item in _detail_items(client.post(STUDIES, json=spec))}

    assert paths >= {"budget.max_trials", "parallelism", "objective.metric"}
    _assert_nothing_written(client, tmp_path)


def test_a_metric_the_task_does_not_measure_is_refused_at_its_path(
    client: TestClient, tmp_path: Path, base_spec: Spec
) -> None:
    # A metric's name is checked per field; whether the task measures it depends on the task
    # (an external task names its own), so that check is a cross-field one.
    spec = copy.deepcopy(base_spec)
    spec["objective"]["metric"] = "f1"
    [item] = _detail_items(client.post(STUDIES, json=spec))
    assert item["path"] == "objective.metric"
    assert item["msg"].startswith("unknown metric 'f1'; valid: ")
    _assert_nothing_written(client, tmp_path)


def test_cross_field_errors_are_all_reported(
    client: TestClient, tmp_path: Path, base_spec: Spec
) -> None:
    spec = copy.deepcopy(base_spec)
    spec["algorithm"]["settings"]["bogus"] = 1
    spec["search_space"]["model.width"]["type"] = "float"
    spec["search_space"]["model.activation"]["choices"] = ["nope", "relu", "worse"]

    paths = {item["path"] for item in _detail_items(client.post(STUDIES, json=spec))}

    assert paths == {
        "algorithm.settings.bogus",
        'search_space["model.width"].type',
        'search_space["model.activation"].choices[0]',
        'search_space["model.activation"].choices[2]',
    }
    _assert_nothing_written(client, tmp_path)
