"""Prometheus metrics: the database's figures read at scrape time (SQLite and PostgreSQL).

Every expected figure is written out or counted here from the trials the test made (known
studies and trials, a python fallback for the durations, ten thousand trials, a database that
cannot be read), and the exposition text is parsed with prometheus_client's own parser, as a
scraper would.
"""

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import optuna
import pytest
from optuna.storages._rdb.models import StudyModel, TrialModel
from optuna.trial import FrozenTrial, TrialState
from sqlalchemy import create_engine, insert, select
from sqlalchemy.orm import sessionmaker

from service.reports.metrics import DURATION_BUCKETS
from service.scheduling.metrics import SchedulerMetrics
from service.store import optuna_sql
from service.store.orm import StudyRow
from tests.service.conftest import Db
from tests.service.reports._metrics import Scrape, render

T0 = datetime(2026, 1, 1, 12, 0, 0, tzinfo=UTC)
LE = [*(repr(b) for b in DURATION_BUCKETS), "+Inf"]


def cumulative(durations: list[float]) -> dict[str, float]:
    """The buckets Prometheus expects for these durations."""
    counts = {repr(b): float(sum(d <= b for d in durations)) for b in DURATION_BUCKETS}
    return {**counts, "+Inf": float(len(durations))}


# -- a database with known studies and trials ------------------------------------------------


def add_trial(study: optuna.Study, state: TrialState, seconds: float | None) -> None:
    """A trial in ``state`` that ran ``seconds`` (None: started, not finished)."""
    study.add_trial(
        FrozenTrial(
            number=0,
            trial_id=0,
            state=state,
            value=1.0 if state == TrialState.COMPLETE else None,
            datetime_start=T0,
            datetime_complete=None if seconds is None else T0 + timedelta(seconds=seconds),
            params={},
            distributions={},
            user_attrs={},
            system_attrs={},
            intermediate_values={},
        )
    )


def add_row(db: Db, name: str, status: str, tenant: str = "acme", stop: bool = False) -> None:
    with db.sessions() as s:
        s.add(
            StudyRow(
                name=name,
                tenant=tenant,
                optuna_study_name=name,
                spec={},
                status=status,
                stop_requested=stop,
            )
        )
        s.commit()


COMPLETE_S = [0.5, 3.0, 45.0, 700.0]
PRUNED_S = [20.0]
FAIL_S = [2.0, 5000.0]
ENDED_COMPLETE_S = [90_000.0]  # longer than the last finite bucket


@pytest.fixture
def populated(db: Db) -> Db:
    """A running study with trials in every state and two enqueued points, an ended study with
    one long trial and a leftover enqueued point, and rows in most statuses."""
    running = optuna.create_study(study_name="secret-running-study", storage=db.storage)
    for seconds in COMPLETE_S:
        add_trial(running, TrialState.COMPLETE, seconds)
    for seconds in PRUNED_S:
        add_trial(running, TrialState.PRUNED, seconds)
    for seconds in FAIL_S:
        add_trial(running, TrialState.FAIL, seconds)
    add_trial(running, TrialState.RUNNING, None)
    running.enqueue_trial({"x": 1})
    running.enqueue_trial({"x": 2})
    ended = optuna.create_study(study_name="secret-ended-study", storage=db.storage)
    for seconds in ENDED_COMPLETE_S:
        add_trial(ended, TrialState.COMPLETE, seconds)
    ended.enqueue_trial({"x": 3})  # its study ended: it will never run

    add_row(db, "secret-running-study", "running")
    add_row(db, "secret-ended-study", "completed", tenant="globex")
    add_row(db, "queued-1", "pending")
    add_row(db, "queued-but-stopping", "pending", stop=True)
    add_row(db, "broken", "failed")
    return db


# -- the database's figures ------------------------------------------------------------------


def test_database_figures(populated: Db) -> None:
    text = render(populated.sessions, None).decode()
    scrape = Scrape(text)

    assert scrape.value("tuneforge_database_up") == 1
    trials = {s: scrape.value("tuneforge_trials", state=s) for s in TrialState.__members__}
    assert trials == {"COMPLETE": 5, "PRUNED": 1, "FAIL": 2, "RUNNING": 1, "WAITING": 3}
    studies = {
        s: scrape.value("tuneforge_studies", status=s)
        for s in ("pending", "running", "completed", "failed", "stopped")
    }
    assert studies == {"pending": 2, "running": 1, "completed": 1, "failed": 1, "stopped": 0}
    assert scrape.value("tuneforge_queued_studies") == 1  # the stopping one is not queued
    assert scrape.value("tuneforge_queued_trials") == 2  # the ended study's point is not

    # 0.5, 3, 45, 700 and 90000 seconds, written out: cumulative buckets, +Inf holds all.
    name = "tuneforge_trial_duration_seconds"
    assert scrape.buckets(name, state="COMPLETE") == dict(
        zip(LE, [1, 2, 2, 2, 3, 3, 3, 3, 4, 4, 4, 4, 4, 5], strict=True)
    )
    assert scrape.value(f"{name}_count", state="COMPLETE") == 5
    assert scrape.value(f"{name}_sum", state="COMPLETE") == pytest.approx(90_748.5, abs=1e-3)
    assert scrape.buckets(name, state="PRUNED") == cumulative(PRUNED_S)
    assert scrape.value(f"{name}_sum", state="PRUNED") == pytest.approx(20.0, abs=1e-3)
    assert scrape.buckets(name, state="FAIL") == cumulative(FAIL_S)
    assert scrape.value(f"{name}_count", state="FAIL") == 2
    assert scrape.value(f"{name}_sum", state="FAIL") == pytest.approx(5002.0, abs=1e-3)
    # Unfinished trials have no duration; no other state gets a histogram.
    assert {s.labels.get("state") for s in scrape.samples if s.name.startswith(name)} == {
        "COMPLETE",
        "PRUNED",
        "FAIL",
    }

    # Aggregates only: no study, tenant or parameter shows.
    for secret in ("secret", "queued-1", "broken", "acme", "globex", '"x"'):
        assert secret not in text
    # Without a scheduler in the process, none of its figures.
    assert "tuneforge_scheduler" not in text


def test_python_fallback_agrees_with_sql(populated: Db, monkeypatch: pytest.MonkeyPatch) -> None:
    """A database without the date arithmetic written here gets the same histogram, bucketed in
    Python from the two datetime columns."""
    in_sql = render(populated.sessions, None).decode()
    monkeypatch.setattr(optuna_sql, "_seconds_between", lambda *_: None)
    in_python = render(populated.sessions, None).decode()
    name = "tuneforge_trial_duration_seconds"
    for state in ("COMPLETE", "PRUNED", "FAIL"):
        assert Scrape(in_python).buckets(name, state=state) == Scrape(in_sql).buckets(
            name, state=state
        )
        assert Scrape(in_python).value(f"{name}_sum", state=state) == pytest.approx(
            Scrape(in_sql).value(f"{name}_sum", state=state), abs=1e-3
        )
    assert Scrape(in_python).value(f"{name}_count", state="COMPLETE") == 5


def test_ten_thousand_trials(db: Db) -> None:
    """A large study, written in bulk: the aggregates still add up, trial by trial."""
    optuna.create_study(study_name="big", storage=db.storage)
    durations = [float(i % 4000) + 0.25 for i in range(9_000)]
    fails = [7.5] * 1_000
    with db.sessions() as s:
        study_id = s.scalars(select(StudyModel.study_id)).one()
        rows: list[dict[str, Any]] = [
            {
                "number": i,
                "study_id": study_id,
                "state": state,
                "datetime_start": T0.replace(tzinfo=None),
                "datetime_complete": (T0 + timedelta(seconds=d)).replace(tzinfo=None),
            }
            for i, (state, d) in enumerate(
                [(TrialState.COMPLETE, d) for d in durations]
                + [(TrialState.FAIL, d) for d in fails]
            )
        ]
        s.execute(insert(TrialModel.__table__), rows)  # type: ignore[arg-type]
        s.commit()

    scrape = Scrape(render(db.sessions, None).decode())
    assert scrape.value("tuneforge_trials", state="COMPLETE") == 9_000
    assert scrape.value("tuneforge_trials", state="FAIL") == 1_000
    name = "tuneforge_trial_duration_seconds"
    assert scrape.buckets(name, state="COMPLETE") == cumulative(durations)
    assert scrape.value(f"{name}_sum", state="COMPLETE") == pytest.approx(sum(durations), abs=0.1)
    assert scrape.buckets(name, state="FAIL") == cumulative(fails)


def test_database_down_is_a_figure_not_an_error(tmp_path: Path) -> None:
    """A database the collector cannot read gives ``tuneforge_database_up 0``, not a failed
    scrape: the scheduler's figures still come through."""
    engine = create_engine(f"sqlite:///{tmp_path / 'empty.db'}")  # no tables at all
    scheduler = SchedulerMetrics()
    scheduler.pass_done(0.2, [])
    try:
        scrape = Scrape(render(sessionmaker(engine), scheduler).decode())
    finally:
        engine.dispose()
    assert scrape.value("tuneforge_database_up") == 0
    assert not scrape.has("tuneforge_trials")
    assert scrape.value("tuneforge_scheduler_loop_seconds_count") == 1
