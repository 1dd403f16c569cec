"""The API's edge: a request body into the domain's study, and back into the JSON it shows."""

from pathlib import Path
from typing import Any

import optuna
import pytest
import yaml
from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

from models.families import build_model
from models.training.config import TrainConfig
from search.document import from_document, to_document
from search.space import to_distribution
from search.spec import DatasetRef, ParamSpec, StudySpec, TrainTask
from service.api.convert import request_loc, spec_json, to_spec
from service.api.schemas.study import StudyCreate

EXAMPLE = Path(__file__).resolve().parents[3] / "examples" / "digits-mlp.yaml"


@pytest.fixture(scope="module")
def example() -> dict[str, Any]:
    spec = yaml.safe_load(EXAMPLE.read_text())
    assert isinstance(spec, dict)
    return spec


@pytest.fixture(scope="module")
def study_spec(example: dict[str, Any]) -> StudySpec:
    return to_spec(StudyCreate.model_validate(example))


def test_to_spec_round_trips_the_example(study_spec: StudySpec) -> None:
    spec = study_spec

    assert spec.name == "digits-mlp"
    assert (spec.objective.metric, spec.objective.direction) == ("val_accuracy", "maximize")
    assert spec.algorithm.name == "tpe"
    assert dict(spec.algorithm.settings) == {"seed": 0, "n_startup_trials": 5}
    assert (spec.budget.max_trials, spec.budget.max_failed_trials) == (12, 4)
    assert spec.budget.timeout_s == 900
    assert spec.parallelism == 2
    assert (spec.resources.cpu, spec.resources.gpu) == (1, 0)
    assert spec.seed == 0
    assert isinstance(spec.task, TrainTask)
    assert spec.task.dataset == DatasetRef("digits", None, {}, 0.2, 0)
    assert dict(spec.task.model) == {"family": "mlp"}  # defaults are filled in at submission
    assert spec.task.training["epochs"] == 15
    assert spec.task.training["optimizer"] == "adam"
    assert "batch_size" not in spec.task.training  # searched, left to the default until filled
    assert [p.name for p in spec.search_space] == [
        "model.hidden_layers",
        "model.width",
        "model.activation",
        "model.dropout",
        "training.lr",
        "training.batch_size",
    ]


def test_to_distribution_maps_every_example_param(study_spec: StudySpec) -> None:
    dists = {p.name: to_distribution(p) for p in study_spec.search_space}

    assert dists == {
        "model.hidden_layers": IntDistribution(1, 3),
        "model.width": IntDistribution(32, 256, log=True),
        "model.activation": CategoricalDistribution(("relu", "gelu", "tanh")),
        "model.dropout": FloatDistribution(0.0, 0.4),
        "training.lr": FloatDistribution(0.0003, 0.03, log=True),
        "training.batch_size": CategoricalDistribution((32, 64, 128)),
    }


def test_steps_reach_the_distributions(example: dict[str, Any]) -> None:
    body = {
        **example,
        "search_space": {
            "model.width": {"type": "int", "low": 16, "high": 128, "step": 16},
            "model.dropout": {"type": "float", "low": 0.0, "high": 0.5, "step": 0.1},
            "training.epochs": {"type": "int", "low": 1, "high": 5},
        },
    }

    spec = to_spec(StudyCreate.model_validate(body))
    params = {p.name: p for p in spec.search_space}

    assert params["model.width"] == ParamSpec("model.width", "int", 16, 128, False, 16.0)
    assert to_distribution(params["model.width"]) == IntDistribution(16, 128, step=16)
    assert to_distribution(params["model.dropout"]) == FloatDistribution(0.0, 0.5, step=0.1)
    assert to_distribution(params["training.epochs"]) == IntDistribution(1, 5, step=1)


def test_sampled_params_make_a_trainable_task(study_spec: StudySpec) -> None:
    # ask → with_params → what a worker builds: every sampled task must construct.
    dists = {p.name: to_distribution(p) for p in study_spec.search_space}
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(0))

    for _ in range(5):
        trial = study.ask(dists)
        task = study_spec.task.with_params(trial.params)
        assert isinstance(task, TrainTask)
        cfg = TrainConfig(**task.training)
        model = build_model(dict(task.model), (1, 8, 8), 10)

        assert cfg.lr == trial.params["training.lr"]
        assert cfg.batch_size == trial.params["training.batch_size"]
        assert task.model["width"] == trial.params["model.width"]
        assert sum(p.numel() for p in model.parameters()) > 0
        study.tell(trial, 0.5)


def test_spec_survives_the_document_the_service_stores(example: dict[str, Any]) -> None:
    # The service stores the domain document and the scheduler reads the study back from it.
    body = StudyCreate.model_validate(example)
    spec = to_spec(body)

    assert from_document(to_document(spec)) == spec
    # What a response shows can be submitted again, and means the same study.
    assert to_spec(StudyCreate.model_validate(spec_json(spec))) == spec


def test_conditions_survive_both_ways() -> None:
    body = StudyCreate.model_validate(
        {
            "name": "cond",
            "search_space": {
                "training.optimizer": {"type": "categorical", "choices": ["sgd", "adam"]},
                "training.momentum": {
                    "type": "float",
                    "low": 0.0,
                    "high": 0.9,
                    "when": [{"param": "training.optimizer", "in": ["sgd"]}],
                },
            },
            "task": {"dataset": {"name": "digits"}},
        }
    )
    spec = to_spec(body)
    shown = spec_json(spec)
    assert shown["search_space"]["training.momentum"]["when"] == [
        {"param": "training.optimizer", "in": ["sgd"]}
    ]
    assert to_spec(StudyCreate.model_validate(shown)) == spec


def test_a_single_objective_is_shown_at_its_own_path() -> None:
    single = StudyCreate.model_validate({"name": "a", "task": {"dataset": {"name": "digits"}}})
    listed = StudyCreate.model_validate(
        {
            "name": "a",
            "objectives": [{"metric": "val_loss", "direction": "minimize"}],
            "task": {"dataset": {"name": "digits"}},
        }
    )
    assert request_loc(("objectives", 0, "metric"), single) == ("objective", "metric")
    assert request_loc(("objectives", 0, "metric"), listed) == ("objectives", 0, "metric")
    assert request_loc(("task", "model", "width"), single) == ("task", "model", "width")
