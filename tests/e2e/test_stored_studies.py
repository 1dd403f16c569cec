"""Studies stored by the first release load and run on today's server.

The database of ``tests/fixtures/v1`` was written by the release before the stored study got a
``spec_version`` (see its README): four pending studies in that release's format, one of them
with a setting a later release tightened. Today's server, started on a copy of it, migrates the
service's tables, shows every study, and runs each to its end.
"""

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import Server, finished, start_server, wait_for

pytestmark = pytest.mark.slow

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "v1"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, ray_cluster: str) -> Iterator[Server]:
    data_dir = tmp_path_factory.mktemp("v1")
    for name in ("tuneforge.db", "admin.key"):
        shutil.copy(FIXTURE / name, data_dir / name)
    running = start_server(
        f"sqlite:///{data_dir / 'tuneforge.db'}", data_dir, ray_address=ray_cluster
    )
    yield running
    running.stop()


def test_every_study_of_the_first_release_runs_to_its_end(server: Server) -> None:
    studies = {s["name"]: s for s in server.api.get("/studies").json()["items"]}
    assert list(studies) == ["v1-digits", "v1-branin", "v1-macro", "v1-many-startup-trials"]
    budgets = {"v1-digits": 3, "v1-branin": 6, "v1-macro": 3, "v1-many-startup-trials": 4}
    for name, budget in budgets.items():
        study = wait_for(server.api, studies[name]["id"], finished, timeout=300)
        assert study["status"] == "completed", study
        assert study["status_reason"] == "max_trials reached"
        assert study["trial_counts"]["COMPLETE"] == budget
    trials = server.api.get(f"/studies/{studies['v1-digits']['id']}/trials").json()["items"]
    for t in trials:  # the first release's condition holds: momentum only with sgd
        assert ("training.momentum" in t["params"]) == (t["params"]["training.optimizer"] == "sgd")
    macro = server.api.get(f"/studies/{studies['v1-macro']['id']}/trials").json()["items"]
    assert all(t["user_attrs"]["genotype"].count("|") == 1 for t in macro)  # two stages


def test_a_study_with_a_since_tightened_setting_shows_and_ran(server: Server) -> None:
    (study,) = [
        s
        for s in server.api.get("/studies").json()["items"]
        if s["name"] == "v1-many-startup-trials"
    ]
    # It shows as it was stored...
    assert study["spec"]["algorithm"]["settings"]["n_startup_trials"] == 10**12
    study = wait_for(server.api, study["id"], finished, timeout=300)
    assert study["status"] == "completed"
    # ...while submitting the same study today is refused, at the setting's path.
    again = server.api.post("/studies", json=study["spec"])
    assert again.status_code == 422
    (error,) = again.json()["detail"]
    assert error["path"] == "algorithm.settings.n_startup_trials"
    assert "<= 100000" in error["msg"]
