"""Early stopping of a study of several objectives, end to end through the API: a digits MLP
trading accuracy against its parameter count or its latency under ``mo_asha`` and ``mo_median``
prunes trials at their rungs, each with its rung and reason, and completes with a Pareto front.
Both second objectives are known before training (counted; timed on the built network), so
every rung ranks on both."""

from typing import Any

import pytest

from tests.conftest import Server
from tests.e2e._search import run

pytestmark = pytest.mark.slow

EPOCHS = 6


def digits_two_objectives(
    name: str, pruner: dict[str, Any], second: str = "param_count"
) -> dict[str, Any]:
    return {
        "name": name,
        "objectives": [
            {"metric": "val_accuracy", "direction": "maximize"},
            {"metric": second, "direction": "minimize"},
        ],
        "algorithm": {"name": "random", "settings": {"seed": 4}},
        "pruner": pruner,
        "search_space": {
            "training.lr": {"type": "float", "low": 1e-4, "high": 0.05, "log": True},
            "model.width": {"type": "int", "low": 8, "high": 128, "log": True},
        },
        "budget": {"max_trials": 10},
        "parallelism": 2,
        "task": {
            "dataset": {"name": "digits"},
            "model": {"family": "mlp", "hidden_layers": 1},
            "training": {"epochs": EPOCHS},
        },
    }


@pytest.mark.parametrize("second", ["param_count", "latency_ms"])
def test_mo_asha_prunes_at_rungs_with_reasons_and_keeps_a_front(
    server: Server, second: str
) -> None:
    pruner = {"name": "mo_asha", "settings": {"min_resource": 1, "reduction_factor": 2}}
    study, trials = run(server, digits_two_objectives(f"mo-asha-{second}", pruner, second))
    assert study["status"] == "completed", study
    assert len(trials) == 10
    assert {t["state"] for t in trials} <= {"COMPLETE", "PRUNED"}
    pruned = [t for t in trials if t["state"] == "PRUNED"]
    assert pruned, [t["state"] for t in trials]
    for t in pruned:
        attrs = t["user_attrs"]
        rung = attrs["pruned_at_rung"]
        assert rung in (0, 1, 2)  # rungs after epochs 1, 2 and 4 of 6
        assert attrs["pruned_at_epoch"] == 2**rung
        assert attrs["pruned_reason"].startswith(f"mo_asha rung {rung} (epoch {2**rung}) on ")
        # both objectives ranked: the second is known before training
        assert f"val_accuracy (max), {second} (min)" in attrs["pruned_reason"]
        assert attrs["epochs"] == 2**rung  # the curve stops at the rung
    for t in trials:
        if t["state"] == "COMPLETE":
            assert t["user_attrs"]["epochs"] == EPOCHS
            assert "pruned_reason" not in t["user_attrs"]
            if second == "latency_ms":  # the value ranked at the rungs is the one reported
                assert t["user_attrs"]["latency_ms"] == t["values"][1] > 0
    front = server.api.get(f"/studies/{study['id']}/best").json()
    on_front = {t["number"] for t in front["trials"]}
    assert on_front and on_front <= {t["number"] for t in trials if t["state"] == "COMPLETE"}


def test_mo_median_runs_a_study_and_records_its_reasons(server: Server) -> None:
    pruner = {"name": "mo_median", "settings": {"n_startup_trials": 2}}
    study, trials = run(server, digits_two_objectives("mo-median", pruner))
    assert study["status"] == "completed", study
    assert len(trials) == 10
    for t in trials:
        if t["state"] == "PRUNED":
            epoch = t["user_attrs"]["pruned_at_epoch"]
            assert t["user_attrs"]["pruned_at_rung"] == epoch < EPOCHS
            assert t["user_attrs"]["pruned_reason"].startswith(f"mo_median at epoch {epoch} on ")
        else:
            assert t["state"] == "COMPLETE" and t["user_attrs"]["epochs"] == EPOCHS
