"""A study asking for a fractional GPU: Ray packs trials onto it and each trial trains on
CUDA (skipped where CUDA is missing)."""

from collections.abc import Callable

import pytest

from tests.conftest import Server, finished, wait_for

pytestmark = [pytest.mark.gpu, pytest.mark.slow]


def test_trials_run_on_the_assigned_gpu(
    server_factory: Callable[..., Server], sqlite_url: str
) -> None:
    # Its own Ray, which finds the GPU (the session's shared Ray is started with none).
    api = server_factory(sqlite_url, own_ray=True).api
    spec = {
        "name": "gpu-cnn",
        "algorithm": {"name": "random", "settings": {"seed": 0}},
        "search_space": {"training.lr": {"type": "float", "low": 0.001, "high": 0.01, "log": True}},
        "budget": {"max_trials": 4},
        "parallelism": 4,
        "resources": {"cpu": 0.5, "gpu": 0.25},
        "task": {
            "dataset": {"name": "digits"},
            "model": {"family": "cnn", "stages": 3},
            "training": {"epochs": 10, "amp": True, "schedule": "cosine"},
        },
    }
    study_id = api.post("/studies", json=spec).raise_for_status().json()["id"]
    study = wait_for(api, study_id, finished, timeout=600)
    assert study["status"] == "completed", study
    trials = api.get(f"/studies/{study_id}/trials").json()["items"]
    assert [t["user_attrs"]["device"] for t in trials] == ["cuda"] * 4
    assert study["best_value"] > 0.95
