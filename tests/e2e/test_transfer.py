"""Transfer learning end to end (a real server, Ray, training): an MLP pre-trained on digits
0-4 and fine-tuned on digits 5-9 (``init_from``, the backbone) reaches the target accuracy in
fewer epochs than the same network from scratch, summed over four fixed seeds with the same
fine-tuning (one seed alone can go either way on a set this small); and what does not fit is
refused with 422 at ``task.init_from``.
"""

import copy
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.conftest import Server, finished, wait_for

pytestmark = pytest.mark.slow

TARGET = 0.9  # validation accuracy on digits 5-9
SEEDS = 4  # fine-tuning trials per study: trial n trains with seed 100 + n in both studies
EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def _example(name: str) -> dict[str, Any]:
    return dict(yaml.safe_load((EXAMPLES / name).read_text()))


def _run(server: Server, spec: dict) -> tuple[int, list[dict]]:
    created = server.api.post("/studies", json=spec)
    assert created.status_code == 201, created.text
    study = wait_for(server.api, created.json()["id"], finished, timeout=300)
    assert study["status"] == "completed", study
    trials = server.api.get(f"/studies/{study['id']}/trials").raise_for_status().json()["items"]
    assert [t["state"] for t in trials] == ["COMPLETE"] * spec["budget"]["max_trials"], trials
    return study["id"], trials


def _epochs_to(trial: dict, target: float) -> int:
    """The first epoch at ``target`` (one past the last when never)."""
    curve = sorted((int(k), v) for k, v in trial["intermediate_values"].items())
    return next((epoch for epoch, acc in curve if acc >= target), len(curve) + 1)


def test_fine_tuning_from_digits_0_to_4_beats_scratch_on_5_to_9(server: Server) -> None:
    source, (trained,) = _run(server, _example("transfer-pretrain.yaml"))
    assert trained["value"] > 0.95
    tuned = _example("transfer-finetune.yaml")
    tuned["task"]["init_from"]["study"] = source
    scratch = copy.deepcopy(tuned)
    del scratch["task"]["init_from"]
    scratch["name"] = "digits-5-9-scratch"
    assert tuned["budget"]["max_trials"] == SEEDS and tuned["seed"] == 100
    _, from_scratch = _run(server, scratch)
    _, from_source = _run(server, tuned)
    # the same seeds, trial by trial: only the backbone's starting weights differ
    seeds = [t["user_attrs"]["seed"] for t in from_scratch]
    assert seeds == [t["user_attrs"]["seed"] for t in from_source] == [100, 101, 102, 103]
    slow = [_epochs_to(t, TARGET) for t in from_scratch]
    fast = [_epochs_to(t, TARGET) for t in from_source]
    epochs = tuned["task"]["training"]["epochs"]
    assert all(e <= epochs for e in fast), fast
    assert sum(fast) < sum(slow), (fast, slow)

    # Weights that do not fit: 422 at the field, nothing written.
    before = server.api.get("/studies").json()["total"]
    wider = copy.deepcopy(tuned)
    wider["task"]["model"]["width"] = 256
    resp = server.api.post("/studies", json=wider)
    assert resp.status_code == 422, resp.text
    paths = {e["path"]: e["msg"] for e in resp.json()["detail"]}
    assert "shapes differ" in paths["task.init_from"]
    assert server.api.get("/studies").json()["total"] == before
