"""Shared by the end-to-end search tests (``test_search_*``, and ``test_restart``): small
studies and running one to its end through the API."""

from typing import Any

from tests.conftest import Server, finished, wait_for


def small_study(name: str, **overrides: Any) -> dict[str, Any]:
    """Iris MLP, two epochs: a real study in a second or two. Floats have steps (grid)."""
    spec: dict[str, Any] = {
        "name": name,
        "search_space": {
            "training.lr": {"type": "float", "low": 0.005, "high": 0.05, "step": 0.015},
            "model.width": {"type": "int", "low": 8, "high": 16, "step": 8},
            "model.activation": {"type": "categorical", "choices": ["relu", "tanh"]},
        },
        "budget": {"max_trials": 4},
        "parallelism": 2,
        "task": {"dataset": {"name": "iris"}, "training": {"epochs": 2}},
    }
    spec.update(overrides)
    return spec


def run(server: Server, spec: dict[str, Any]) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    created = server.api.post("/studies", json=spec)
    assert created.status_code == 201, created.text
    study = wait_for(server.api, created.json()["id"], finished, timeout=300)
    trials = server.api.get(f"/studies/{study['id']}/trials").json()["items"]
    return study, trials


def population_study(name: str, method: str, **settings: Any) -> dict[str, Any]:
    """Four members of a classification MLP, 6 epochs, perturbed every 2: the learning rate
    is perturbed, the width set once per member (it shapes the weights a clone inherits)."""
    return {
        "name": name,
        "algorithm": {"name": method, "settings": {"population_size": 4, **settings}},
        "objective": {"metric": "val_loss", "direction": "minimize"},
        "search_space": {
            "training.lr": {"type": "float", "low": 0.01, "high": 1.0, "log": True},
            "model.width": {"type": "int", "low": 16, "high": 32, "step": 16},
        },
        "resources": {"cpu": 0.5},  # the whole population trains at once on 2 CPUs
        "seed": 3,
        "task": {
            "dataset": {"name": "classification", "options": {"n_samples": 1000}},
            "training": {"epochs": 6, "optimizer": "sgd", "batch_size": 64},
        },
    }
