"""The algorithm registry, the frozen domain types and the API → domain → Optuna conversion."""

import dataclasses
from pathlib import Path
from typing import Any

import optuna
import pytest
import yaml
from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution
from optuna.samplers import BaseSampler, RandomSampler, TPESampler

from models.families import build_model
from models.training.config import TrainConfig
from search.loop import to_distribution
from search.pbt import pbt_settings
from search.registry import (
    STUDY_KINDS,
    Algorithm,
    Setting,
    SettingError,
    create_pruner,
    create_sampler,
    get_algorithm,
    list_algorithms,
    register,
)
from search.spec import AlgorithmSpec, ParamSpec, StudySpec, TaskSpec
from service.api.schemas.study import StudyCreate

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "digits-mlp.yaml"

ALGORITHM_NAMES = [a.name for a in list_algorithms("sampler")]
PRUNER_NAMES = [a.name for a in list_algorithms("pruner")]
# A space every sampler (grid included: floats need a step) can search.
SPACE = (
    ParamSpec("x", "float", low=0.0, high=1.0, step=0.1),
    ParamSpec("n", "int", low=1, high=100),
    ParamSpec("c", "categorical", choices=("a", "b", "c")),
)


@pytest.fixture(scope="module")
def example() -> dict[str, Any]:
    spec = yaml.safe_load(EXAMPLE.read_text())
    assert isinstance(spec, dict)
    return spec


@pytest.fixture(scope="module")
def study_spec(example: dict[str, Any]) -> StudySpec:
    return StudyCreate.model_validate(example).to_spec()


# -- registry ---------------------------------------------------------------------------------


def test_list_algorithms_names_random_and_tpe_sorted() -> None:
    assert {"random", "tpe"} <= set(ALGORITHM_NAMES)
    assert sorted(ALGORITHM_NAMES) == ALGORITHM_NAMES
    assert len(ALGORITHM_NAMES) == len(set(ALGORITHM_NAMES))


@pytest.mark.parametrize("algorithm", list_algorithms(), ids=lambda a: a.name)
def test_every_algorithm_is_described(algorithm: Algorithm) -> None:
    assert get_algorithm(algorithm.name, algorithm.kind) is algorithm
    assert algorithm.kind in ("sampler", "pruner", "population", "oneshot")
    assert algorithm.description
    setting_names = [s.name for s in algorithm.settings]
    assert len(setting_names) == len(set(setting_names))
    for s in algorithm.settings:
        assert s.description
        # Every default passes the algorithm's own type check.
        assert algorithm.check_settings({})[s.name] == s.default


def test_unknown_algorithm_lists_the_valid_names() -> None:
    with pytest.raises(ValueError, match="unknown sampler 'annealing'") as info:
        get_algorithm("annealing")
    for name in ALGORITHM_NAMES:
        assert name in str(info.value)
    with pytest.raises(ValueError, match=r"unknown pruner 'tpe' \('tpe' is a sampler\)"):
        get_algorithm("tpe", "pruner")


def test_population_methods_are_a_kind_of_their_own() -> None:
    assert [a.name for a in list_algorithms("population")] == ["pb2", "pbt"]
    assert get_algorithm("pbt", STUDY_KINDS).kind == "population"
    assert get_algorithm("tpe", STUDY_KINDS).kind == "sampler"
    with pytest.raises(ValueError, match=r"unknown sampler 'pbt' \('pbt' is a population\)"):
        get_algorithm("pbt")
    with pytest.raises(ValueError, match=r"unknown algorithm 'asha'.*valid: .*pbt") as info:
        get_algorithm("asha", STUDY_KINDS)
    assert "tpe" in str(info.value)


@pytest.mark.parametrize("method", ["pbt", "pb2"])
def test_population_settings_listed_are_the_ones_run_pbt_takes(
    study_spec: StudySpec, method: str
) -> None:
    algorithm = get_algorithm(method, "population")
    listed = algorithm.check_settings({})
    spec = dataclasses.replace(study_spec, algorithm=AlgorithmSpec(method, {}))
    taken = pbt_settings(spec)
    assert taken["method"] == method
    for name, default in listed.items():
        assert name in taken
        assert default is None or taken[name] == default
    assert ("resample_probability" in listed) == (method == "pbt")


def test_registering_a_taken_name_is_an_error() -> None:
    before = list_algorithms()

    with pytest.raises(ValueError, match="already registered"):
        register(get_algorithm("tpe"))

    assert list_algorithms() == before


def test_check_settings_fills_defaults() -> None:
    tpe = get_algorithm("tpe")

    defaults = {
        "seed": None,
        "n_startup_trials": 10,
        "multivariate": True,
        "group": True,
        "constant_liar": True,
    }
    assert tpe.check_settings({}) == defaults
    assert tpe.check_settings({"seed": 3, "multivariate": False}) == {
        **defaults,
        "seed": 3,
        "multivariate": False,
    }
    assert get_algorithm("random").check_settings({"seed": 7}) == {"seed": 7}


def test_check_settings_does_not_change_its_input() -> None:
    given = {"seed": 1}

    get_algorithm("tpe").check_settings(given)

    assert given == {"seed": 1}


def test_unknown_setting_is_named() -> None:
    with pytest.raises(SettingError, match="unknown setting 'sigma'") as info:
        get_algorithm("tpe").check_settings({"seed": 1, "sigma": 0.5})

    assert info.value.setting == "sigma"
    assert isinstance(info.value, ValueError)
    for valid in ("seed", "n_startup_trials", "multivariate"):
        assert valid in str(info.value)


@pytest.mark.parametrize(
    ("setting", "value"),
    [
        ("n_startup_trials", True),  # bool is an int subclass, but not an int setting
        ("n_startup_trials", 2.0),
        ("n_startup_trials", "10"),
        ("seed", 1.5),
        ("seed", False),
        ("multivariate", 1),
        ("multivariate", "true"),
    ],
)
def test_wrong_setting_type_is_named(setting: str, value: Any) -> None:
    with pytest.raises(SettingError, match=f"setting '{setting}' must be") as info:
        get_algorithm("tpe").check_settings({setting: value})

    assert info.value.setting == setting


def _toy(*settings: Setting) -> Algorithm:
    # Not registered: the global registry stays as the service sees it.
    return Algorithm("toy", "sampler", "test only", settings, lambda **_: RandomSampler())


@pytest.mark.parametrize(("value", "ok"), [(1, True), (0.5, True), (True, False), ("1", False)])
def test_float_setting_takes_ints_but_not_bools(value: Any, ok: bool) -> None:
    algorithm = _toy(Setting("sigma", float, 1.0, "step size"))

    if ok:
        assert algorithm.check_settings({"sigma": value}) == {"sigma": value}
    else:
        with pytest.raises(SettingError) as info:
            algorithm.check_settings({"sigma": value})
        assert info.value.setting == "sigma"


def test_algorithm_without_settings_says_so() -> None:
    with pytest.raises(SettingError, match="valid: none"):
        _toy().check_settings({"seed": 1})


@pytest.mark.parametrize("name", ALGORITHM_NAMES)
def test_create_sampler_returns_an_optuna_sampler(name: str) -> None:
    sampler = create_sampler(name, {}, SPACE, study_seed=0)

    assert isinstance(sampler, BaseSampler)


@pytest.mark.parametrize("name", PRUNER_NAMES)
def test_create_pruner_returns_an_optuna_pruner(name: str) -> None:
    from optuna.pruners import BasePruner

    settings = {"lower": 0.5} if name == "threshold" else {}
    assert isinstance(create_pruner(name, settings), BasePruner)


@pytest.mark.parametrize("name", ALGORITHM_NAMES)
def test_seeded_sampler_repeats_its_proposals(name: str) -> None:
    dists = {p.name: to_distribution(p) for p in SPACE}

    def proposals(seed: int) -> list[dict[str, Any]]:
        study = optuna.create_study(sampler=create_sampler(name, {"seed": seed}, SPACE, 0))
        out = []
        for _ in range(3):
            trial = study.ask(dists)
            out.append(trial.params)
            study.tell(trial, trial.params["x"])
        return out

    assert proposals(11) == proposals(11)
    assert proposals(11) != proposals(12)


def test_create_sampler_passes_settings() -> None:
    tpe = create_sampler("tpe", {"seed": 0, "n_startup_trials": 3, "multivariate": True}, (), 0)
    random = create_sampler("random", {"seed": 0}, (), 0)

    assert isinstance(tpe, TPESampler)
    assert tpe._n_startup_trials == 3
    assert tpe._multivariate is True
    assert isinstance(random, RandomSampler)


def test_create_sampler_checks_settings() -> None:
    with pytest.raises(SettingError) as info:
        create_sampler("random", {"n_startup_trials": 3}, (), 0)
    assert info.value.setting == "n_startup_trials"

    with pytest.raises(ValueError, match="unknown sampler"):
        create_sampler("annealing", {}, (), 0)


def test_study_seed_is_the_default_sampler_seed() -> None:
    def first(sampler_settings: dict[str, Any], study_seed: int) -> Any:
        study = optuna.create_study(
            sampler=create_sampler("random", sampler_settings, (), study_seed)
        )
        return study.ask({"x": to_distribution(SPACE[0])}).params["x"]

    assert first({}, 5) == first({"seed": 5}, 0) != first({}, 6)


# -- domain types -----------------------------------------------------------------------------


def test_with_params_sets_dotted_fields_and_leaves_the_original() -> None:
    task = TaskSpec(
        dataset={"name": "digits", "val_fraction": 0.2, "split_seed": 0},
        model={"family": "mlp", "width": 128, "activation": "relu"},
        training={"lr": 1e-3, "epochs": 10},
    )

    new = task.with_params({"model.width": 64, "training.lr": 0.05, "model.activation": "gelu"})

    assert new.model == {"family": "mlp", "width": 64, "activation": "gelu"}
    assert new.training == {"lr": 0.05, "epochs": 10}
    assert new.dataset == task.dataset
    assert task.model == {"family": "mlp", "width": 128, "activation": "relu"}
    assert task.training == {"lr": 1e-3, "epochs": 10}
    assert new.model is not task.model


def test_with_no_params_is_an_equal_task() -> None:
    task = TaskSpec(dataset={"name": "iris"}, model={"family": "mlp"}, training={"lr": 0.1})

    assert task.with_params({}) == task


def test_with_params_can_add_a_field_that_had_its_default() -> None:
    task = TaskSpec(dataset={"name": "iris"}, model={"family": "mlp"}, training={})

    assert task.with_params({"training.momentum": 0.9}).training == {"momentum": 0.9}


def test_domain_types_are_frozen(study_spec: StudySpec) -> None:
    with pytest.raises(dataclasses.FrozenInstanceError):
        study_spec.parallelism = 5  # type: ignore[misc]
    with pytest.raises(dataclasses.FrozenInstanceError):
        study_spec.search_space[0].low = 0.0  # type: ignore[misc]


# -- StudyCreate.to_spec and the Optuna distributions -----------------------------------------


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
    assert dict(spec.task.dataset) == {
        "name": "digits",
        "upload_id": None,
        "options": {},
        "val_fraction": 0.2,
        "split_seed": 0,
    }
    assert dict(spec.task.model) == {"family": "mlp"}  # defaults are filled in by the service
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

    spec = StudyCreate.model_validate(body).to_spec()
    params = {p.name: p for p in spec.search_space}

    assert params["model.width"] == ParamSpec("model.width", "int", 16, 128, False, 16.0)
    assert to_distribution(params["model.width"]) == IntDistribution(16, 128, step=16)
    assert to_distribution(params["model.dropout"]) == FloatDistribution(0.0, 0.5, step=0.1)
    assert to_distribution(params["training.epochs"]) == IntDistribution(1, 5, step=1)


def test_sampled_params_make_a_trainable_task(study_spec: StudySpec) -> None:
    # ask → with_params → what a worker builds: every sampled task must construct.
    dists = {p.name: to_distribution(p) for p in study_spec.search_space}
    study = optuna.create_study(sampler=create_sampler("random", {"seed": 0}, (), 0))

    for _ in range(5):
        trial = study.ask(dists)
        task = study_spec.task.with_params(trial.params)
        cfg = TrainConfig(**task.training)
        model = build_model(dict(task.model), (1, 8, 8), 10)

        assert cfg.lr == trial.params["training.lr"]
        assert cfg.batch_size == trial.params["training.batch_size"]
        assert task.model["width"] == trial.params["model.width"]
        assert sum(p.numel() for p in model.parameters()) > 0
        study.tell(trial, 0.5)


def test_spec_survives_the_json_dump_the_service_stores(example: dict[str, Any]) -> None:
    # The service stores body.model_dump(mode="json") and the scheduler rebuilds from it.
    body = StudyCreate.model_validate(example)

    again = StudyCreate.model_validate(body.model_dump(mode="json"))

    assert again.to_spec() == body.to_spec()


def test_with_params_sets_one_element_of_a_list() -> None:
    task = TaskSpec(dataset={}, model={"family": "cnn", "widths": [16, 32]}, training={})
    trial = task.with_params({"model.widths.1": 64, "training.lr": 0.1})
    assert trial.model["widths"] == [16, 64] and trial.training == {"lr": 0.1}
    assert task.model["widths"] == [16, 32]  # the study's task is untouched
