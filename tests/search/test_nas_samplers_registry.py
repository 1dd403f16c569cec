"""The NAS samplers (regularized evolution, REINFORCE) as registered algorithms: built with the
study's seed, their settings checked, and the checks behind a 422 that name a float parameter
or an integer with too many values for a policy.
"""

from dataclasses import replace
from typing import Any

import optuna
import pytest
from optuna.distributions import (
    BaseDistribution,
    CategoricalDistribution,
    FloatDistribution,
    IntDistribution,
)
from optuna.samplers import BaseSampler

from models.fields import as_dict
from search.nas import RegularizedEvolutionSampler, ReinforceSampler
from search.registry import study_algorithm
from search.samplers.base import SamplerAlgorithm
from search.spec import AlgorithmSpec, Objective, ParamSpec
from tests.search._nas_samplers import SAMPLERS, _proposals
from tests.search.conftest import digits_spec

ARCH_SPACE = (
    ParamSpec("model.block", "categorical", choices=("conv", "mlp")),
    ParamSpec("model.depth", "int", low=1, high=8),
)


def algorithm(name: str) -> SamplerAlgorithm:
    found = study_algorithm(name)
    assert isinstance(found, SamplerAlgorithm)
    return found


def create_sampler(name: str, given: dict[str, Any], space: Any, study_seed: int) -> Any:
    return algorithm(name).sampler(given, space, study_seed)


def check_settings(name: str, given: dict[str, Any]) -> tuple[dict[str, Any] | None, Any]:
    checked, errors = algorithm(name).read_settings(given)
    return (None if checked is None else as_dict(checked)), errors


def problems(name: str, given: dict[str, Any], space: Any, n_objectives: int = 1) -> list[str]:
    """What the algorithm says of a study of ``space`` with ``n_objectives`` (its checks)."""
    objectives = tuple(Objective(f"m{i}", "maximize") for i in range(n_objectives))
    spec = replace(
        digits_spec("nas", 0, 4, 1, 1),
        algorithm=AlgorithmSpec(name, given),
        search_space=space,
        objectives=objectives,
    )
    return [e.msg for e in algorithm(name).check(spec, None)]


@pytest.mark.parametrize(
    ("name", "cls"), [("evolution", RegularizedEvolutionSampler), ("reinforce", ReinforceSampler)]
)
def test_registered_with_the_study_seed(name: str, cls: type[BaseSampler]) -> None:
    sampler = create_sampler(name, {}, ARCH_SPACE, study_seed=3)

    assert isinstance(sampler, cls)
    assert algorithm(name).multi_objective is False
    assert check_settings(name, {})[0]["seed"] is None  # type: ignore[index]
    assert problems(name, {}, ARCH_SPACE) == []
    assert "single objective" in problems(name, {}, ARCH_SPACE, 2)[0]
    same_seed = {"evolution": SAMPLERS["evolution"], "reinforce": SAMPLERS["reinforce"]}[name]
    assert _proposals(lambda _: create_sampler(name, {}, ARCH_SPACE, 3), 0) == _proposals(
        same_seed, 3
    )


def test_evolution_settings_are_checked() -> None:
    assert check_settings("evolution", {"population_size": 10, "seed": 1})[0] == {
        "seed": 1,
        "population_size": 10,
        "sample_size": 5,
    }
    _, errors = check_settings("evolution", {"population_size": 1})
    assert errors[0].loc[-1] == "population_size"
    _, errors = check_settings("evolution", {"mutation_rate": 0.5})
    assert errors[0].msg.startswith("unknown setting 'mutation_rate'")
    found = problems("evolution", {"population_size": 4, "sample_size": 6}, ARCH_SPACE)
    assert found == ["sample_size (6) must be <= population_size (4)"]
    sampler = create_sampler("evolution", {"population_size": 8, "sample_size": 2}, (), 0)
    assert isinstance(sampler, RegularizedEvolutionSampler)
    assert (sampler.population_size, sampler.sample_size) == (8, 2)


def test_reinforce_settings_are_checked() -> None:
    assert check_settings("reinforce", {"learning_rate": 1})[0] == {
        "seed": None,
        "learning_rate": 1,
        "baseline_decay": 0.9,
        "n_startup_trials": 0,
        "entropy_weight": 0.0,
    }
    _, errors = check_settings("reinforce", {"baseline_decay": "high"})
    assert errors[0].loc[-1] == "baseline_decay"
    assert problems("reinforce", {"baseline_decay": 1.0, "learning_rate": 0}, ARCH_SPACE) == [
        "baseline_decay must be < 1, got 1.0",
        "learning_rate must be > 0, got 0",
    ]


@pytest.mark.parametrize("name", SAMPLERS)
def test_check_names_a_float_parameter(name: str) -> None:
    space = (*ARCH_SPACE, ParamSpec("training.lr", "float", low=1e-4, high=0.1, log=True))

    found = problems(name, {}, space)

    assert len(found) == 1
    assert "training.lr is a float" in found[0]
    assert found[0].startswith(name)
    assert "use tpe, or make it categorical" in found[0]


def test_reinforce_check_names_an_integer_with_too_many_values() -> None:
    space = (
        ParamSpec("model.width", "int", low=16, high=1024),
        ParamSpec("model.heads", "int", low=16, high=1024, step=16),
    )

    assert problems("reinforce", {}, space) == [
        "reinforce learns a policy over at most 256 values; model.width has 1,009: give it "
        "a step, or make it categorical"
    ]
    assert problems("evolution", {}, space) == []


def test_samplers_accept_a_float_space_all_the_same() -> None:
    # The check is for validation; the factory builds with any space (floats sampled randomly).
    space = (ParamSpec("x", "float", low=0.0, high=1.0), *ARCH_SPACE)
    for name in SAMPLERS:
        sampler = create_sampler(name, {"seed": 0}, space, 0)
        study = optuna.create_study(sampler=sampler)
        dists: dict[str, BaseDistribution] = {
            "x": FloatDistribution(0.0, 1.0),
            "model.block": CategoricalDistribution(("conv", "mlp")),
            "model.depth": IntDistribution(1, 8),
        }
        for _ in range(25):
            trial = study.ask(dists)
            study.tell(trial, trial.params["x"])
        assert len({t.params["x"] for t in study.trials}) == 25
