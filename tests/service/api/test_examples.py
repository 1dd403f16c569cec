"""Every request body the API documentation shows works as sent (issue 16): each JSON example
of the OpenAPI document is posted to its route on an in-process app and answers 2xx; the study
example is the README's quickstart file."""

from pathlib import Path
from typing import Any

import yaml
from fastapi.testclient import TestClient

from service.api.examples import EXTERNAL_STUDY, STUDY

ROOT = Path(__file__).resolve().parents[3]


def json_examples(document: dict[str, Any]) -> list[tuple[str, str, str, Any]]:
    found = []
    for path, operations in document["paths"].items():
        for method, operation in operations.items():
            content = operation.get("requestBody", {}).get("content", {})
            for name, example in content.get("application/json", {}).get("examples", {}).items():
                found.append((method.upper(), path, name, example["value"]))
    return found


def test_every_json_body_in_the_docs_has_an_example(client: TestClient) -> None:
    document = client.get("/openapi.json").json()
    with_body = {
        (method.upper(), path)
        for path, operations in document["paths"].items()
        for method, operation in operations.items()
        if "application/json" in operation.get("requestBody", {}).get("content", {})
    }
    shown = {(method, path) for method, path, _, _ in json_examples(document)}
    assert with_body and with_body == shown, with_body - shown


def test_every_example_answers_2xx(client: TestClient) -> None:
    document = client.get("/openapi.json").json()
    study_id = client.post("/api/v1/studies", json=STUDY).json()["id"]
    ids = {"study_id": study_id, "tenant": "alice"}
    tried = []
    external = client.post("/api/v1/studies", json=EXTERNAL_STUDY).json()["id"]
    for method, path, name, value in json_examples(document):
        if "{number}" in path:  # an external trial's: a trial of its own, leased to us
            asked = client.post(f"/api/v1/studies/{external}/ask").json()
            ids = {**ids, "study_id": external, "number": asked["number"]}
            value = {**value, "lease": asked["lease"]}
        answer = client.request(method, path.format(**ids), json=value)
        assert 200 <= answer.status_code < 300, (method, path, name, answer.text)
        tried.append(name)
    assert len(tried) >= 6


def test_the_study_example_is_the_quickstart_file() -> None:
    assert yaml.safe_load((ROOT / "examples" / "digits-mlp.yaml").read_text()) == STUDY
