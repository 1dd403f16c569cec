"""The CLI's refusals in its own words, against a stand-in HTTP server that answers what a
tuneforge server answers: a 401 says where the key was looked for or where it came from, a 422
about a query or path parameter names the CLI's option or argument."""

from pathlib import Path
from typing import Any

import pytest

from tests.service.client.stub import Stub, run

REFUSED = (401, {"detail": "unknown or revoked API key"})


def test_a_401_without_a_key_says_where_the_key_was_looked_for(stub: Stub, tmp_path: Path) -> None:
    stub.answers["GET /studies/3"] = (401, {"detail": "an API key is required"})
    result = run(stub, tmp_path, "status", "3")
    assert result.exit_code == 1
    assert result.stderr == (
        "error 401: the server refused the request: no API key given "
        f"(looked in TUNEFORGE_API_KEY and {tmp_path}/admin.key)\n"
    )
    assert result.stdout == ""
    assert stub.seen == [("GET", "/studies/3", None, None)]


def test_the_default_data_directory_is_named_by_its_absolute_path(
    stub: Stub, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    stub.answers["GET /studies"] = (401, {"detail": "an API key is required"})
    monkeypatch.chdir(tmp_path)
    result = run(stub, None, "studies")
    assert f"(looked in TUNEFORGE_API_KEY and {tmp_path}/.tuneforge/admin.key)" in result.stderr


def test_a_refused_key_is_named_with_the_file_it_came_from(stub: Stub, tmp_path: Path) -> None:
    (tmp_path / "admin.key").write_text("tf_fromthefile0123456789\n")
    stub.answers["GET /studies/3"] = REFUSED
    result = run(stub, tmp_path, "status", "3")
    assert result.exit_code == 1
    assert result.stderr == (
        f"error 401: the server refused the API key tf_fromthe… from {tmp_path}/admin.key: "
        "unknown or revoked API key\n"
    )
    assert stub.seen == [("GET", "/studies/3", "Bearer tf_fromthefile0123456789", None)]


def test_the_environment_s_key_comes_first_and_is_named(stub: Stub, tmp_path: Path) -> None:
    (tmp_path / "admin.key").write_text("tf_fromthefile0123456789\n")
    stub.answers["GET /studies/3/trials"] = REFUSED
    result = run(stub, tmp_path, "trials", "3", key="tf_fromtheenv9876543210")
    assert result.stderr == (
        "error 401: the server refused the API key tf_fromthe… from TUNEFORGE_API_KEY: "
        "unknown or revoked API key\n"
    )
    assert stub.seen[0][2] == "Bearer tf_fromtheenv9876543210"


def invalid(loc: list[str | int], path: str) -> tuple[int, Any]:
    return 422, {"detail": [{"loc": loc, "path": path, "msg": "is wrong", "type": "value_error"}]}


def test_a_422_on_a_parameter_names_the_cli_s_option_or_argument(
    stub: Stub, tmp_path: Path
) -> None:
    stub.answers["GET /studies"] = invalid(["query", "status"], "query.status")
    listed = run(stub, tmp_path, "studies", "--state", "running")
    assert listed.exit_code == 1
    assert listed.stderr == "error: --state: is wrong\n"
    stub.answers["GET /studies/3/trials"] = invalid(["query", "state"], "query.state")
    assert run(stub, tmp_path, "trials", "3").stderr == "error: --state: is wrong\n"
    stub.answers["GET /studies/3"] = invalid(["path", "study_id"], "study_id")
    assert run(stub, tmp_path, "status", "3").stderr == "error: ID: is wrong\n"
    # A field of a request body keeps its path in the body.
    stub.answers["GET /studies/3"] = invalid(["body", "budget", "max_trials"], "budget.max_trials")
    assert run(stub, tmp_path, "status", "3").stderr == "error: budget.max_trials: is wrong\n"
