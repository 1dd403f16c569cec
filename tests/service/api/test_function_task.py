"""Function tasks (``task: {kind: function, name: ...}``): refused with the field's path when
they cannot run, and run end to end like any study (REST, scheduler, Ray, the database) with
each trial's value the function's value at its parameters.
"""

import copy
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import optuna
import pytest
import yaml
from fastapi.testclient import TestClient

from search.functions import get_function
from service.app import create_app
from service.client.cli import read_admin_key
from service.config import Settings
from tests.conftest import Server, finished, wait_for

STUDIES = "/api/v1/studies"
EXAMPLES = Path(__file__).resolve().parents[3] / "examples"
Spec = dict[str, Any]

BRANIN: Spec = {
    "name": "branin",
    "algorithm": {"name": "tpe", "settings": {"seed": 3, "n_startup_trials": 5}},
    "search_space": {
        "x1": {"type": "float", "low": -5.0, "high": 10.0},
        "x2": {"type": "float", "low": 0.0, "high": 15.0},
    },
    "budget": {"max_trials": 16},
    "parallelism": 2,
    "task": {"kind": "function", "name": "branin"},
}


@pytest.fixture
def client(tmp_path: Path) -> Iterator[TestClient]:
    app = create_app(Settings(data_dir=tmp_path, run_scheduler=False))
    with TestClient(app) as client:
        client.headers["Authorization"] = f"Bearer {read_admin_key(tmp_path)}"
        yield client


def _errors(client: TestClient, spec: Spec) -> dict[str, str]:
    resp = client.post(STUDIES, json=spec)
    assert resp.status_code == 422, resp.text
    assert client.get(STUDIES).json()["total"] == 0  # nothing written
    assert optuna.get_all_study_names(storage=client.app.state.storage) == []
    return {item["path"]: item["msg"] for item in resp.json()["detail"]}


def _with(**changes: Any) -> Spec:
    spec = copy.deepcopy(BRANIN)
    for dotted, value in changes.items():
        node = spec
        *parents, last = dotted.split("__")
        for key in parents:
            node = node[key]
        if value is None:
            del node[last]
        else:
            node[last] = value
    return spec


@pytest.mark.parametrize(
    ("spec", "path", "needle"),
    [
        pytest.param(_with(task__name="ackley"), "task.name", "unknown function", id="unknown"),
        pytest.param(_with(task__name=None), "task", "needs task.name", id="no-name"),
        pytest.param(
            _with(task__dataset={"name": "digits"}), "task", "belong to train", id="dataset"
        ),
        pytest.param(
            _with(task={"dataset": {"name": "digits"}, "name": "branin"}),
            "task",
            "belong to function tasks",
            id="name-on-a-train-task",
        ),
        pytest.param(
            _with(objective={"metric": "val_accuracy", "direction": "maximize"}),
            "objective.metric",
            "measures value only",
            id="objective",
        ),
        pytest.param(
            _with(search_space__x3={"type": "float", "low": 0.0, "high": 1.0}),
            "search_space.x3",
            "takes no argument 'x3'",
            id="unknown-argument",
        ),
        pytest.param(
            _with(search_space__x2=None), "search_space", "needs x2", id="missing-argument"
        ),
        pytest.param(
            _with(task__options={"x1": 1.0}), "task.options.x1", "is searched", id="fixed-twice"
        ),
        pytest.param(
            _with(search_space__x1={"type": "categorical", "choices": [1.0, "a"]}),
            "search_space.x1.choices[1]",
            "numbers",
            id="string-choice",
        ),
        pytest.param(
            _with(algorithm={"name": "pbt"}), "algorithm.name", "trains networks", id="pbt"
        ),
        pytest.param(
            _with(architecture={"kind": "macro", "stages": 2}),
            "architecture",
            "needs a train task",
            id="architecture",
        ),
    ],
)
def test_a_function_task_that_cannot_run_is_refused_with_its_path(
    client: TestClient, spec: Spec, path: str, needle: str
) -> None:
    errors = _errors(client, spec)
    assert path in errors, errors
    assert needle in errors[path]


def test_the_example_is_accepted(client: TestClient) -> None:
    spec = yaml.safe_load((EXAMPLES / "branin-tpe.yaml").read_text())
    created = client.post(STUDIES, json=spec)
    assert created.status_code == 201, created.text
    assert created.json()["spec"]["task"] == {"kind": "function", "name": "branin", "options": {}}


def test_the_value_metric_is_refused_for_a_training(client: TestClient) -> None:
    spec = {
        "name": "digits",
        "objective": {"metric": "value", "direction": "minimize"},
        "task": {"dataset": {"name": "digits"}},
    }
    assert "function tasks" in _errors(client, spec)["objective.metric"]


def test_a_function_study_is_stored_as_its_kind_and_the_catalog_lists_functions(
    client: TestClient,
) -> None:
    spec = _with(task__name="sleep", task__options={"seconds": 0.01}, search_space={})
    created = client.post(STUDIES, json=spec)
    assert created.status_code == 201, created.text
    stored = created.json()["spec"]
    assert stored["task"] == {"kind": "function", "name": "sleep", "options": {"seconds": 0.01}}
    assert stored["objectives"] == [{"metric": "value", "direction": "minimize"}]
    functions = client.get("/api/v1/catalog").json()["functions"]
    assert functions["branin"]["domain"] == {"x1": [-5.0, 10.0], "x2": [0.0, 15.0]}
    assert functions["hartmann6"]["optimum"] == pytest.approx(-3.32237)


@pytest.fixture(scope="module")
def server(shared_server: Server) -> Server:
    return shared_server


def test_a_function_study_runs_end_to_end_with_the_functions_values(server: Server) -> None:
    api = server.api
    created = api.post("/studies", json=BRANIN)
    assert created.status_code == 201, created.text
    study = wait_for(api, created.json()["id"], finished, timeout=180)
    assert study["status"] == "completed", study
    assert study["trial_counts"]["COMPLETE"] == 16
    trials = api.get(f"/studies/{study['id']}/trials", params={"limit": 100}).json()["items"]
    assert len(trials) == 16
    branin = get_function("branin")
    for trial in trials:
        assert trial["value"] == pytest.approx(branin(trial["params"]), rel=1e-12)
        assert trial["node_id"]  # ran on a Ray worker
    best = api.get(f"/studies/{study['id']}/best").json()
    assert best["value"] == min(t["value"] for t in trials)
    assert study["best_value"] == best["value"]
    # The trial's retrain spec is a function study of its exact point.
    retrain = api.get(f"/studies/{study['id']}/trials/{best['number']}/retrain-spec").json()
    assert retrain["task"] == {"kind": "function", "name": "branin", "options": best["params"]}
