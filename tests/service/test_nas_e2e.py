"""Neural architecture search end to end through the API: architecture spaces on digits, each
trial's genotype and parameter count, the best architecture as a spec to train again, and the
422s of spaces that cannot run."""

import signal
from collections.abc import Iterator
from typing import Any

import pytest

from tests.conftest import Server, finished, start_server, wait_for

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    data_dir = tmp_path_factory.mktemp("nas")
    running = start_server(f"sqlite:///{data_dir / 'tuneforge.db'}", data_dir)
    yield running
    running.stop(signal.SIGTERM)


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
