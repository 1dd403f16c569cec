"""``bohb`` end to end on the shared server: a digits study whose trials are stopped only at
its rungs and that reaches a good model on fewer epochs than full training would spend; and
its refusals (another pruner, bad settings), each a 422 at its path with no study created."""

from typing import Any

import pytest

from tests.conftest import Server
from tests.e2e._search import run, small_study

pytestmark = pytest.mark.slow


def test_bohb_stops_trials_at_its_rungs_and_finds_a_good_model(server: Server) -> None:
    spec = {
        "name": "bohb-digits",
        "algorithm": {"name": "bohb", "settings": {"seed": 4, "n_startup": 4}},
        "search_space": {
            "training.lr": {"type": "float", "low": 1e-4, "high": 0.05, "log": True},
            "model.width": {"type": "int", "low": 16, "high": 128, "log": True},
        },
        "budget": {"max_trials": 15},
        "parallelism": 2,
        "task": {"dataset": {"name": "digits"}, "training": {"epochs": 9}},
    }
    study, trials = run(server, spec)
    assert study["status"] == "completed", study
    assert len(trials) == 15
    assert {t["state"] for t in trials} <= {"COMPLETE", "PRUNED"}
    pruned = [t for t in trials if t["state"] == "PRUNED"]
    assert pruned, "asynchronous Hyperband stopped no trial"
    for t in pruned:  # stopped only at a rung: 1 or 3 epochs (9 is the full training)
        assert t["user_attrs"]["pruned_at_epoch"] in (1, 3), t["user_attrs"]
        assert len(t["intermediate_values"]) == t["user_attrs"]["pruned_at_epoch"]
    for t in trials:
        if t["state"] == "COMPLETE":
            assert len(t["intermediate_values"]) == 9
    epochs = sum(len(t["intermediate_values"]) for t in trials)
    assert epochs < 0.8 * 15 * 9, epochs
    assert study["best_value"] >= 0.9, study["best_value"]


@pytest.mark.parametrize(
    ("overrides", "path", "words"),
    [
        (
            {"algorithm": {"name": "bohb"}, "pruner": {"name": "asha"}},
            "pruner",
            ("bohb stops trials early itself",),
        ),
        (
            {"algorithm": {"name": "bohb", "settings": {"reduction_factor": 1}}},
            "algorithm.settings.reduction_factor",
            ("reduction_factor",),
        ),
        (
            {"algorithm": {"name": "bohb", "settings": {"top_fraction": 1.0}}},
            "algorithm.settings.top_fraction",
            ("between 0 and 1",),
        ),
        (
            {"algorithm": {"name": "bohb", "settings": {"min_resource": 2}}},
            "algorithm.settings.min_resource",
            ("must be below max_resource (2)",),
        ),
        (
            {
                "algorithm": {"name": "bohb"},
                "objectives": [
                    {"metric": "val_accuracy", "direction": "maximize"},
                    {"metric": "param_count", "direction": "minimize"},
                ],
            },
            "algorithm",
            ("single objective",),
        ),
    ],
)
def test_bad_bohb_studies_are_refused(
    server: Server, overrides: dict[str, Any], path: str, words: tuple[str, ...]
) -> None:
    api = server.api
    before = api.get("/studies").json()["total"]
    resp = api.post("/studies", json=small_study("bad-bohb", **overrides))
    assert resp.status_code == 422, resp.text
    detail = {d["path"]: d["msg"] for d in resp.json()["detail"]}
    assert path in detail, detail
    for word in words:
        assert word in detail[path], detail[path]
    assert api.get("/studies").json()["total"] == before
