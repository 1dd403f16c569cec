"""Scheduler replicas (issue 15): two ``tuneforge scheduler`` processes and one API on one
database, trials on the session's Ray cluster.

- Six studies spread over both replicas; one is ``kill -9``ed mid-study; the other takes its
  studies over when their leases expire and resumes their trials from their checkpoints. Every
  study finishes with exactly its budget, no trial has two runs at once (each resumed run starts
  after the killed replica's run of it has ended), and every trial that had finished before the
  kill is unchanged. The takeover time is printed.
- A replica paused (SIGSTOP) past its lease, whose study another replica took meanwhile, writes
  nothing to it once it runs again.
"""

import signal
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import optuna
import pytest
from optuna.trial import FrozenTrial, TrialState
from sqlalchemy import create_engine, text

from benchmarks.harness import SchedulerProcess, start_scheduler
from search.attrs import trial_attr
from tests.conftest import Server, digits_study

pytestmark = pytest.mark.slow

LEASE_S = 4.0
ENV = {
    "TUNEFORGE_LEASE_S": str(LEASE_S),
    "TUNEFORGE_SCHEDULER_POLL_S": "0.2",
    "TUNEFORGE_CHECKPOINT_EVERY": "5",
    "TUNEFORGE_WARM_WORKERS": "false",
}


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def database_url(request: pytest.FixtureRequest) -> str:
    name = "sqlite_url" if request.param == "sqlite" else "postgres_url"
    return str(request.getfixturevalue(name))


Start = Callable[..., SchedulerProcess]


@pytest.fixture
def cluster(
    database_url: str, tmp_path: Path, ray_cluster: str, server_factory: Callable[..., Server]
) -> Iterator[tuple[Server, Start]]:
    """The API (no scheduler of its own), and scheduler replicas started on demand; all
    stopped at teardown."""
    server = server_factory(database_url, env={"TUNEFORGE_RUN_SCHEDULER": "false"})
    started: list[SchedulerProcess] = []

    def start(lease_s: float = LEASE_S) -> SchedulerProcess:
        env = {**ENV, "TUNEFORGE_LEASE_S": str(lease_s)}
        replica = start_scheduler(database_url, tmp_path / "data", ray_cluster, env=env)
        started.append(replica)
        return replica

    yield server, start
    for replica in started:
        replica.stop()


def study(name: str, max_trials: int, epochs: int, parallelism: int = 1) -> dict[str, Any]:
    spec = digits_study(name, max_trials, epochs, lr=0.01, width_high=48)
    spec["parallelism"] = parallelism
    spec["resources"] = {"cpu": 0.5}  # four trials at once on the session's 2 CPUs
    return spec


def owners(database_url: str) -> dict[int, tuple[str | None, int, str]]:
    """Each study's owner, fencing token and status, read from the database."""
    engine = create_engine(database_url)
    try:
        with engine.connect() as conn:
            rows = conn.execute(text("SELECT id, owner, fence, status FROM tf_studies"))
            return {r.id: (r.owner, r.fence, r.status) for r in rows}
    finally:
        engine.dispose()


def row(database_url: str, study_id: int) -> dict[str, Any]:
    """The study's row in ``tf_studies`` (its lease, status, version and spec)."""
    engine = create_engine(database_url)
    try:
        with engine.connect() as conn:
            found = conn.execute(text("SELECT * FROM tf_studies WHERE id = :id"), {"id": study_id})
            return dict(found.one()._mapping)
    finally:
        engine.dispose()


def optuna_trials(database_url: str, study_id: int) -> list[FrozenTrial]:
    name = row(database_url, study_id)["optuna_study_name"]
    storage = optuna.storages.RDBStorage(database_url, skip_compatibility_check=True)
    try:
        return optuna.load_study(study_name=name, storage=storage).get_trials()
    finally:
        storage.engine.dispose()


def replica_of(scheduler: SchedulerProcess, owner: str | None) -> bool:
    return owner is not None and owner.split(":")[1] == str(scheduler.pid)


def wait(check: Callable[[], Any], what: str, timeout: float = 120) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = check()
        if result:
            return result
        time.sleep(0.05)
    pytest.fail(f"timed out waiting for {what}")


def same(trial: FrozenTrial) -> tuple[Any, ...]:
    """What a trial that finished must keep."""
    return (
        trial.state,
        trial.values,
        trial.params,
        trial.user_attrs,
        trial.system_attrs,  # the records (curve, metrics) and the uploads
        trial.intermediate_values,
        trial.datetime_complete,
    )


def test_a_killed_replica_s_studies_finish_on_the_other(
    cluster: tuple[Server, Start], database_url: str
) -> None:
    server, start = cluster
    a, b = start(), start()
    budget, epochs = 3, 60
    ids = [
        server.api.post("/studies", json=study(f"replica-{i}", budget, epochs))
        .raise_for_status()
        .json()["id"]
        for i in range(6)
    ]

    def all_held() -> dict[int, tuple[str | None, int, str]] | None:
        now = owners(database_url)
        return now if all(now[i][0] for i in ids) else None

    held = wait(all_held, "every study to have an owner")
    by_a = [i for i in ids if replica_of(a, held[i][0])]
    by_b = [i for i in ids if replica_of(b, held[i][0])]
    assert len(by_a) == len(by_b) == 3, held  # spread: each replica its fair share

    def moment() -> bool:
        # A trial of the replica to kill runs on a worker and has a checkpoint, and a trial
        # has finished already. (A trial whose worker has not started has no pid: Ray queues
        # it until a CPU is free; the loop writes the pid as soon as the trial starts.)
        seen = [t for i in by_a for t in optuna_trials(database_url, i)]
        running = [t for t in seen if t.state == TrialState.RUNNING and "pid" in t.user_attrs]
        done = any(t.state == TrialState.COMPLETE for t in seen)
        return done and any("checkpoint_epoch" in t.user_attrs for t in running)

    wait(moment, "trials in flight with checkpoints on the replica to kill")
    a.signal(signal.SIGKILL)
    killed_at = time.time()
    before = {i: optuna_trials(database_url, i) for i in ids}
    finished = {(i, t.number): same(t) for i in ids for t in before[i] if t.state.is_finished()}
    cut = {  # the killed replica's trials that ran on a worker
        (i, t.number): t.user_attrs["pid"]
        for i in by_a
        for t in before[i]
        if t.state == TrialState.RUNNING and "pid" in t.user_attrs
    }
    assert cut

    # The killed replica's trial runs end (Ray ends a dead driver's tasks); B takes over.
    gone: dict[int, float] = {}
    takeover: float | None = None
    deadline = time.monotonic() + 60
    while (len(gone) < len(set(cut.values())) or takeover is None) and time.monotonic() < deadline:
        for pid in set(cut.values()) - set(gone):
            if not alive(pid):
                gone[pid] = time.time()
        if takeover is None and all(replica_of(b, owners(database_url)[i][0]) for i in by_a):
            takeover = time.time() - killed_at
        time.sleep(0.02)
    assert takeover is not None, "the other replica never took the studies over"
    assert len(gone) == len(set(cut.values())), "the killed replica's trial runs never ended"
    print(f"takeover: {takeover:.1f} s after the kill (TUNEFORGE_LEASE_S={LEASE_S:g})")
    assert takeover <= LEASE_S + 5
    assert "taken over from scheduler" in b.log()

    for i in ids:
        wait(
            lambda i=i: row(database_url, i)["status"] in ("completed", "failed", "stopped"),
            f"study {i} to finish",
            timeout=240,
        )
    for i in ids:
        assert row(database_url, i)["status_reason"] == "max_trials reached"
        trials = optuna_trials(database_url, i)
        assert [t.state for t in trials] == [TrialState.COMPLETE] * budget, i  # its budget
        for t in trials:
            assert sorted(t.intermediate_values) == list(range(1, epochs + 1))
            if (i, t.number) in finished:
                assert same(t) == finished[(i, t.number)]  # finished before: unchanged
    for (i, number), pid in cut.items():
        resumed = optuna_trials(database_url, i)[number]
        last = trial_attr(resumed, "resumes")[-1]
        # Its next run started after the killed replica's run of it had ended: never two.
        assert last["at"] >= gone[pid], (i, number, last, gone[pid])


def alive(pid: int) -> bool:
    """Whether process ``pid`` runs (a zombie has ended)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError):
        return False
    return state not in ("Z", "X")


def snapshot(database_url: str, study_id: int) -> tuple[Any, ...]:
    """Everything stored of a study: its row and every trial of it."""
    trials = optuna_trials(database_url, study_id)
    return row(database_url, study_id), [(same(t), t.system_attrs, t.params) for t in trials]


@pytest.mark.parametrize(
    "database_url", [pytest.param("postgres", marks=pytest.mark.postgres)], indirect=True
)
def test_a_replica_that_lost_its_lease_writes_nothing_to_the_study(
    cluster: tuple[Server, Start], database_url: str
) -> None:
    """On PostgreSQL: SQLite has one write lock for the whole file, and a process paused in
    the middle of a write keeps it, so every replica waits until it runs again (nothing is
    written twice or lost, but nothing moves either): replicas on SQLite share one machine,
    where a paused process is not the failure to plan for; a cluster uses PostgreSQL."""
    server, start = cluster
    lease_s = 10.0  # the new owner is paused below for less than this: it keeps the study
    first, second = start(lease_s), start(lease_s)
    budget, epochs = 2, 150
    spec = study("paused", budget, epochs, parallelism=2)
    study_id = server.api.post("/studies", json=spec).raise_for_status().json()["id"]

    def in_flight() -> bool:
        trials = optuna_trials(database_url, study_id)
        running = [t for t in trials if t.state == TrialState.RUNNING]
        return len(running) == 2 and all("checkpoint_epoch" in t.user_attrs for t in running)

    wait(in_flight, "two trials in flight with checkpoints")
    a, b = (
        (first, second)
        if replica_of(first, row(database_url, study_id)["owner"])
        else (second, first)
    )
    a.signal(signal.SIGSTOP)  # A hangs: its trials' events pile up unread
    wait(lambda: replica_of(b, row(database_url, study_id)["owner"]), "B to take the study")
    wait(
        lambda: any(
            trial_attr(t, "resumes") and t.user_attrs.get("pid")
            for t in optuna_trials(database_url, study_id)
        ),
        "B to resume a trial",
    )
    b.signal(signal.SIGSTOP)  # nothing writes to the study now but A, once it runs again
    time.sleep(0.5)
    before = snapshot(database_url, study_id)
    a.signal(signal.SIGCONT)
    wait(lambda: "took it over; dropped here" in a.log(), "A to drop the study", timeout=5)
    time.sleep(0.5)
    after = snapshot(database_url, study_id)
    b.signal(signal.SIGCONT)
    assert after == before  # A wrote nothing
    assert replica_of(b, row(database_url, study_id)["owner"])

    wait(lambda: row(database_url, study_id)["status"] != "running", "the study to end", 240)
    assert row(database_url, study_id)["status_reason"] == "max_trials reached"
    trials = optuna_trials(database_url, study_id)
    assert [t.state for t in trials] == [TrialState.COMPLETE] * budget
    for t in trials:
        assert sorted(t.intermediate_values) == list(range(1, epochs + 1))
