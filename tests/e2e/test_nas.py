"""Neural architecture search end to end through the API: architecture spaces on digits, each
trial's genotype and parameter count, the best architecture as a spec to train again, and the
422s of spaces that cannot run."""

from typing import Any

import pytest

from tests.conftest import Server, finished, wait_for

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def server(shared_server: Server) -> Server:
    return shared_server


def macro_study(name: str, algorithm: str, **overrides: Any) -> dict[str, Any]:
    """Two stages on digits (1x8x8 images), four decisions, three epochs a trial."""
    spec: dict[str, Any] = {
        "name": name,
        "algorithm": {"name": algorithm, "settings": {"seed": 5}},
        "architecture": {
            "kind": "macro",
            "stages": [
                {"block": ["plain", "residual"], "width": [8, 16], "depth": [1], "skip": [True]},
                {"block": ["plain", "inception"], "width": [16, 32], "depth": [1]},
            ],
        },
        "budget": {"max_trials": 6},
        "parallelism": 2,
        "task": {"dataset": {"name": "digits"}, "training": {"epochs": 3, "lr": 0.01}},
    }
    spec.update(overrides)
    return spec


def run(server: Server, spec: dict[str, Any]) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    created = server.api.post("/studies", json=spec)
    assert created.status_code == 201, created.text
    study = wait_for(server.api, created.json()["id"], finished, timeout=300)
    trials = server.api.get(f"/studies/{study['id']}/trials").json()["items"]
    return study, trials


def test_macro_space_searches_stage_choices(server: Server) -> None:
    study, trials = run(server, macro_study("macro-tpe", "tpe"))
    assert study["status"] == "completed", study
    assert [t["state"] for t in trials] == ["COMPLETE"] * 6
    decisions = {"model.blocks.0", "model.widths.0", "model.widths.1", "model.blocks.1"}
    decisions |= {"model.skips.1"}  # left out of stage 1: its default choices
    for t in trials:
        assert set(t["params"]) == decisions
        p = t["params"]
        stage0 = f"{p['model.blocks.0']}:{p['model.widths.0']}:1:relu:batch:skip"
        stage1 = f"{p['model.blocks.1']}:{p['model.widths.1']}:1:relu:batch:"
        stage1 += "skip" if p["model.skips.1"] else "-"
        assert t["user_attrs"]["genotype"] == f"{stage0}|{stage1}"
        assert t["user_attrs"]["param_count"] > 0
    # A wider or richer architecture has more parameters.
    counts = {t["user_attrs"]["genotype"]: t["user_attrs"]["param_count"] for t in trials}
    assert len(set(counts.values())) > 1
    assert study["best_value"] > 0.8


@pytest.mark.parametrize(
    ("algorithm", "settings"),
    [
        ("evolution", {"population_size": 4, "sample_size": 2}),
        ("reinforce", {"learning_rate": 0.3}),
    ],
)
def test_nas_samplers_search_the_macro_space(
    server: Server, algorithm: str, settings: dict[str, Any]
) -> None:
    spec = macro_study(f"macro-{algorithm}", algorithm, budget={"max_trials": 10}, parallelism=1)
    spec["algorithm"]["settings"].update(settings)
    study, trials = run(server, spec)
    assert study["status"] == "completed", study
    assert [t["state"] for t in trials] == ["COMPLETE"] * 10
    assert study["best_value"] > 0.8
    if algorithm == "evolution":
        # After the first 4 (random), each child is a finished trial with one decision mutated.
        for t in trials[4:]:
            earlier = [e["params"] for e in trials if e["number"] < t["number"]]
            diffs = [sum(e[k] != t["params"][k] for k in e) for e in earlier]
            assert min(diffs) <= 1, (t["params"], earlier)


def test_multi_objective_nas_returns_a_pareto_front_of_accuracy_against_parameters(
    server: Server,
) -> None:
    spec = macro_study(
        "macro-pareto",
        "nsga2",
        objectives=[
            {"metric": "val_accuracy", "direction": "maximize"},
            {"metric": "param_count", "direction": "minimize"},
        ],
        budget={"max_trials": 8},
    )
    spec["algorithm"]["settings"]["population_size"] = 4
    study, trials = run(server, spec)
    assert study["status"] == "completed", study
    front = server.api.get(f"/studies/{study['id']}/best").json()
    assert [o["metric"] for o in front["objectives"]] == ["val_accuracy", "param_count"]
    points = [tuple(t["values"]) for t in front["trials"]]
    assert points
    done = [tuple(t["values"]) for t in trials if t["state"] == "COMPLETE"]
    for acc, params in points:  # nothing finished dominates a front point
        assert not any(a >= acc and p <= params and (a, p) != (acc, params) for a, p in done)
    for acc, params in done:  # and every other point is dominated by the front
        if (acc, params) not in points:
            assert any(a >= acc and p <= params for a, p in points)
    for t in front["trials"]:
        assert t["values"][1] == t["user_attrs"]["param_count"]


def test_asha_stops_architectures_early(server: Server) -> None:
    spec = macro_study(
        "macro-asha",
        "random",
        pruner={"name": "asha", "settings": {"min_resource": 1, "reduction_factor": 3}},
        budget={"max_trials": 8},
        parallelism=1,
    )
    spec["task"]["training"]["epochs"] = 6
    study, trials = run(server, spec)
    assert study["status"] == "completed", study
    pruned = [t for t in trials if t["state"] == "PRUNED"]
    assert pruned, [t["state"] for t in trials]
    for t in pruned:
        assert len(t["intermediate_values"]) < 6
        assert t["user_attrs"]["genotype"]  # recorded at the start, pruned or not


def test_best_architecture_comes_back_as_a_spec_that_trains_it_again(server: Server) -> None:
    study, _ = run(server, macro_study("macro-retrain", "random", budget={"max_trials": 2}))
    best = server.api.get(f"/studies/{study['id']}/best").json()
    spec = server.api.get(f"/studies/{study['id']}/trials/{best['number']}/retrain-spec").json()
    assert spec["task"]["model"]["family"] == "macro"
    assert spec["task"]["model"]["blocks"][0] == best["params"]["model.blocks.0"]
    assert spec["task"]["model"]["widths"][1] == best["params"]["model.widths.1"]
    assert "search_space" not in spec and "architecture" not in spec
    again, again_trials = run(server, spec)
    # Same architecture, hyperparameters and training seed: the same result.
    assert again["status"] == "completed"
    assert again_trials[0]["value"] == pytest.approx(best["value"], abs=1e-6)
    longer = server.api.get(
        f"/studies/{study['id']}/trials/{best['number']}/retrain-spec", params={"epochs": 30}
    ).json()
    assert longer["task"]["training"]["epochs"] == 30


def cell_study(name: str, algorithm: dict[str, Any], **overrides: Any) -> dict[str, Any]:
    """The NAS-Bench-201 cell on digits, small enough for a CPU: 8 channels, one cell a stage."""
    spec: dict[str, Any] = {
        "name": name,
        "algorithm": algorithm,
        "architecture": {"kind": "cell", "channels": 8, "cells_per_stage": 1},
        "budget": {"max_trials": 3},
        "parallelism": 2,
        "task": {"dataset": {"name": "digits"}, "training": {"epochs": 3, "lr": 3e-3}},
    }
    spec.update(overrides)
    return spec


def test_cell_space_records_each_trials_genotype(server: Server) -> None:
    study, trials = run(server, cell_study("cell-random", {"name": "random"}))
    assert study["status"] == "completed", study
    assert [t["state"] for t in trials] == ["COMPLETE"] * 3
    for t in trials:
        p = t["params"]
        assert len(p) == 6
        expected = "|{}~0|+|{}~0|{}~1|+|{}~0|{}~1|{}~2|".format(
            *(p[f"model.edge_{e}"] for e in ("1_0", "2_0", "2_1", "3_0", "3_1", "3_2"))
        )
        assert t["user_attrs"]["genotype"] == expected
        assert t["user_attrs"]["param_count"] > 0


def test_darts_searches_the_cell_in_one_trial_and_trains_the_derived_one(server: Server) -> None:
    spec = cell_study("cell-darts", {"name": "darts", "settings": {"epochs": 4}})
    spec["task"]["training"]["epochs"] = 5
    study, trials = run(server, spec)
    assert study["status"] == "completed", study
    assert len(trials) == 1 and trials[0]["state"] == "COMPLETE"
    trial = server.api.get(f"/studies/{study['id']}/trials/0").json()
    attrs = trial["user_attrs"]
    # The derived cell: one op an edge, never none; it is the trial's params and its genotype.
    ops = [trial["params"][f"model.edge_{e}"] for e in ("1_0", "2_0", "2_1", "3_0", "3_1", "3_2")]
    assert "none" not in ops
    assert attrs["genotype"] == "|{}~0|+|{}~0|{}~1|+|{}~0|{}~1|{}~2|".format(*ops)
    search = attrs["darts_search"]
    assert [e["epoch"] for e in search] == [1, 2, 3, 4]
    assert search[-1]["genotype"] == attrs["genotype"]
    assert len(attrs["darts_alpha"]) == 6
    assert all(abs(sum(row) - 1) < 1e-5 for row in attrs["darts_alpha"])
    # Then the derived network trained 5 epochs like any trial.
    assert sorted(map(int, trial["intermediate_values"])) == [1, 2, 3, 4, 5]
    assert trial["value"] > 0.8
    exported = server.api.get(f"/studies/{study['id']}/trials/0/artifacts/spec").json()
    assert exported["model"]["edge_3_2"] == trial["params"]["model.edge_3_2"]


@pytest.mark.parametrize(
    ("overrides", "path", "words"),
    [
        (
            {"algorithm": {"name": "darts"}, "architecture": {"kind": "macro", "stages": 2}},
            "algorithm",
            "cannot be relaxed",
        ),
        (
            {
                "algorithm": {"name": "darts"},
                "search_space": {"training.lr": {"type": "float", "low": 1e-3, "high": 0.1}},
            },
            "algorithm",
            "cannot also search training.lr",
        ),
        (
            {"algorithm": {"name": "darts", "settings": {"epoch": 3}}},
            "algorithm.settings.epoch",
            "unknown setting 'epoch'",
        ),
        (
            {
                "architecture": {
                    "kind": "cell",
                    "edges": {e: ["none"] for e in ("edge_3_0", "edge_3_1", "edge_3_2")},
                }
            },
            "architecture",
            "a cell with no path from input to output allowed",
        ),
    ],
)
def test_cell_spaces_that_cannot_run_are_refused(
    server: Server, overrides: dict[str, Any], path: str, words: str
) -> None:
    spec = cell_study("bad-cell", {"name": "random"})
    spec.update(overrides)
    resp = server.api.post("/studies", json=spec)
    assert resp.status_code == 422, resp.text
    detail = {d["path"]: d["msg"] for d in resp.json()["detail"]}
    assert path in detail and words in detail[path], detail


@pytest.mark.parametrize(
    ("architecture", "path", "words"),
    [
        (
            {"kind": "macro", "stages": [{"block": []}]},
            "architecture.stages[0].block",
            "at least 1 item",
        ),
        ({"kind": "macro", "stages": 7}, "architecture", "1 to 6 stages"),
    ],
)
def test_bad_architectures_are_refused(
    server: Server, architecture: dict[str, Any], path: str, words: str
) -> None:
    before = server.api.get("/studies").json()["total"]
    resp = server.api.post("/studies", json=macro_study("bad", "tpe", architecture=architecture))
    assert resp.status_code == 422, resp.text
    detail = {d["path"]: d["msg"] for d in resp.json()["detail"]}
    assert path in detail and words in detail[path], detail
    assert server.api.get("/studies").json()["total"] == before
