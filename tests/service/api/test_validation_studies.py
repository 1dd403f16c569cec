"""A valid spec is created, and a created study is read back, patched and deleted with the
same checks: the stored spec spells out every default, times carry their zone (UTC), a bad
patch is a 422 that changes nothing, a pending study cannot be deleted.

Every case talks to an in-process app (real SQLite, real migrations, no scheduler), starting
from ``examples/digits-mlp.yaml``.
"""

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import optuna
import pytest
from fastapi.testclient import TestClient

from service.api.views import trial_public
from tests.service.api._validation import STUDIES, Spec, _detail_items, _optuna_names


def test_valid_spec_is_created(client: TestClient, tmp_path: Path, base_spec: Spec) -> None:
    # The control for every case of test_validation_spec.py: the unmodified example is accepted.
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
