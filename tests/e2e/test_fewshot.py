"""Few-shot meta-learning end to end (a real server, Ray, training): prototypical networks and
MAML (first and second order), 5-way 1-shot on digits' held-out classes 5-9 after
meta-training on 0-4, score well above chance (0.2); each epoch's meta-validation accuracy is
the trial's curve, and the result carries its 95% interval.
"""

from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.conftest import Server, finished, wait_for

pytestmark = pytest.mark.slow

CHANCE = 0.2  # 5-way
EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def _study(example: str, **fewshot: Any) -> dict[str, Any]:
    """The example file as one trial (its search space dropped), with ``fewshot`` fields."""
    spec = yaml.safe_load((EXAMPLES / example).read_text())
    spec["search_space"] = {}
    spec["budget"] = {"max_trials": 1}
    spec["task"]["fewshot"].update(fewshot)
    spec["task"]["fewshot"].setdefault("embedding_dim", 128)
    spec["task"]["model"].setdefault("width", 256)
    return dict(spec)


def _run(server: Server, spec: dict[str, Any]) -> dict[str, Any]:
    created = server.api.post("/studies", json=spec)
    assert created.status_code == 201, created.text
    study = wait_for(server.api, created.json()["id"], finished, timeout=300)
    assert study["status"] == "completed", study
    trial = server.api.get(f"/studies/{study['id']}/trials/0").raise_for_status().json()
    assert trial["state"] == "COMPLETE", trial
    return dict(trial)


@pytest.mark.parametrize(
    "method",
    [
        pytest.param(("fewshot-protonet.yaml", {}), id="protonet"),
        pytest.param(("fewshot-maml.yaml", {"first_order": True}), id="maml-first-order"),
        pytest.param(("fewshot-maml.yaml", {"first_order": False}), id="maml-second-order"),
    ],
)
def test_five_way_one_shot_on_held_out_digits_is_well_above_chance(
    server: Server, method: tuple[str, dict[str, Any]]
) -> None:
    example, fields = method
    trial = _run(server, _study(example, **fields))
    accuracy, ci95 = trial["value"], trial["final_metrics"]["val_episode_ci95"]
    assert accuracy > 0.6, trial
    assert 0 < ci95 < 0.05  # 200 episodes: a tight interval
    assert accuracy - ci95 > CHANCE
    curve = trial["learning_curve"]
    assert [p["epoch"] for p in curve] == [1, 2, 3]
    assert {p["epoch"]: p["metrics"]["val_episode_accuracy"] for p in curve} == {
        int(k): v for k, v in trial["intermediate_values"].items()
    }
    assert max(p["metrics"]["val_episode_accuracy"] for p in curve) == accuracy
