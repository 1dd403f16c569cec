"""``local_search``: one-edit neighbourhoods of the incumbent with random restarts, on the
synthetic NAS table: seeded determinism, no architecture twice (in flight included), the walk
itself, the registry's checks, and a lower mean regret than random search."""

from pathlib import Path
from typing import Any

import optuna
import pytest
import yaml
from optuna.distributions import CategoricalDistribution, FloatDistribution
from optuna.trial import TrialState

from search.nas import LocalSearchSampler
from search.nas.synthetic import SyntheticNAS
from search.registry import names
from search.spec import ParamSpec
from tests.search._nas_arch import (
    ARCH_SPACE,
    check,
    in_flight,
    key,
    mean_regret,
    proposals,
    random_mean_regret,
)
from tests.service.api._inprocess import _client
from tests.service.api._validation import EXAMPLE


def make(nas: SyntheticNAS, seed: int, **kw: Any) -> LocalSearchSampler:
    return LocalSearchSampler(nas.space(), n_init=5, seed=seed, **kw)


def distance(a: dict[str, Any], b: dict[str, Any]) -> int:
    return sum(a[k] != b[k] for k in a)


def test_same_seed_same_architectures_and_another_seed_others() -> None:
    nas = SyntheticNAS(seed=1)
    first = proposals(make, 3, 40, nas)
    assert first == proposals(make, 3, 40, nas)
    assert first != proposals(make, 4, 40, nas)


@pytest.mark.parametrize("mode", ["first", "best"])
def test_never_an_architecture_twice_until_the_space_is_exhausted(mode: str) -> None:
    nas = SyntheticNAS(n_decisions=3, n_choices=3, seed=2)  # 27 architectures
    seen = proposals(lambda n, s: make(n, s, mode=mode), 0, 30, nas)
    assert len({key(p) for p in seen[:27]}) == 27  # every architecture, once each
    assert all(key(p) in {key(q) for q in seen[:27]} for p in seen[27:])


def test_proposals_in_flight_count_as_seen() -> None:
    nas = SyntheticNAS(seed=3)
    seen = in_flight(make, nas, told=8, asked=30)
    assert len({key(p) for p in seen}) == len(seen) == 38


def test_after_the_random_start_each_architecture_is_one_edit_from_an_earlier_one() -> None:
    nas = SyntheticNAS(seed=4)
    sampler = make(nas, 4)
    study = optuna.create_study(direction="maximize", sampler=sampler)
    study.optimize(nas.objective, n_trials=80)
    trials = [t.params for t in study.trials]
    walked = [
        p for i, p in enumerate(trials[5:], 5) if min(distance(p, q) for q in trials[:i]) == 1
    ]
    # every trial but the restarts' random architectures is a neighbour of an earlier one
    assert len(walked) >= 75 - sampler.restarts
    assert sampler.restarts >= 1  # a table of 5**6 has local optima within 80 trials


def test_best_improvement_searches_the_whole_neighbourhood_before_moving() -> None:
    nas = SyntheticNAS(seed=5)  # 6 decisions x 5 choices: 24 neighbours
    study = optuna.create_study(direction="maximize", sampler=make(nas, 5, mode="best"))
    study.optimize(nas.objective, n_trials=5 + 24)
    trials = [t.params for t in study.trials]
    start = max(trials[:5], key=nas.value)
    assert all(distance(p, start) == 1 for p in trials[5:])


def test_failed_and_pruned_trials_take_part() -> None:
    nas = SyntheticNAS(n_decisions=2, n_choices=3, seed=6)  # 9 architectures
    study = optuna.create_study(direction="maximize", sampler=make(nas, 0))
    states = []
    for i in range(9):
        trial = study.ask(nas.space())
        if i % 3 == 0:
            study.tell(trial, state=TrialState.FAIL)
        elif i % 3 == 1:
            trial.report(nas.value(trial.params), 1)
            study.tell(trial, state=TrialState.PRUNED)
        else:
            study.tell(trial, nas.value(trial.params))
        states.append(key(trial.params))
    assert len(set(states)) == 9


def test_floats_and_conditional_parameters_are_sampled_at_random() -> None:
    choices = CategoricalDistribution(("a", "b", "c"))
    sampler = LocalSearchSampler({"x": choices}, n_init=2, seed=0)
    study = optuna.create_study(direction="maximize", sampler=sampler)
    for _ in range(3):
        trial = study.ask()
        x = trial.suggest_categorical("x", ("a", "b", "c"))
        lr = trial.suggest_float("lr", 0.1, 1.0)
        if x == "a":
            trial.suggest_int("depth", 1, 3)
        study.tell(trial, lr)
    assert sorted(t.params["x"] for t in study.trials) == ["a", "b", "c"]
    assert all(0.1 <= t.params["lr"] <= 1.0 for t in study.trials)
    assert isinstance(study.trials[0].distributions["lr"], FloatDistribution)


def test_local_search_has_a_lower_mean_regret_than_random_search() -> None:
    # measured (5 seeds, 60 trials): local_search 0.013, random 0.092
    ours = mean_regret(make, range(5), 60)
    assert ours < random_mean_regret(range(5), 60)


# -- as a registered algorithm ----------------------------------------------------------------


def test_registered_and_its_checks_name_the_field() -> None:
    assert {"local_search", "predictor"} <= set(names("sampler"))
    assert check("local_search", ARCH_SPACE, mode="best") == []
    lr = ParamSpec("training.lr", "float", low=0.001, high=0.1)
    wide = ParamSpec("model.width", "int", low=8, high=512)
    errors = check("local_search", (*ARCH_SPACE, lr, wide))
    assert [e.loc for e in errors] == [("algorithm", "name")] * 2
    assert "training.lr is a float" in errors[0].msg
    assert "model.width has 505" in errors[1].msg and "at most 64" in errors[1].msg
    (bad_mode,) = check("local_search", ARCH_SPACE, mode="steepest")
    assert bad_mode.loc == ("algorithm", "settings", "mode")
    (bad_init,) = check("local_search", ARCH_SPACE, n_init=0)
    assert bad_init.loc == ("algorithm", "settings", "n_init")
    (two,) = check("local_search", ARCH_SPACE, n_objectives=2)
    assert "single objective" in two.msg


def test_the_api_refuses_a_float_and_a_wide_integer_at_algorithm_name(tmp_path: Path) -> None:
    spec = yaml.safe_load(EXAMPLE.read_text())  # digits MLP: floats, a log-scaled width
    spec["algorithm"] = {"name": "local_search"}
    for client in _client(tmp_path):
        response = client.post("/api/v1/studies", json=spec)
        assert response.status_code == 422, response.text
        detail = response.json()["detail"]
        assert {d["path"] for d in detail} == {"algorithm.name"}
        msgs = " / ".join(d["msg"] for d in detail)
        assert "model.width has 225" in msgs and "training.lr is a float" in msgs
        assert client.get("/api/v1/studies").json()["items"] == []  # nothing half-written
