"""Restart safety: the service killed mid-study, and the database restarted mid-study.

Each test runs a real ``tuneforge serve`` (own process, local Ray) on a real database, and
checks what a user cares about: the study finishes with exactly its budget, every trial that
had finished before the fault is unchanged, and trials that were in flight resume from their
checkpoints.
"""

import os
import shutil
import signal
import subprocess
import threading
import time
from collections.abc import Callable
from typing import Any

import httpx
import optuna
import pytest
from sqlalchemy import exc as sa_exc

from service.store.engine import retrying, transient
from service.store.storage import make_storage
from tests.conftest import Server, digits_study, finished

pytestmark = pytest.mark.slow

ENV = {"TUNEFORGE_CHECKPOINT_EVERY": "5"}
DONE = ("COMPLETE", "FAIL", "PRUNED")


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def database_url(request: pytest.FixtureRequest) -> str:
    name = "sqlite_url" if request.param == "sqlite" else "postgres_url"
    return str(request.getfixturevalue(name))


def study_spec(max_trials: int, epochs: int) -> dict[str, Any]:
    return digits_study("restart", max_trials, epochs, lr=0.01, width_high=48)


def trials(api: httpx.Client, study_id: int) -> list[dict[str, Any]]:
    return list(api.get(f"/studies/{study_id}/trials").raise_for_status().json()["items"])


def poll_trials(
    api: httpx.Client, study_id: int, done: Callable[[list[dict[str, Any]]], bool]
) -> list[dict[str, Any]]:
    deadline = time.monotonic() + 180
    items: list[dict[str, Any]] = []
    while time.monotonic() < deadline:
        items = trials(api, study_id)
        if done(items):
            return items
        time.sleep(0.1)
    pytest.fail(f"the trials never got there: {[(t['number'], t['state']) for t in items]}")


def mid_study(items: list[dict[str, Any]]) -> bool:
    """At least one trial finished and one running with a checkpoint: the moment to strike."""
    return any(t["state"] in DONE for t in items) and any(
        t["state"] == "RUNNING" and t["user_attrs"].get("checkpoint_epoch") for t in items
    )


def wait_finished(api: httpx.Client, study_id: int, timeout: float = 300) -> dict[str, Any]:
    """Poll until the study ends; answers other than 200 while the database is away are
    retried (they must be 503s, never 500s)."""
    deadline = time.monotonic() + timeout
    study: dict[str, Any] = {}
    while time.monotonic() < deadline:
        try:
            resp = api.get(f"/studies/{study_id}")
        except httpx.HTTPError:
            time.sleep(0.5)
            continue
        if resp.status_code == 200:
            study = resp.json()
            if finished(study):
                return study
        else:
            assert resp.status_code == 503, resp.text
        time.sleep(0.25)
    pytest.fail(f"study {study_id} did not finish: {study}")


@pytest.mark.parametrize("how", ["kill -9", "SIGTERM"])
def test_service_killed_mid_study_finishes_exactly_its_budget(
    database_url: str, server_factory: Callable[..., Server], how: str
) -> None:
    if how == "SIGTERM" and database_url.startswith("postgresql"):
        pytest.skip("the graceful path does not depend on the database: SQLite covers it")
    server = server_factory(database_url, own_ray=True, env=ENV)
    budget, epochs = 5, 100
    study_id = server.api.post("/studies", json=study_spec(budget, epochs)).json()["id"]
    before = poll_trials(server.api, study_id, mid_study)
    server.stop(signal.SIGKILL if how == "kill -9" else signal.SIGTERM)
    finished_before = {t["number"]: t for t in before if t["state"] in DONE}
    running_before = {
        t["number"]: t["user_attrs"].get("checkpoint_epoch", 0)
        for t in before
        if t["state"] == "RUNNING"
    }
    assert finished_before and running_before

    restarted = server_factory(database_url, own_ray=True, env=ENV)
    study = wait_finished(restarted.api, study_id)
    assert study["status"] == "completed", study
    assert study["status_reason"] == "max_trials reached"
    after = trials(restarted.api, study_id)
    assert len(after) == budget  # exactly its budget: no trial lost, none run twice
    assert [t["state"] for t in after] == ["COMPLETE"] * budget
    for number, trial in finished_before.items():
        assert after[number] == trial  # untouched by the kill and the restart
    resumed_numbers = [n for n in running_before if "resumes" in after[n]["user_attrs"]]
    # A trial may end on its own between the last look and the signal taking effect (a
    # graceful shutdown lets the scheduler run until the API has closed its connections):
    # then it is complete and was never interrupted. The others were resumed.
    assert resumed_numbers, "no trial was in flight when the service went down"
    for number in resumed_numbers:
        checkpointed = running_before[number]
        resumed = after[number]
        (resume,) = resumed["user_attrs"]["resumes"]
        assert resume["reason"] == "interrupted: the scheduler restarted while the trial ran"
        # From the newest checkpoint on disk: at least the one seen before the kill.
        assert resume["from_epoch"] >= checkpointed and resume["from_epoch"] % 5 == 0
        detail = restarted.api.get(f"/studies/{study_id}/trials/{number}").json()
        assert [p["epoch"] for p in detail["learning_curve"]] == list(range(1, epochs + 1))
        assert sorted(resumed["intermediate_values"], key=int) == [
            str(e) for e in range(1, epochs + 1)
        ]
    assert list((restarted.data_dir / "checkpoints").rglob("*.pt")) == []


# -- the database goes away ---------------------------------------------------------------------


def _postgres_cluster() -> list[str] | None:
    """``pg_ctlcluster`` arguments for the local PostgreSQL on port 5432, or None."""
    if shutil.which("pg_lsclusters") is None or shutil.which("pg_ctlcluster") is None:
        return None
    out = subprocess.run(["pg_lsclusters", "-h"], capture_output=True, text=True, check=False)
    for line in out.stdout.splitlines():
        fields = line.split()
        if len(fields) >= 4 and fields[2] == "5432" and fields[3] == "online":
            return [fields[0], fields[1]]
    return None


@pytest.mark.postgres
def test_postgres_restart_during_a_study_loses_nothing(
    postgres_url: str, server_factory: Callable[..., Server]
) -> None:
    cluster = _postgres_cluster()
    if os.environ.get("TUNEFORGE_TEST_RESTART_POSTGRES", "1") == "0":
        pytest.skip("TUNEFORGE_TEST_RESTART_POSTGRES=0: this machine's PostgreSQL is not ours")
    if cluster is None or os.geteuid() != 0:
        pytest.skip("restarting PostgreSQL needs pg_ctlcluster and root (Debian's packaging)")
    server = server_factory(postgres_url, own_ray=True, env=ENV)
    budget, epochs = 6, 150
    study_id = server.api.post("/studies", json=study_spec(budget, epochs)).json()["id"]
    before = poll_trials(server.api, study_id, mid_study)
    finished_before = {t["number"]: t for t in before if t["state"] in DONE}

    # Clients keep reading while the database is away: they get 503s, never a 500.
    codes: list[int] = []
    polling = threading.Event()

    def poll() -> None:
        with server.client(server.key) as client:
            while not polling.is_set():
                codes.append(client.get(f"/studies/{study_id}").status_code)
                time.sleep(0.02)

    poller = threading.Thread(target=poll)
    poller.start()
    try:
        subprocess.run(["pg_ctlcluster", *cluster, "restart"], check=True, timeout=120)
    finally:  # whatever happened, leave the machine's PostgreSQL running
        subprocess.run(["pg_ctlcluster", *cluster, "start"], check=False, timeout=120)
        time.sleep(1.0)
        polling.set()
        poller.join()
    assert codes and set(codes) <= {200, 503}, sorted(set(codes))

    study = wait_finished(server.api, study_id)
    assert study["status"] == "completed", study
    after = trials(server.api, study_id)
    assert len(after) == budget
    assert [t["state"] for t in after] == ["COMPLETE"] * budget
    for number, trial in finished_before.items():
        assert after[number] == trial
    for t in after:
        epochs_seen = sorted(int(e) for e in t["intermediate_values"])
        assert epochs_seen == list(range(1, epochs + 1)), t["number"]
    assert server.process.poll() is None  # the service rode it out


@pytest.mark.postgres
def test_storage_reconnects_after_its_connections_are_dropped(postgres_url: str) -> None:
    import psycopg

    from tests.conftest import PG_ADMIN

    name = f"tf_drop_{os.getpid()}"
    storage = make_storage(f"{postgres_url}&application_name={name}")
    study = optuna.create_study(storage=storage)
    study.optimize(lambda t: t.suggest_float("x", 0, 1), n_trials=2)
    with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
        killed = conn.execute(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
            "WHERE application_name = %s",
            (name,),
        ).fetchone()
    assert killed is not None and killed[0] >= 1  # the pool held a connection: it is gone
    study.optimize(lambda t: t.suggest_float("x", 0, 1), n_trials=2)
    assert len(study.get_trials()) == 4


def test_transient_errors_are_retried_and_others_are_not() -> None:
    calls: list[int] = []
    dropped = sa_exc.OperationalError("SELECT 1", {}, Exception("server closed the connection"))

    def flaky() -> str:
        calls.append(1)
        if len(calls) < 3:
            raise optuna.exceptions.StorageInternalError("commit failed") from dropped
        return "written"

    assert not transient(optuna.exceptions.StorageInternalError("invalid data"))
    try:
        raise optuna.exceptions.StorageInternalError("commit failed") from dropped
    except optuna.exceptions.StorageInternalError as wrapped:
        assert transient(wrapped)  # Optuna's wrapper around a dropped connection
    assert retrying(flaky, patience_s=10, name="set_trial_user_attr")() == "written"
    assert len(calls) == 3

    def broken() -> None:
        raise sa_exc.IntegrityError("INSERT", {}, Exception("duplicate key"))

    with pytest.raises(sa_exc.IntegrityError):
        retrying(broken, patience_s=10, name="set_trial_user_attr")()

    def down() -> None:
        raise dropped

    started = time.monotonic()
    with pytest.raises(sa_exc.OperationalError):
        retrying(down, patience_s=0.5, name="get_trial")()
    assert time.monotonic() - started < 5  # gives up after its patience


def test_population_study_killed_mid_run_resumes_through_tune_restore(
    server_factory: Callable[..., Server], sqlite_url: str
) -> None:
    from tests.e2e._search import population_study

    epochs = 24
    spec = population_study("pbt-restart", "pbt", perturbation_interval=4)
    spec["task"]["training"]["epochs"] = epochs
    server = server_factory(sqlite_url, own_ray=True)
    study_id = server.api.post("/studies", json=spec).raise_for_status().json()["id"]

    def progressed(items: list[dict[str, Any]]) -> bool:
        reached = [t["user_attrs"].get("pbt_epochs", [0, 0])[1] for t in items]
        return len(reached) >= 4 and max(reached) >= 10

    before = poll_trials(server.api, study_id, progressed)
    server.stop(signal.SIGKILL)
    finished_before = {t["number"]: t for t in before if t["state"] in DONE}

    restarted = server_factory(sqlite_url, own_ray=True)
    study = wait_finished(restarted.api, study_id)
    assert study["status"] == "completed", study
    assert f"4 of 4 members trained {epochs} epochs" in study["status_reason"]
    after = trials(restarted.api, study_id)
    assert {t["state"] for t in after} == {"COMPLETE"}
    for number, trial in finished_before.items():
        assert after[number] == trial
    # Restored from the members' checkpoints, not retrained: each member starts from epoch 1
    # exactly once (a fresh population would start every member again).
    for member in range(4):
        segments = [t for t in after if t["user_attrs"]["pbt_member"] == member]
        assert sum(t["user_attrs"]["pbt_epochs"][0] == 1 for t in segments) == 1, segments
        assert max(t["user_attrs"]["pbt_epochs"][1] for t in segments) == epochs
