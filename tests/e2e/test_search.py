"""Every search algorithm end to end through the API, and the search controls: several
objectives, conditional parameters, target value, draining stop, warm starts, reproducibility,
early stopping that saves epochs.
"""

from typing import Any

import pytest

from search.registry import names, study_algorithm
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
from tests.conftest import Server, finished, wait_for

pytestmark = pytest.mark.slow

SAMPLERS = names("sampler")
PRUNERS = names("pruner")
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


@pytest.fixture(scope="module")
def server(shared_server: Server) -> Server:
    return shared_server


def small_study(name: str, **overrides: Any) -> dict[str, Any]:
    """Iris MLP, two epochs: a real study in a second or two. Floats have steps (grid)."""
    spec: dict[str, Any] = {
        "name": name,
        "search_space": {
            "training.lr": {"type": "float", "low": 0.005, "high": 0.05, "step": 0.015},
            "model.width": {"type": "int", "low": 8, "high": 16, "step": 8},
            "model.activation": {"type": "categorical", "choices": ["relu", "tanh"]},
        },
        "budget": {"max_trials": 4},
        "parallelism": 2,
        "task": {"dataset": {"name": "iris"}, "training": {"epochs": 2}},
    }
    spec.update(overrides)
    return spec


def run(server: Server, spec: dict[str, Any]) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    created = server.api.post("/studies", json=spec)
    assert created.status_code == 201, created.text
    study = wait_for(server.api, created.json()["id"], finished, timeout=300)
    trials = server.api.get(f"/studies/{study['id']}/trials").json()["items"]
    return study, trials


@pytest.mark.parametrize("sampler", SAMPLERS)
def test_every_sampler_runs_a_study(server: Server, sampler: str) -> None:
    spec = small_study(f"s-{sampler}", algorithm={"name": sampler, "settings": {"seed": 1}})
    if refuses_floats(sampler):  # no floats: the NAS ones
        grid = [0.005, 0.02, 0.035, 0.05]
        spec["search_space"]["training.lr"] = {"type": "categorical", "choices": grid}
    study, trials = run(server, spec)
    assert study["status"] == "completed", study
    assert [t["state"] for t in trials] == ["COMPLETE"] * 4
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


def test_conditional_parameters_are_sampled_only_when_active(server: Server) -> None:
    spec = small_study(
        "conditional",
        algorithm={"name": "tpe", "settings": {"seed": 4, "n_startup_trials": 2}},
        budget={"max_trials": 8},
        search_space={
            "training.optimizer": {"type": "categorical", "choices": ["sgd", "adam"]},
            "training.momentum": {
                "type": "float",
                "low": 0.5,
                "high": 0.95,
                "when": [{"param": "training.optimizer", "in": ["sgd"]}],
            },
            "model.hidden_layers": {"type": "int", "low": 1, "high": 3},
            "model.dropout": {
                "type": "float",
                "low": 0.0,
                "high": 0.5,
                "when": [{"param": "model.hidden_layers", "gt": 1}],
            },
        },
    )
    study, trials = run(server, spec)
    assert study["status"] == "completed"
    optimizers = {t["params"]["training.optimizer"] for t in trials}
    assert optimizers == {"sgd", "adam"}
    for t in trials:
        p = t["params"]
        assert ("training.momentum" in p) == (p["training.optimizer"] == "sgd")
        assert ("model.dropout" in p) == (p["model.hidden_layers"] > 1)


def test_target_value_ends_the_study(server: Server) -> None:
    spec = small_study(
        "target",
        budget={"max_trials": 40, "target_value": 0.8},
        parallelism=1,
        algorithm={"name": "random", "settings": {"seed": 5}},
    )
    spec["task"]["training"]["epochs"] = 20
    study, trials = run(server, spec)
    assert study["status"] == "completed"
    assert study["status_reason"].startswith("target value 0.8 reached by trial")
    assert len(trials) < 40
    assert trials[-1]["value"] >= 0.8
    assert all(t["value"] < 0.8 for t in trials[:-1])


def test_drain_lets_running_trials_finish(server: Server) -> None:
    spec = small_study("drain", budget={"max_trials": 50}, search_space={})
    # Long enough that neither trial ends (and a third starts) before the drain lands.
    epochs = spec["task"]["training"]["epochs"] = 600
    api = server.api
    study_id = api.post("/studies", json=spec).raise_for_status().json()["id"]
    wait_for(api, study_id, lambda s: s["trial_counts"]["RUNNING"] == 2)
    assert api.post(f"/studies/{study_id}/stop", params={"drain": "true"}).status_code == 202
    study = wait_for(api, study_id, finished, timeout=300)
    assert study["status"] == "stopped"
    assert study["status_reason"] == "stopped by user after its trials finished"
    trials = api.get(f"/studies/{study_id}/trials").json()["items"]
    assert [t["state"] for t in trials] == ["COMPLETE", "COMPLETE"]
    assert all(len(t["intermediate_values"]) == epochs for t in trials)


def population_study(name: str, method: str, **settings: Any) -> dict[str, Any]:
    """Four members of a classification MLP, 6 epochs, perturbed every 2: the learning rate
    is perturbed, the width set once per member (it shapes the weights a clone inherits)."""
    return {
        "name": name,
        "algorithm": {"name": method, "settings": {"population_size": 4, **settings}},
        "objective": {"metric": "val_loss", "direction": "minimize"},
        "search_space": {
            "training.lr": {"type": "float", "low": 0.01, "high": 1.0, "log": True},
            "model.width": {"type": "int", "low": 16, "high": 32, "step": 16},
        },
        "resources": {"cpu": 0.5},  # the whole population trains at once on 2 CPUs
        "seed": 3,
        "task": {
            "dataset": {"name": "classification", "options": {"n_samples": 1000}},
            "training": {"epochs": 6, "optimizer": "sgd", "batch_size": 64},
        },
    }


@pytest.mark.parametrize("method", ["pbt", "pb2"])
def test_population_methods_run_a_study_with_lineage(server: Server, method: str) -> None:
    listed = {a["name"]: a for a in server.api.get("/algorithms").json()}
    assert listed[method]["kind"] == "population"
    assert {s["name"] for s in listed[method]["settings"]} >= {
        "population_size",
        "perturbation_interval",
        "quantile_fraction",
    }
    study, trials = run(server, population_study(f"pop-{method}", method))
    assert study["status"] == "completed", study
    assert "4 of 4 members trained 6 epochs" in study["status_reason"], study
    assert {t["state"] for t in trials} == {"COMPLETE"}
    members = {t["user_attrs"]["pbt_member"] for t in trials}
    assert members == {0, 1, 2, 3}
    # Synchronous steps at epochs 2 and 4: each clones a top member into the bottom one.
    exploits = [t for t in trials if t["user_attrs"]["pbt_parent"] is not None]
    assert len(exploits) == 2
    assert len(trials) == 4 + len(exploits)
    for t in exploits:
        attrs = t["user_attrs"]
        assert attrs["pbt_exploit_epoch"] in (2, 4)
        assert attrs["pbt_method"] == method
        parent = next(p for p in trials if p["number"] == attrs["pbt_parent_trial"])
        assert parent["user_attrs"]["pbt_member"] == attrs["pbt_parent"]
        # The clone keeps the parent's width (it shapes the weights) and perturbs the lr.
        assert t["params"]["model.width"] == parent["params"]["model.width"]
        # PBT scales or resamples it; PB2 copies it while its bandit has no reward change
        # for the parent yet (its first step), then picks from its GP.
        assert set(attrs["pbt_perturbation"]) == {"training.lr"} or method == "pb2"
        assert set(attrs["pbt_perturbation"]) <= {"training.lr"}
    for t in trials:  # one intermediate value per epoch of the segment, keyed by global epoch
        first, last = t["user_attrs"]["pbt_epochs"]
        assert sorted(map(int, t["intermediate_values"])) == list(range(first, last + 1))
    best = server.api.get(f"/studies/{study['id']}/best").json()
    assert best["user_attrs"]["pbt_epochs"][1] == 6
    weights = server.api.get(f"/studies/{study['id']}/trials/{best['number']}/artifacts/weights")
    assert weights.status_code == 200 and len(weights.content) > 1000
    # Members checkpointed under the data directory at every perturbation interval.
    folder = server.data_dir / "pbt" / study["optuna_study_name"]
    checkpoints = list(folder.rglob("state.pt"))
    assert len(checkpoints) >= 4, checkpoints
    assert server.api.delete(f"/studies/{study['id']}").status_code == 204
    assert not folder.exists()
    assert not (server.data_dir / "artifacts" / study["optuna_study_name"]).exists()


def test_population_study_stops_on_request_and_the_next_one_waits(server: Server) -> None:
    api = server.api
    spec = population_study("pop-stop", "pbt")
    spec["task"]["training"]["epochs"] = 60
    created = api.post("/studies", json=spec)
    assert created.status_code == 201, created.text
    study_id = created.json()["id"]
    wait_for(api, study_id, lambda s: sum(s["trial_counts"].values()) >= 4, timeout=120)
    # One population at a time: the next waits, saying for which, while this one runs.
    queued = api.post("/studies", json=population_study("pop-next", "pbt")).json()["id"]
    waiting = wait_for(api, queued, lambda s: s["status_reason"] is not None, timeout=30)
    assert waiting["status"] == "pending"
    assert waiting["status_reason"].startswith(f"waiting for population study {study_id}")

    assert api.post(f"/studies/{study_id}/stop").status_code == 202
    study = wait_for(api, study_id, finished, timeout=120)
    assert study["status"] == "stopped" and study["status_reason"] == "stopped by user"
    trials = api.get(f"/studies/{study_id}/trials").json()["items"]
    assert trials and {t["state"] for t in trials} <= {"COMPLETE", "FAIL"}
    assert all(t["user_attrs"]["pbt_epochs"][1] < 60 for t in trials if t["state"] == "COMPLETE")

    after = wait_for(api, queued, finished, timeout=180)
    assert after["status"] == "completed", after
    assert after["started_at"] >= study["finished_at"]
    assert "4 of 4 members trained 6 epochs" in after["status_reason"]


def test_warm_start_points_and_trials_from_another_study(server: Server) -> None:
    first, first_trials = run(
        server, small_study("source", algorithm={"name": "random", "settings": {"seed": 6}})
    )
    point = {"training.lr": 0.02, "model.width": 16, "model.activation": "tanh"}
    spec = small_study(
        "warm",
        algorithm={"name": "tpe", "settings": {"seed": 6}},
        warm_start={"points": [point], "from_study": first["id"]},
        budget={"max_trials": 3},
    )
    _study, trials = run(server, spec)
    copied = [t for t in trials if str(t["user_attrs"].get("warm_start", "")).startswith("study")]
    run_here = [t for t in trials if t not in copied]
    assert len(copied) == 4 and len(run_here) == 3  # copies do not use the budget
    assert sorted(t["value"] for t in copied) == sorted(t["value"] for t in first_trials)
    assert run_here[0]["params"] == point and run_here[0]["user_attrs"]["warm_start"] == "point"


def test_same_study_twice_gives_the_same_trials(server: Server) -> None:
    spec = small_study(
        "repro",
        algorithm={"name": "tpe", "settings": {"n_startup_trials": 2}},
        parallelism=1,
        seed=7,
    )
    _, a = run(server, spec)
    _, b = run(server, spec)
    assert [(t["params"], t["value"]) for t in a] == [(t["params"], t["value"]) for t in b]
    _, c = run(server, {**spec, "seed": 8})
    assert [t["params"] for t in c] != [t["params"] for t in a]


@pytest.mark.parametrize(
    ("overrides", "path", "words"),
    [
        (
            {
                "algorithm": {"name": "grid"},
                "search_space": {
                    "model.width": {"type": "int", "low": 1, "high": 1000},
                    "training.epochs": {"type": "int", "low": 1, "high": 1000},
                },
            },
            "algorithm",
            ("the grid has 1,000,000 points; the limit is 100,000",),
        ),
        (
            {
                "algorithm": {"name": "grid"},
                "search_space": {"training.lr": {"type": "float", "low": 0.01, "high": 0.1}},
            },
            "algorithm",
            ("grid needs a step", "training.lr"),
        ),
        (
            {"algorithm": {"name": "tpe", "settings": {"sigma": 1}}},
            "algorithm.settings.sigma",
            ("unknown setting 'sigma'",),
        ),
        (
            {"pruner": {"name": "asha", "settings": {"eta": 3}}},
            "pruner.settings.eta",
            ("unknown setting 'eta'",),
        ),
        ({"pruner": {"name": "tpe"}}, "pruner.name", ("unknown pruner 'tpe'", "asha")),
        (
            {
                "algorithm": {"name": "cmaes"},
                "objectives": [
                    {"metric": "val_accuracy", "direction": "maximize"},
                    {"metric": "param_count", "direction": "minimize"},
                ],
            },
            "algorithm",
            ("cmaes optimizes a single objective; this study has 2",),
        ),
        (
            {
                "pruner": {"name": "asha"},
                "objective": {"metric": "param_count", "direction": "minimize"},
            },
            "pruner",
            ("needs an objective measured every epoch",),
        ),
        (
            {
                "search_space": {
                    "training.momentum": {
                        "type": "float",
                        "low": 0,
                        "high": 0.9,
                        "when": [{"param": "training.optimizer", "in": ["sgd"]}],
                    }
                }
            },
            'search_space["training.momentum"].when[0].param',
            ("must name an earlier parameter",),
        ),
        (
            {"warm_start": {"points": [{"training.lr": 5.0}]}},
            'warm_start.points[0]["training.lr"]',
            ("outside training.lr's range",),
        ),
        ({"warm_start": {"from_study": 9999}}, "warm_start.from_study", ("study 9999 not found",)),
        (  # two epochs: no perturbation interval ends before training does
            {"algorithm": {"name": "pbt"}},
            "algorithm",
            ("pbt needs a checkpointable task", "training.epochs is 2"),
        ),
        (
            {"algorithm": {"name": "pbt", "settings": {"population": 8}}},
            "algorithm.settings.population",
            ("unknown setting 'population' for 'pbt'", "population_size"),
        ),
        (
            {"algorithm": {"name": "pb2", "settings": {"perturbation_interval": 1}}},
            "algorithm",
            ("pb2 models float and int parameters only; categorical: model.activation",),
        ),
        (
            {
                "algorithm": {"name": "pbt", "settings": {"perturbation_interval": 1}},
                "pruner": {"name": "asha"},
            },
            "pruner",
            ("pbt does not stop trials early",),
        ),
    ],
)
def test_bad_search_specs_are_refused(
    server: Server, overrides: dict[str, Any], path: str, words: tuple[str, ...]
) -> None:
    api = server.api
    before = api.get("/studies").json()["total"]
    resp = api.post("/studies", json=small_study("bad", **overrides))
    assert resp.status_code == 422, resp.text
    detail = {d["path"]: d["msg"] for d in resp.json()["detail"]}
    assert path in detail, detail
    for word in words:
        assert word in detail[path], detail[path]
    assert api.get("/studies").json()["total"] == before
