"""The population methods (PBT, PB2) end to end through the API, on a server of this module's
own: a study with lineage, checkpoints and a trained best member; two populations and a sampler
study side by side, one population stopped on request.
"""

import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.conftest import Server, embedded_server, finished, wait_for
from tests.e2e._search import population_study, run

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """A server with a Ray of its own, not the shared one. Ray 2.60 can leak a placement
    group's CPUs when it is removed while being placed (ray-project/ray#64693), and a
    population's Ray Tune places and removes one per member at every perturbation: once, the
    shared server's Ray kept half a CPU for good and a later test's second trial never
    started. What leaks here goes with this Ray."""
    with embedded_server(tmp_path_factory, "population-server") as server:
        yield server


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


def lineage_intact(trials: list[dict[str, Any]], members: int) -> None:
    """Every segment's member, parent and epochs belong to its own population."""
    by_number = {t["number"]: t for t in trials}
    assert {t["user_attrs"]["pbt_member"] for t in trials} <= set(range(members))
    for t in trials:
        attrs = t["user_attrs"]
        if attrs["pbt_parent"] is None:
            continue
        parent = by_number[attrs["pbt_parent_trial"]]  # in this study, not another's
        assert parent["user_attrs"]["pbt_member"] == attrs["pbt_parent"]
        assert parent["params"]["model.width"] == t["params"]["model.width"]
        # The clone goes on from the epoch its parent's checkpoint was saved at.
        assert parent["user_attrs"]["pbt_epochs"][0] <= attrs["pbt_exploit_epoch"]
        assert attrs["pbt_epochs"][0] > attrs["pbt_exploit_epoch"]


def trained_an_epoch(api: httpx.Client, study_id: int, timeout: float = 300) -> None:
    """Wait until a trial of the study has an intermediate value."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        items = api.get(f"/studies/{study_id}/trials", params={"limit": 500}).json()["items"]
        if any(t["intermediate_values"] for t in items):
            return
        time.sleep(0.5)
    pytest.fail(f"no trial of study {study_id} trained an epoch in {timeout:.0f} s")


def test_populations_run_side_by_side_beside_a_sampler_study(server: Server) -> None:
    """Two population studies and a TPE study at once, each population with its own
    trainable in Ray Tune's process-wide registries; one of them stopped on request."""
    api = server.api
    long = population_study("pop-long", "pbt")
    long["task"]["training"]["epochs"] = 60
    long_id = api.post("/studies", json=long).raise_for_status().json()["id"]
    short = {**population_study("pop-short", "pbt"), "seed": 5}
    short_id = api.post("/studies", json=short).raise_for_status().json()["id"]
    sampler = {**population_study("beside", "tpe"), "budget": {"max_trials": 6}}
    sampler["algorithm"] = {"name": "tpe", "settings": {"seed": 1}}
    sampler_id = api.post("/studies", json=sampler).raise_for_status().json()["id"]

    short = wait_for(api, short_id, finished, timeout=300)
    assert short["status"] == "completed", short
    assert "4 of 4 members trained 6 epochs" in short["status_reason"]
    # The long population ran all along: the short one did not wait for it.
    running = api.get(f"/studies/{long_id}").json()
    assert running["status"] == "running", running
    assert running["started_at"] <= short["started_at"]

    # Stopped once it has trained an epoch (on a loaded machine its members may have waited
    # for the others' CPUs until now): its segments then end cut short, each recorded.
    trained_an_epoch(api, long_id)
    assert api.post(f"/studies/{long_id}/stop").status_code == 202
    stopped = wait_for(api, long_id, finished, timeout=120)
    assert stopped["status"] == "stopped" and stopped["status_reason"] == "stopped by user"
    beside = wait_for(api, sampler_id, finished, timeout=300)
    assert beside["status"] == "completed" and beside["trial_counts"]["COMPLETE"] == 6

    for study_id in (short_id, long_id):
        trials = api.get(f"/studies/{study_id}/trials", params={"limit": 500}).json()["items"]
        lineage_intact(trials, members=4)
    short_trials = api.get(f"/studies/{short_id}/trials").json()["items"]
    assert len([t for t in short_trials if t["user_attrs"]["pbt_parent"] is not None]) == 2
    long_trials = api.get(f"/studies/{long_id}/trials", params={"limit": 500}).json()["items"]
    done = [t for t in long_trials if t["state"] == "COMPLETE"]
    assert done and all(t["user_attrs"]["pbt_epochs"][1] < 60 for t in done)
