"""Bad input gets a 422 that names the field, and nothing is written.

Every case posts a variant of ``examples/digits-mlp.yaml`` to an in-process app (real SQLite,
real migrations, no scheduler), then checks the error's ``path`` and message and that neither
a ``tf_studies`` row nor an Optuna study exists afterwards.
"""

import contextlib
import copy
import json
import sqlite3
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import optuna
import pytest
import yaml
from fastapi.testclient import TestClient

from service.api.views import trial_public
from service.app import create_app
from service.client.cli import read_admin_key
from service.config import Settings

EXAMPLE = Path(__file__).resolve().parents[3] / "examples" / "digits-mlp.yaml"
STUDIES = "/api/v1/studies"

Spec = dict[str, Any]


@pytest.fixture(scope="module")
def base_spec() -> Spec:
    spec = yaml.safe_load(EXAMPLE.read_text())
    assert isinstance(spec, dict)
    return spec


def _client(tmp_path: Path, **settings: Any) -> Iterator[TestClient]:
    app = create_app(Settings(data_dir=tmp_path, run_scheduler=False, **settings))
    with TestClient(app) as client:
        key = read_admin_key(tmp_path)  # written on the app's first start
        if key:
            client.headers["Authorization"] = f"Bearer {key}"
        yield client


@pytest.fixture
def client(tmp_path: Path) -> Iterator[TestClient]:
    yield from _client(tmp_path)


def _optuna_names(tmp_path: Path) -> list[str]:
    # A connection of its own to the file: sees what the app committed, not a session's cache.
    with contextlib.closing(sqlite3.connect(tmp_path / "tuneforge.db")) as conn:
        return [name for (name,) in conn.execute("SELECT study_name FROM studies")]


def _assert_nothing_written(client: TestClient, tmp_path: Path) -> None:
    page = client.get(STUDIES)
    assert page.status_code == 200
    assert page.json()["total"] == 0
    assert page.json()["items"] == []
    assert optuna.get_all_study_names(storage=client.app.state.storage) == []
    assert _optuna_names(tmp_path) == []


def _detail_items(response: Any) -> list[dict[str, Any]]:
    assert response.status_code == 422, response.text
    detail = response.json()["detail"]
    assert isinstance(detail, list)
    assert detail
    for item in detail:
        assert set(item) >= {"loc", "path", "msg"}
        assert isinstance(item["loc"], list)
        assert isinstance(item["path"], str)
        assert isinstance(item["msg"], str)
        assert item["msg"]
    return detail


def _set(*keys: str, value: Any) -> Callable[[Spec], None]:
    """A mutation that sets ``spec[k0][k1]...[kn] = value``."""

    def mutate(spec: Spec) -> None:
        node = spec
        for key in keys[:-1]:
            node = node[key]
        node[keys[-1]] = value

    return mutate


def _drop(key: str) -> Callable[[Spec], None]:
    def mutate(spec: Spec) -> None:
        del spec[key]

    return mutate


def _update_param(name: str, **fields: Any) -> Callable[[Spec], None]:
    def mutate(spec: Spec) -> None:
        spec["search_space"][name].update(fields)

    return mutate


ACTIVATIONS_LISTED = ("relu", "gelu", "tanh", "elu", "swish")

# (id, mutation, expected path, substrings the message must contain)
CASES: list[tuple[str, Callable[[Spec], None], str, tuple[str, ...]]] = [
    (
        "unknown-algorithm",
        _set("algorithm", "name", value="annealing"),
        "algorithm.name",
        ("annealing", "random", "tpe"),
    ),
    (
        "unknown-algorithm-setting",
        _set("algorithm", "settings", "n_startups", value=5),
        "algorithm.settings.n_startups",
        ("n_startups", "n_startup_trials", "seed"),
    ),
    (
        "algorithm-setting-wrong-type",
        _set("algorithm", "settings", "multivariate", value="yes"),
        "algorithm.settings.multivariate",
        ("multivariate", "bool"),
    ),
    (
        "algorithm-setting-bool-for-int",
        _set("algorithm", "settings", "n_startup_trials", value=True),
        "algorithm.settings.n_startup_trials",
        ("n_startup_trials", "int"),
    ),
    (
        "float-low-above-high",
        _update_param("training.lr", low=0.1, high=0.01),
        'search_space["training.lr"]',
        ("low", "high"),
    ),
    (
        "int-low-above-high",
        _update_param("model.hidden_layers", low=3, high=1),
        'search_space["model.hidden_layers"]',
        ("low", "high"),
    ),
    (
        "log-with-zero-low",
        _update_param("training.lr", low=0.0),
        'search_space["training.lr"]',
        ("log", "low > 0"),
    ),
    (
        "log-with-negative-low",
        _update_param("training.lr", low=-1.0, high=0.1),
        'search_space["training.lr"]',
        ("log", "low > 0"),
    ),
    (
        "log-with-step",
        _update_param("training.lr", step=0.001),
        'search_space["training.lr"]',
        ("log", "step"),
    ),
    (
        "empty-choices",
        _update_param("model.activation", choices=[]),
        'search_space["model.activation"].choices',
        ("at least 1",),
    ),
    (
        "duplicate-choices",
        _update_param("model.activation", choices=["relu", "tanh", "relu"]),
        'search_space["model.activation"].choices',
        ("distinct",),
    ),
    (
        "unknown-param-type",
        _update_param("model.dropout", type="uniform"),
        'search_space["model.dropout"]',
        ("float", "int", "categorical"),
    ),
    (
        "max-trials-zero",
        _set("budget", "max_trials", value=0),
        "budget.max_trials",
        ("greater than 0",),
    ),
    (
        "max-trials-negative",
        _set("budget", "max_trials", value=-3),
        "budget.max_trials",
        ("greater than 0",),
    ),
    (
        "max-failed-trials-zero",
        _set("budget", "max_failed_trials", value=0),
        "budget.max_failed_trials",
        ("greater than 0",),
    ),
    (
        "timeout-negative",
        _set("budget", "timeout_s", value=-1),
        "budget.timeout_s",
        ("greater than 0",),
    ),
    (
        "parallelism-zero",
        _set("parallelism", value=0),
        "parallelism",
        ("greater than or equal to 1",),
    ),
    (
        "cpu-zero",
        _set("resources", "cpu", value=0),
        "resources.cpu",
        ("greater than 0",),
    ),
    (
        "fractional-gpu-above-one",
        _set("resources", "gpu", value=1.5),
        "resources.gpu",
        ("whole number",),
    ),
    (
        "negative-gpu",
        _set("resources", "gpu", value=-0.5),
        "resources.gpu",
        ("greater than or equal to 0",),
    ),
    (
        "unknown-dataset",
        _set("task", "dataset", "name", value="mnist"),
        "task.dataset.name",
        ("mnist", "digits", "iris", "wine", "breast_cancer"),
    ),
    (
        "unknown-activation-in-task",
        _set("task", "model", "activation", value="relu6"),
        "task.model.activation",
        ("relu6", *ACTIVATIONS_LISTED),
    ),
    (
        "unknown-optimizer",
        _set("task", "training", "optimizer", value="lbfgs"),
        "task.training.optimizer",
        ("lbfgs", "adam", "sgd"),
    ),
    (
        "unknown-model-family",
        _set("task", "model", "family", value="perceptron"),
        "task.model.family",
        ("unknown model family 'perceptron'", "mlp", "cnn", "transformer"),
    ),
    (
        "unknown-search-parameter",
        _set("search_space", "model.depth", value={"type": "int", "low": 1, "high": 4}),
        'search_space["model.depth"]',
        ("model.depth", "model.hidden_layers", "model.width"),
    ),
    (
        "float-param-on-int-field",
        _update_param("model.width", type="float"),
        'search_space["model.width"].type',
        ("model.width", "int"),
    ),
    (
        "numeric-param-on-name-field",
        _set("search_space", "training.optimizer", value={"type": "int", "low": 0, "high": 2}),
        'search_space["training.optimizer"].type',
        ("categorical",),
    ),
    (
        "invalid-choice-for-field",
        _update_param("model.activation", choices=["relu", "nope"]),
        'search_space["model.activation"].choices[1]',
        ("nope", *ACTIVATIONS_LISTED),
    ),
    (
        "range-outside-field-bounds",
        _update_param("model.dropout", high=1.0),
        'search_space["model.dropout"].high',
        ("model.dropout", "must be <= 0.95"),
    ),
    (
        "int-range-outside-field-bounds",
        _update_param("model.width", low=0, log=False),
        'search_space["model.width"].low',
        ("model.width", "must be >= 1"),
    ),
    (
        "unknown-objective-metric",
        _set("objective", "metric", value="f1"),
        "objective.metric",
        ("f1", "val_accuracy", "val_loss", "train_loss"),
    ),
    (
        "bad-direction",
        _set("objective", "direction", value="up"),
        "objective.direction",
        ("maximize", "minimize"),
    ),
    (
        "typo-top-level-field",
        _set("budgett", value={"max_trials": 3}),
        "budgett",
        ("Extra inputs",),
    ),
    (
        "typo-nested-field",
        _set("budget", "max_trails", value=3),
        "budget.max_trails",
        ("Extra inputs",),
    ),
    (
        "typo-in-param",
        _update_param("training.lr", hihg=0.1),
        'search_space["training.lr"].hihg',
        ("Extra inputs",),
    ),
    ("missing-task", _drop("task"), "task", ("Field required",)),
    ("missing-name", _drop("name"), "name", ("Field required",)),
    (
        "missing-dataset",
        _set("task", "dataset", value={"val_fraction": 0.2}),
        "task.dataset",
        ("exactly one of name", "upload_id"),
    ),
    ("name-with-space", _set("name", value="my study"), "name", ("pattern",)),
    ("name-leading-dash", _set("name", value="-study"), "name", ("pattern",)),
    ("name-too-long", _set("name", value="a" * 129), "name", ("pattern",)),
    ("name-empty", _set("name", value=""), "name", ("pattern",)),
]


@pytest.mark.parametrize(
    ("mutate", "path", "needles"),
    [pytest.param(m, p, n, id=i) for i, m, p, n in CASES],
)
def test_bad_spec_is_rejected_with_its_path_and_nothing_is_written(
    client: TestClient,
    tmp_path: Path,
    base_spec: Spec,
    mutate: Callable[[Spec], None],
    path: str,
    needles: tuple[str, ...],
) -> None:
    spec = copy.deepcopy(base_spec)
    mutate(spec)

    detail = _detail_items(client.post(STUDIES, json=spec))

    matching = [item for item in detail if item["path"] == path]
    assert matching, f"no error at {path}; got {[i['path'] for i in detail]}"
    msg = matching[0]["msg"]
    for needle in needles:
        assert needle in msg, f"{needle!r} not in {msg!r}"
    _assert_nothing_written(client, tmp_path)


def test_error_loc_starts_at_body_and_path_renders_it(client: TestClient, base_spec: Spec) -> None:
    spec = copy.deepcopy(base_spec)
    spec["search_space"]["model.activation"]["choices"] = ["relu", "nope"]

    (item,) = _detail_items(client.post(STUDIES, json=spec))

    assert item["loc"] == ["body", "search_space", "model.activation", "choices", 1]
    assert item["path"] == 'search_space["model.activation"].choices[1]'
    assert item["type"] == "value_error"


def test_every_error_of_a_spec_is_reported(
    client: TestClient, tmp_path: Path, base_spec: Spec
) -> None:
    spec = copy.deepcopy(base_spec)
    spec["budget"]["max_trials"] = 0
    spec["parallelism"] = 0
    spec["objective"]["metric"] = "f1"

    paths = {item["path"] for item in _detail_items(client.post(STUDIES, json=spec))}

    assert paths >= {"budget.max_trials", "parallelism", "objective.metric"}
    _assert_nothing_written(client, tmp_path)


def test_cross_field_errors_are_all_reported(
    client: TestClient, tmp_path: Path, base_spec: Spec
) -> None:
    spec = copy.deepcopy(base_spec)
    spec["algorithm"]["settings"]["bogus"] = 1
    spec["search_space"]["model.width"]["type"] = "float"
    spec["search_space"]["model.activation"]["choices"] = ["nope", "relu", "worse"]

    paths = {item["path"] for item in _detail_items(client.post(STUDIES, json=spec))}

    assert paths == {
        "algorithm.settings.bogus",
        'search_space["model.width"].type',
        'search_space["model.activation"].choices[0]',
        'search_space["model.activation"].choices[2]',
    }
    _assert_nothing_written(client, tmp_path)


def test_non_json_body_is_rejected(client: TestClient, tmp_path: Path) -> None:
    response = client.post(
        STUDIES, content=b"name: digits\n{", headers={"content-type": "application/json"}
    )

    detail = _detail_items(response)
    assert "JSON" in detail[0]["msg"]
    assert detail[0]["path"] == "body"  # not "[1]": the offset is no field
    _assert_nothing_written(client, tmp_path)


def test_body_that_is_not_utf8_is_422_not_400(client: TestClient, tmp_path: Path) -> None:
    # FastAPI answers such a body with an undocumented 400 "error parsing the body" (fuzzing).
    response = client.post(STUDIES, content=b"\xc3s", headers={"content-type": "application/json"})

    detail = _detail_items(response)
    assert detail[0]["path"] == "body"
    assert detail[0]["type"] == "json_invalid"
    assert "UTF-8" in detail[0]["msg"]
    _assert_nothing_written(client, tmp_path)


def test_malformed_multipart_upload_is_422_not_400(client: TestClient) -> None:
    response = client.post(
        "/api/v1/datasets", content=b"--x\r\nbad", headers={"content-type": "multipart/form-data"}
    )

    detail = _detail_items(response)
    assert detail[0]["path"] == "body"
    assert "boundary" in detail[0]["msg"]


def test_a_wrong_method_names_every_method_of_the_path(client: TestClient) -> None:
    # The router's 405 named only the first route's method ("Allow: GET") (fuzzing).
    response = client.request("OPTIONS", f"{STUDIES}/1")

    assert response.status_code == 405
    assert response.headers["allow"] == "DELETE, GET, PATCH"
    assert client.put(STUDIES).headers["allow"] == "GET, POST"


def test_json_that_is_not_an_object_is_rejected(client: TestClient, tmp_path: Path) -> None:
    detail = _detail_items(client.post(STUDIES, json=["digits-mlp"]))

    assert detail[0]["loc"][0] == "body"
    _assert_nothing_written(client, tmp_path)


def test_valid_spec_is_created(client: TestClient, tmp_path: Path, base_spec: Spec) -> None:
    # The control for every case above: the unmodified example is accepted.
    response = client.post(STUDIES, json=base_spec)

    assert response.status_code == 201, response.text
    body = response.json()
    assert body["name"] == "digits-mlp"
    assert body["status"] == "pending"
    assert body["spec"]["budget"]["max_trials"] == 12
    # The stored spec spells out every default, so it keeps its meaning across releases.
    catalog = client.get("/api/v1/catalog").json()
    mlp_defaults = {k: v["default"] for k, v in catalog["families"]["mlp"]["fields"].items()}
    assert body["spec"]["task"]["model"] == {**mlp_defaults, "family": "mlp"}
    assert body["spec"]["task"]["training"]["epochs"] == 15  # given
    assert body["spec"]["task"]["training"]["schedule"] == "none"  # default
    page = client.get(STUDIES).json()
    assert page["total"] == 1
    assert [s["id"] for s in page["items"]] == [body["id"]]
    assert _optuna_names(tmp_path) == [body["optuna_study_name"]]
    assert client.get(f"{STUDIES}/{body['id']}").status_code == 200


def _utc(value: str) -> datetime:
    """An RFC 3339 time with its zone, which is UTC."""
    assert value.endswith("Z"), value
    parsed = datetime.fromisoformat(value)
    assert parsed.utcoffset() == timedelta(0), value
    return parsed


def test_times_carry_their_zone(client: TestClient, base_spec: Spec) -> None:
    # SQLite hands back naive times; the API said "2026-01-02T03:04:05" with no zone, which is
    # no RFC 3339 date-time as the OpenAPI document promises (fuzzing).
    before = datetime.now(UTC)
    study_id = client.post(STUDIES, json=base_spec).json()["id"]

    stored = client.get(f"{STUDIES}/{study_id}").json()  # read back from the database
    assert before - timedelta(seconds=5) < _utc(stored["created_at"]) <= datetime.now(UTC)
    assert stored["started_at"] is None
    for key in client.get("/api/v1/keys").json():
        _utc(key["created_at"])


def test_trial_times_written_by_optuna_are_utc() -> None:
    # Optuna stores naive local times (datetime.now()); they are converted, not relabelled.
    trial = optuna.trial.create_trial(value=1.0)
    assert trial.datetime_start is not None and trial.datetime_start.tzinfo is None

    public = json.loads(trial_public(trial).model_dump_json())

    assert _utc(public["datetime_start"]) == trial.datetime_start.astimezone(UTC)
    assert _utc(public["datetime_complete"]) >= _utc(public["datetime_start"])


@pytest.mark.parametrize(
    ("method", "url"),
    [
        ("GET", f"{STUDIES}/999"),
        ("GET", f"{STUDIES}/999/trials"),
        ("GET", f"{STUDIES}/999/trials/0"),
        ("GET", f"{STUDIES}/999/best"),
        ("POST", f"{STUDIES}/999/stop"),
        ("DELETE", f"{STUDIES}/999"),
    ],
)
def test_unknown_study_is_404(client: TestClient, method: str, url: str) -> None:
    response = client.request(method, url)

    assert response.status_code == 404
    assert "999" in response.json()["detail"]


def test_patch_of_unknown_study_is_404(client: TestClient) -> None:
    response = client.patch(f"{STUDIES}/999", json={"parallelism": 2})

    assert response.status_code == 404


def test_non_integer_study_id_is_422(client: TestClient) -> None:
    detail = _detail_items(client.get(f"{STUDIES}/abc"))

    assert detail[0]["loc"] == ["path", "study_id"]


@pytest.mark.parametrize(
    ("query", "param"),
    [("limit=0", "limit"), ("limit=501", "limit"), ("offset=-1", "offset")],
)
def test_bad_paging_is_422(client: TestClient, query: str, param: str) -> None:
    detail = _detail_items(client.get(f"{STUDIES}?{query}"))

    assert detail[0]["loc"] == ["query", param]


def test_body_over_the_size_limit_is_413(tmp_path: Path, base_spec: Spec) -> None:
    body = json.dumps(base_spec).encode()
    for client in _client(tmp_path, max_request_bytes=len(body) - 1):
        response = client.post(STUDIES, content=body, headers={"content-type": "application/json"})

        assert response.status_code == 413
        assert str(len(body) - 1) in response.json()["detail"]
        _assert_nothing_written(client, tmp_path)


def test_chunked_body_over_the_size_limit_is_413(tmp_path: Path, base_spec: Spec) -> None:
    body = json.dumps(base_spec).encode()
    for client in _client(tmp_path, max_request_bytes=100):
        # A generator body is sent chunked, without a content-length header.
        response = client.post(
            STUDIES,
            content=iter([body[:50], body[50:]]),
            headers={"content-type": "application/json"},
        )

        assert response.status_code == 413
        _assert_nothing_written(client, tmp_path)


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


def test_body_at_the_size_limit_is_accepted(tmp_path: Path, base_spec: Spec) -> None:
    body = json.dumps(base_spec).encode()
    for client in _client(tmp_path, max_request_bytes=len(body)):
        response = client.post(STUDIES, content=body, headers={"content-type": "application/json"})

        assert response.status_code == 201, response.text


def test_algorithms_lists_random_and_tpe_with_settings(client: TestClient) -> None:
    response = client.get("/api/v1/algorithms")

    assert response.status_code == 200
    algorithms = {a["name"]: a for a in response.json()}
    assert {"random", "tpe"} <= set(algorithms)
    for algorithm in algorithms.values():
        assert algorithm["kind"] in ("sampler", "pruner", "population", "oneshot")
        assert algorithm["description"]
    tpe = {s["name"]: s for s in algorithms["tpe"]["settings"]}
    assert tpe["seed"] == {**tpe["seed"], "type": "int", "default": None}
    assert tpe["n_startup_trials"] == {**tpe["n_startup_trials"], "type": "int", "default": 10}
    assert tpe["multivariate"] == {**tpe["multivariate"], "type": "bool", "default": True}
    assert [s["name"] for s in algorithms["random"]["settings"]] == ["seed"]
    kinds = {name: a["kind"] for name, a in algorithms.items()}
    assert kinds == {
        **{
            n: "sampler"
            for n in (
                "grid",
                "random",
                "qmc",
                "tpe",
                "gp",
                "cmaes",
                "nsga2",
                "nsga3",
                "evolution",
                "reinforce",
            )
        },
        **{
            n: "pruner"
            for n in ("asha", "hyperband", "median", "percentile", "patient", "threshold")
        },
        "pbt": "population",
        "pb2": "population",
        "darts": "oneshot",
    }
    assert algorithms["pbt"]["multi_objective"] is False
    pbt = {s["name"]: s for s in algorithms["pbt"]["settings"]}
    assert pbt["population_size"] == {**pbt["population_size"], "type": "int", "default": 4}
    assert "resample_probability" in pbt
    assert "resample_probability" not in {s["name"] for s in algorithms["pb2"]["settings"]}
    assert algorithms["cmaes"]["multi_objective"] is False
    assert algorithms["nsga2"]["multi_objective"] is True
    qmc = {s["name"]: s for s in algorithms["qmc"]["settings"]}
    assert qmc["qmc_type"]["choices"] == ["sobol", "halton"]


def test_catalog_lists_what_a_task_may_name(client: TestClient) -> None:
    response = client.get("/api/v1/catalog")

    assert response.status_code == 200
    catalog = response.json()
    assert catalog["datasets"]["digits"] == {
        "task": "multiclass",
        "kind": "image",
        "input_shape": [1, 8, 8],
        "n_outputs": 10,
        "n_samples": 1797,
        "options": {},
    }
    assert catalog["datasets"]["waveforms"]["options"]["length"]["default"] == 64
    assert {"relu", "gelu", "tanh"} <= set(catalog["activations"])
    assert catalog["training"]["optimizer"]["choices"] == ["sgd", "rmsprop", "adam", "adamw"]
    assert catalog["training"]["lr"]["default"] == 0.001
    assert catalog["training"]["mc_samples"]["searchable"] is False
    assert {"val_accuracy", "val_f1", "val_rmse", "param_count", "mc_ece"} <= set(
        catalog["metrics"]
    )
    assert catalog["metrics"]["val_rmse"]["tasks"] == ["regression"]
    families = catalog["families"]
    assert {"mlp", "cnn", "resnet", "densenet", "inception", "conv1d", "transformer"} <= set(
        families
    )
    assert families["resnet"]["fields"]["block"]["default"] == "residual"
    assert families["cnn"]["data_kinds"] == ["image"]
    assert families["mlp"]["fields"]["width"] == {
        "type": "int",
        "default": 128,
        "doc": "Units per hidden layer.",
        "low": 1,
        "high": 8192,
        "searchable": True,
    }


@pytest.fixture
def created(client: TestClient, base_spec: Spec) -> dict[str, Any]:
    response = client.post(STUDIES, json=base_spec)
    assert response.status_code == 201, response.text
    return response.json()  # type: ignore[no-any-return]


@pytest.mark.parametrize(
    ("patch", "path"),
    [
        ({"budget": {"max_trials": 0}}, "budget.max_trials"),
        ({"budget": {"max_trials": 5, "timeout_s": -1}}, "budget.timeout_s"),
        ({"budget": {"max_trails": 5}}, "budget.max_trails"),
        ({"parallelism": 0}, "parallelism"),
        ({"name": "renamed"}, "name"),
        # Types as documented, no coercion (found by fuzzing): false is no number, "2" and
        # true are no integers; and max_trials may be left out but not null.
        ({"budget": {"target_value": False}}, "budget.target_value"),
        ({"parallelism": "2"}, "parallelism"),
        ({"budget": {"max_trials": True}}, "budget.max_trials"),
        ({"budget": {"max_trials": None}}, "budget"),
    ],
)
def test_bad_patch_is_422_and_changes_nothing(
    client: TestClient, created: dict[str, Any], patch: Spec, path: str
) -> None:
    url = f"{STUDIES}/{created['id']}"

    detail = _detail_items(client.patch(url, json=patch))

    assert path in [item["path"] for item in detail]
    after = client.get(url).json()
    assert after["spec"] == created["spec"]
    assert after["status"] == "pending"


def test_the_document_says_max_trials_is_no_nullable_field(client: TestClient) -> None:
    schemas = client.get("/openapi.json").json()["components"]["schemas"]

    assert schemas["BudgetPatch"]["properties"]["max_trials"]["type"] == "integer"


def test_delete_of_a_pending_study_is_409(
    client: TestClient, tmp_path: Path, created: dict[str, Any]
) -> None:
    response = client.delete(f"{STUDIES}/{created['id']}")

    assert response.status_code == 409
    assert "pending" in response.json()["detail"]
    assert client.get(f"{STUDIES}/{created['id']}").status_code == 200
    assert _optuna_names(tmp_path) == [created["optuna_study_name"]]


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


@pytest.mark.parametrize(
    "url",
    [
        "/api/v1/studies/99999999999999999999999",
        "/api/v1/studies/2147483648/trials",
        "/api/v1/studies/99999999999999999999/trials/99999999999999999999",
        "/api/v1/studies?offset=99999999999999999999",
        "/api/v1/datasets?offset=2147483648",
    ],
)
def test_numbers_beyond_the_database_are_422_not_500(client: TestClient, url: str) -> None:
    resp = client.get(url)
    assert resp.status_code == 422, resp.text
    assert "less than or equal to 2147483647" in resp.json()["detail"][0]["msg"]
