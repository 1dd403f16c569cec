"""Every search algorithm end to end through the API: each sampler and each pruner runs a
small study on the shared server, ASHA saves epochs for a comparable best, and two objectives
give a Pareto front.
"""

from typing import Any

import pytest

from search.registry import names, study_algorithm
from search.registry import pruner as pruner_algorithm
from search.spec import (
    AlgorithmSpec,
    Budget,
    DatasetRef,
    Objective,
    ParamSpec,
    Resources,
    StudySpec,
    TrainTask,
)
from tests.conftest import Server
from tests.e2e._search import run, small_study

pytestmark = pytest.mark.slow

SAMPLERS = names("sampler")
# The pruners of several objectives refuse one objective: tests/e2e/test_mo_pruning.py runs them.
PRUNERS = [p for p in names("pruner") if not pruner_algorithm(p).multi_objective]
STOPS_EARLY = {"bohb"}  # samplers with their own early stopping (asynchronous Hyperband)
LR_FLOAT = ParamSpec("training.lr", "float", low=0.005, high=0.05)


def refuses_floats(sampler: str) -> bool:
    """Whether ``sampler`` refuses a float parameter (the NAS ones do)."""
    spec = StudySpec(
        name="floats",
        objectives=(Objective("val_accuracy", "maximize"),),
        algorithm=AlgorithmSpec(sampler),
        search_space=(LR_FLOAT,),
        budget=Budget(max_trials=4),
        parallelism=1,
        resources=Resources(),
        task=TrainTask(DatasetRef("iris")),
    )
    return bool(study_algorithm(sampler).check(spec, None))


PRUNER_SETTINGS = {
    "threshold": {"lower": 0.3},
    "median": {"n_startup_trials": 1},
    "percentile": {"n_startup_trials": 1},
    "patient": {"patience": 1},
}


@pytest.mark.parametrize("sampler", SAMPLERS)
def test_every_sampler_runs_a_study(server: Server, sampler: str) -> None:
    spec = small_study(f"s-{sampler}", algorithm={"name": sampler, "settings": {"seed": 1}})
    if refuses_floats(sampler):  # no floats: the NAS ones
        grid = [0.005, 0.02, 0.035, 0.05]
        spec["search_space"]["training.lr"] = {"type": "categorical", "choices": grid}
    study, trials = run(server, spec)
    assert study["status"] == "completed", study
    states = {"COMPLETE", "PRUNED"} if sampler in STOPS_EARLY else {"COMPLETE"}
    assert len(trials) == 4 and {t["state"] for t in trials} <= states, trials
    for t in trials:  # 2 epochs: bohb's one rung is epoch 1
        assert t["state"] == "COMPLETE" or t["user_attrs"]["pruned_at_epoch"] == 1, t
    for t in trials:
        assert set(t["params"]) == {"training.lr", "model.width", "model.activation"}
        lr = t["params"]["training.lr"]  # on the step grid (Optuna rounds in binary)
        assert min(abs(lr - g) for g in (0.005, 0.02, 0.035, 0.05)) < 1e-9


@pytest.mark.parametrize("pruner", PRUNERS)
def test_every_pruner_runs_a_study(server: Server, pruner: str) -> None:
    spec = small_study(
        f"p-{pruner}",
        algorithm={"name": "random", "settings": {"seed": 2}},
        pruner={"name": pruner, "settings": PRUNER_SETTINGS.get(pruner, {})},
        budget={"max_trials": 6},
        parallelism=1,
    )
    spec["task"]["training"]["epochs"] = 6
    spec["search_space"]["training.lr"] = {"type": "float", "low": 1e-4, "high": 0.1, "log": True}
    study, trials = run(server, spec)
    assert study["status"] == "completed", study
    assert len(trials) == 6
    assert {t["state"] for t in trials} <= {"COMPLETE", "PRUNED"}
    for t in trials:
        epochs = len(t["intermediate_values"])
        if t["state"] == "PRUNED":
            assert t["user_attrs"]["pruned_at_epoch"] == epochs < 6
        else:
            assert epochs == 6


def test_asha_spends_fewer_epochs_for_a_comparable_best(server: Server) -> None:
    def digits(name: str, pruner: dict[str, Any] | None) -> dict[str, Any]:
        return {
            "name": name,
            "algorithm": {"name": "random", "settings": {"seed": 3}},
            "pruner": pruner,
            "search_space": {
                "training.lr": {"type": "float", "low": 1e-4, "high": 0.05, "log": True},
                "model.width": {"type": "int", "low": 16, "high": 128, "log": True},
            },
            "budget": {"max_trials": 12},
            "parallelism": 2,
            "task": {"dataset": {"name": "digits"}, "training": {"epochs": 9}},
        }

    full, full_trials = run(server, digits("no-pruning", None))
    asha, asha_trials = run(
        server,
        digits("asha", {"name": "asha", "settings": {"min_resource": 1, "reduction_factor": 3}}),
    )
    epochs_full = sum(len(t["intermediate_values"]) for t in full_trials)
    epochs_asha = sum(len(t["intermediate_values"]) for t in asha_trials)
    assert epochs_full == 12 * 9
    assert epochs_asha < 0.6 * epochs_full, (epochs_asha, epochs_full)
    assert any(t["state"] == "PRUNED" for t in asha_trials)
    assert asha["best_value"] >= full["best_value"] - 0.02, (asha["best_value"], full["best_value"])


def test_two_objectives_give_a_pareto_front(server: Server) -> None:
    spec = small_study(
        "pareto",
        objectives=[
            {"metric": "val_accuracy", "direction": "maximize"},
            {"metric": "param_count", "direction": "minimize"},
        ],
        algorithm={"name": "nsga2", "settings": {"seed": 0, "population_size": 4}},
        budget={"max_trials": 8},
    )
    spec["search_space"]["model.width"] = {"type": "int", "low": 2, "high": 64}
    study, trials = run(server, spec)
    assert study["status"] == "completed" and study["best_value"] is None
    front = server.api.get(f"/studies/{study['id']}/best").json()
    assert front["objectives"][1] == {"metric": "param_count", "direction": "minimize"}
    points = {t["number"]: t["values"] for t in trials if t["state"] == "COMPLETE"}
    on_front = {t["number"] for t in front["trials"]}
    assert on_front
    for n, (acc, params) in points.items():
        beaten = any(
            a >= acc and p <= params and (a, p) != (acc, params) for a, p in points.values()
        )
        assert (n in on_front) == (not beaten)
    for t in trials:  # the param count is the real size of the iris MLP (2 hidden layers)
        w = t["params"]["model.width"]
        assert t["values"][1] == (4 * w + w) + (w * w + w) + (3 * w + 3)
