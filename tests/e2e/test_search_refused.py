"""Search specs the API refuses end to end, on the shared server: a 422 that names the field
and says why (a grid too large or without steps, unknown settings and pruners, a single-objective
algorithm with two objectives, a pruner without per-epoch values, a condition on a later
parameter, warm starts out of range or from no study, PBT and PB2 on a task they cannot run),
and no study created.
"""

from typing import Any

import pytest

from tests.conftest import Server
from tests.e2e._search import small_study

pytestmark = pytest.mark.slow


@pytest.mark.parametrize(
    ("overrides", "path", "words"),
    [
        (
            {
                "algorithm": {"name": "grid"},
                "search_space": {
                    "model.width": {"type": "int", "low": 1, "high": 1000},
                    "training.epochs": {"type": "int", "low": 1, "high": 1000},
                },
            },
            "algorithm",
            ("the grid has 1,000,000 points; the limit is 100,000",),
        ),
        (
            {
                "algorithm": {"name": "grid"},
                "search_space": {"training.lr": {"type": "float", "low": 0.01, "high": 0.1}},
            },
            "algorithm",
            ("grid needs a step", "training.lr"),
        ),
        (
            {"algorithm": {"name": "tpe", "settings": {"sigma": 1}}},
            "algorithm.settings.sigma",
            ("unknown setting 'sigma'",),
        ),
        (
            {"pruner": {"name": "asha", "settings": {"eta": 3}}},
            "pruner.settings.eta",
            ("unknown setting 'eta'",),
        ),
        ({"pruner": {"name": "tpe"}}, "pruner.name", ("unknown pruner 'tpe'", "asha")),
        (
            {
                "algorithm": {"name": "cmaes"},
                "objectives": [
                    {"metric": "val_accuracy", "direction": "maximize"},
                    {"metric": "param_count", "direction": "minimize"},
                ],
            },
            "algorithm",
            ("cmaes optimizes a single objective; this study has 2",),
        ),
        (
            {
                "pruner": {"name": "asha"},
                "objective": {"metric": "param_count", "direction": "minimize"},
            },
            "pruner",
            ("needs an objective measured every epoch",),
        ),
        (
            {
                "search_space": {
                    "training.momentum": {
                        "type": "float",
                        "low": 0,
                        "high": 0.9,
                        "when": [{"param": "training.optimizer", "in": ["sgd"]}],
                    }
                }
            },
            'search_space["training.momentum"].when[0].param',
            ("must name an earlier parameter",),
        ),
        (
            {"warm_start": {"points": [{"training.lr": 5.0}]}},
            'warm_start.points[0]["training.lr"]',
            ("outside training.lr's range",),
        ),
        ({"warm_start": {"from_study": 9999}}, "warm_start.from_study", ("study 9999 not found",)),
        (  # two epochs: no perturbation interval ends before training does
            {"algorithm": {"name": "pbt"}},
            "algorithm",
            ("pbt needs a checkpointable task", "training.epochs is 2"),
        ),
        (
            {"algorithm": {"name": "pbt", "settings": {"population": 8}}},
            "algorithm.settings.population",
            ("unknown setting 'population' for 'pbt'", "population_size"),
        ),
        (
            {"algorithm": {"name": "pb2", "settings": {"perturbation_interval": 1}}},
            "algorithm",
            ("pb2 models float and int parameters only; categorical: model.activation",),
        ),
        (
            {
                "algorithm": {"name": "pbt", "settings": {"perturbation_interval": 1}},
                "pruner": {"name": "asha"},
            },
            "pruner",
            ("pbt does not stop trials early",),
        ),
    ],
)
def test_bad_search_specs_are_refused(
    server: Server, overrides: dict[str, Any], path: str, words: tuple[str, ...]
) -> None:
    api = server.api
    before = api.get("/studies").json()["total"]
    resp = api.post("/studies", json=small_study("bad", **overrides))
    assert resp.status_code == 422, resp.text
    detail = {d["path"]: d["msg"] for d in resp.json()["detail"]}
    assert path in detail, detail
    for word in words:
        assert word in detail[path], detail[path]
    assert api.get("/studies").json()["total"] == before
