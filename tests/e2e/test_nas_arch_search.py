"""The architecture-aware samplers (``local_search``, ``predictor``) end to end through the API:
each searches the NAS-Bench-201 cell on digits and the macro space with parallel trials, never
trains an architecture twice, walks (or mutates) from the best after its random start, and a
float in their space is a 422 at ``algorithm.name``."""

from typing import Any

import pytest

from tests.conftest import Server
from tests.e2e.test_nas import cell_study, macro_study, run

pytestmark = pytest.mark.slow

EDGES = ("1_0", "2_0", "2_1", "3_0", "3_1", "3_2")


def distance(a: dict[str, Any], b: dict[str, Any]) -> int:
    return sum(a[k] != b[k] for k in a)


@pytest.mark.parametrize("algorithm", ["local_search", "predictor"])
def test_searches_the_cell_space_without_training_a_cell_twice(
    server: Server, algorithm: str
) -> None:
    spec = cell_study(
        f"cell-{algorithm}",
        {"name": algorithm, "settings": {"seed": 3, "n_init": 3}},
        budget={"max_trials": 8},
    )
    study, trials = run(server, spec)
    assert study["status"] == "completed", study
    assert [t["state"] for t in trials] == ["COMPLETE"] * 8
    cells = [tuple(t["params"][f"model.edge_{e}"] for e in EDGES) for t in trials]
    assert len(set(cells)) == 8  # two in flight at a time, never the same cell
    assert all(t["user_attrs"]["genotype"] for t in trials)
    assert study["best_value"] > 0.3


@pytest.mark.parametrize("algorithm", ["local_search", "predictor"])
def test_searches_the_macro_space_from_the_best_after_the_random_start(
    server: Server, algorithm: str
) -> None:
    spec = macro_study(f"macro-{algorithm}", algorithm, budget={"max_trials": 10}, parallelism=1)
    spec["algorithm"]["settings"].update({"n_init": 4})
    study, trials = run(server, spec)
    assert study["status"] == "completed", study
    assert [t["state"] for t in trials] == ["COMPLETE"] * 10
    archs = [t["params"] for t in sorted(trials, key=lambda t: t["number"])]
    assert len({tuple(sorted(p.items())) for p in archs}) == 10
    if algorithm == "local_search":  # 16 architectures: neighbours of earlier ones
        near = [min(distance(p, q) for q in archs[:i]) for i, p in enumerate(archs) if i >= 4]
        assert near.count(1) >= 4, archs
    assert study["best_value"] > 0.8


@pytest.mark.parametrize("algorithm", ["local_search", "predictor"])
def test_a_float_in_the_space_is_refused_at_the_algorithm_name(
    server: Server, algorithm: str
) -> None:
    spec = macro_study(f"float-{algorithm}", algorithm)
    spec["search_space"] = {"training.lr": {"type": "float", "low": 0.001, "high": 0.1}}
    resp = server.api.post("/studies", json=spec)
    assert resp.status_code == 422, resp.text
    detail = {d["path"]: d["msg"] for d in resp.json()["detail"]}
    assert "training.lr is a float" in detail.get("algorithm.name", ""), detail


def test_predictor_with_replicas_trains_its_best_rated_cells_again_and_recommends_one(
    server: Server,
) -> None:
    """For noisy short training: every second trial after the random start trains a cell it
    already scored once more (under the trial's own seed), and every trial then names the
    recommended cell's trials."""
    settings = {"seed": 4, "n_init": 3, "replicate_every": 2, "replicates": 1}
    spec = cell_study(
        "cell-replicas", {"name": "predictor", "settings": settings}, budget={"max_trials": 9}
    )
    study, trials = run(server, spec)
    assert study["status"] == "completed", study
    trials = sorted(trials, key=lambda t: t["number"])
    assert [t["state"] for t in trials] == ["COMPLETE"] * 9
    cells = [tuple(t["params"][f"model.edge_{e}"] for e in EDGES) for t in trials]
    again = [i for i, c in enumerate(cells) if c in cells[:i]]
    assert again and min(again) >= 3 and max(map(cells.count, cells)) == 2
    last = trials[-1]["user_attrs"]["recommended"]["trials"]
    assert {cells[n] for n in last} == {cells[last[0]]} and max(last) < 8
    bad = cell_study("cell-replicas-bad", {"name": "predictor", "settings": {"replicates": 0}})
    resp = server.api.post("/studies", json=bad)
    assert resp.status_code == 422, resp.text
    assert resp.json()["detail"][0]["path"] == "algorithm.settings.replicates"
