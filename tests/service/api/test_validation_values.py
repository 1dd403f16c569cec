"""Bad values in a study spec get a 422 that names the field, and nothing is written: choices
of the wrong type, numbers that are not finite, a negative sampler setting, a searched list
element that does not exist, and the size limits (nesting depth, string and key lengths).

Every case posts a variant of ``examples/digits-mlp.yaml`` (or a spec of its own) to an
in-process app (real SQLite, real migrations, no scheduler).
"""

import copy
import json
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from tests.service.api._validation import STUDIES, Spec, _assert_nothing_written, _detail_items


@pytest.mark.parametrize(
    ("name", "param", "path"),
    [
        (
            "training.batch_size",
            {"type": "categorical", "choices": [32, "64"]},
            'search_space["training.batch_size"].choices[1]',
        ),
        (
            "training.batch_size",
            {"type": "categorical", "choices": [32, 64.0]},
            'search_space["training.batch_size"].choices[1]',
        ),
        (
            "training.lr",
            {"type": "categorical", "choices": ["0.01"]},
            'search_space["training.lr"].choices[0]',
        ),
        (
            "model.hidden_layers",
            {"type": "categorical", "choices": [True, 2]},
            'search_space["model.hidden_layers"].choices[0]',
        ),
    ],
)
def test_choice_of_the_wrong_type_is_422(
    client: TestClient, tmp_path: Path, base_spec: Spec, name: str, param: Spec, path: str
) -> None:
    spec = copy.deepcopy(base_spec)
    spec["search_space"][name] = param
    detail = _detail_items(client.post(STUDIES, json=spec))
    assert path in [d["path"] for d in detail]
    _assert_nothing_written(client, tmp_path)


@pytest.mark.parametrize(
    ("mutate", "path"),
    [
        (
            lambda s: s["search_space"].update(
                {"training.weight_decay": {"type": "float", "low": 0, "high": float("inf")}}
            ),
            'search_space["training.weight_decay"].high',
        ),
        (lambda s: s["budget"].update(timeout_s=float("inf")), "budget.timeout_s"),
        (lambda s: s["task"]["training"].update(lr=float("nan")), "task.training.lr"),
    ],
)
def test_non_finite_numbers_are_422(
    client: TestClient, tmp_path: Path, base_spec: Spec, mutate: Any, path: str
) -> None:
    spec = copy.deepcopy(base_spec)
    mutate(spec)
    # json.dumps writes Infinity/NaN, which Python's JSON parser (and so the API) accepts.
    response = client.post(
        STUDIES, content=json.dumps(spec), headers={"content-type": "application/json"}
    )
    detail = _detail_items(response)
    assert path in [d["path"] for d in detail]
    assert "finite" in " ".join(d["msg"] for d in detail)
    _assert_nothing_written(client, tmp_path)


def test_negative_sampler_setting_is_422(
    client: TestClient, tmp_path: Path, base_spec: Spec
) -> None:
    spec = copy.deepcopy(base_spec)
    spec["algorithm"]["settings"]["n_startup_trials"] = -1
    detail = _detail_items(client.post(STUDIES, json=spec))
    assert detail[0]["path"] == "algorithm.settings.n_startup_trials"
    assert ">= 0" in detail[0]["msg"]
    _assert_nothing_written(client, tmp_path)


def test_list_element_can_be_searched(client: TestClient, tmp_path: Path) -> None:
    spec = {
        "name": "per-stage",
        "search_space": {"model.widths.1": {"type": "categorical", "choices": [32, 64]}},
        "task": {"dataset": {"name": "digits"}, "model": {"family": "cnn", "widths": [16, 32]}},
    }
    created = client.post(STUDIES, json=spec)
    assert created.status_code == 201, created.text
    assert created.json()["spec"]["task"]["model"]["widths"] == [16, 32]

    spec["search_space"] = {"model.widths.5": {"type": "int", "low": 8, "high": 64}}
    detail = _detail_items(client.post(STUDIES, json=spec))
    assert detail[0]["path"] == 'search_space["model.widths.5"]'
    assert "needs model.widths set to a list with element 5" in detail[0]["msg"]

    spec["search_space"] = {"model.widths.0": {"type": "int", "low": 0, "high": 64}}
    detail = _detail_items(client.post(STUDIES, json=spec))
    assert detail[0]["path"] == 'search_space["model.widths.0"].low'
    assert "must be >= 1" in detail[0]["msg"]
    assert client.get(STUDIES).json()["total"] == 1  # only the valid one was written


@pytest.mark.parametrize(
    ("mutate", "words"),
    [
        (
            lambda s: s["task"].__setitem__("model", {"family": "mlp", "x": [[[[[[[[1]]]]]]]]}),
            "task.model.x[0][0][0][0][0][0] nests deeper than 8 levels",
        ),
        (
            lambda s: s.__setitem__("name", "n" * 5000),
            "name is longer than 1000 characters",
        ),
        (
            lambda s: s["search_space"].__setitem__(
                "model.activation", {"type": "categorical", "choices": ["relu", "x" * 1001]}
            ),
            "search_space.model.activation.choices[1] is longer than 1000 characters",
        ),
        (
            lambda s: s["task"]["training"].__setitem__("k" * 1001, 1),
            "a key of task.training is longer than 1000 characters",
        ),
    ],
    ids=["depth", "name", "choice", "key"],
)
def test_size_limits_are_precise_422s(
    client: TestClient, tmp_path: Path, base_spec: Spec, mutate: Any, words: str
) -> None:
    spec = copy.deepcopy(base_spec)
    mutate(spec)
    resp = client.post(STUDIES, json=spec)
    assert resp.status_code == 422, resp.text
    assert any(words in d["msg"] for d in resp.json()["detail"]), resp.json()
    assert client.get(STUDIES).json()["total"] == 0
