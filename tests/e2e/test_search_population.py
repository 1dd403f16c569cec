"""The population methods (PBT, PB2) end to end through the API, on the shared server: a
study with lineage, checkpoints and a trained best member; stopping one on request while the
next population study waits for it.
"""

import pytest

from tests.conftest import Server, finished, wait_for
from tests.e2e._search import population_study, run

pytestmark = pytest.mark.slow


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
