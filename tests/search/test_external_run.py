"""An external study's run (:class:`search.loop.external.ExternalRun`), driven by hand as the
scheduler drives it, on a real SQLite study: expired leases fail, and the budget, the target,
failures and a stop end the study. Trials are asked and told with :mod:`search.external`, as
the API does."""

import time
from pathlib import Path
from typing import Any

import optuna
from optuna.trial import TrialState

from search.algorithm import Env
from search.datadir import DataDir
from search.external import asking, telling
from search.loop import external
from search.loop.external import ExternalRun
from search.spec import StudySpec, StudyStatus
from service.api.convert import to_spec
from service.api.schemas.study import StudyCreate


def spec_of(**changes: Any) -> StudySpec:
    body: dict[str, Any] = {
        "name": "ext",
        "task": {"kind": "external", "metrics": ["loss"], "lease_s": 30},
        "objective": {"metric": "loss", "direction": "minimize"},
        "algorithm": {"name": "random", "settings": {"seed": 0}},
        "search_space": {"x": {"type": "float", "low": 0.0, "high": 1.0}},
        "budget": {"max_trials": 3},
        "parallelism": 3,
        **changes,
    }
    return to_spec(StudyCreate.model_validate(body))


def opened(tmp_path: Path, spec: StudySpec, started_at: float | None = None) -> ExternalRun:
    storage = optuna.storages.RDBStorage(f"sqlite:///{tmp_path / 'study.db'}")
    optuna.create_study(study_name="ext", storage=storage, direction="minimize")
    study = asking.load(storage, "ext", spec)
    env = Env(DataDir(tmp_path), lambda ref: None, started_at or time.time())  # type: ignore[arg-type, return-value]
    return ExternalRun(spec, study, env)


def advance(run: ExternalRun) -> None:
    run._checked = 0.0  # the run looks at most every CHECK_EVERY_S; here, at every call
    run.advance()


def tell(run: ExternalRun, asked: asking.Asked, loss: float) -> None:
    telling.tell(run.study, run.spec, asked.trial_id, "complete", {"loss": loss}, "")


def test_an_expired_lease_fails_its_trial_and_the_budget_ends_the_study(
    tmp_path: Path, monkeypatch: Any
) -> None:
    spec = spec_of()
    run = opened(tmp_path, spec)
    first, second, third = (
        asking.ask(run.study, spec, f"token{i}", queued=False, number=0) for i in range(3)
    )
    tell(run, first, 0.5)
    advance(run)
    assert run.outcome is None  # two trials out, their leases good
    now = time.time()
    monkeypatch.setattr(external.time, "time", lambda: now + 31)  # both leases expire
    tell(run, second, 0.4)  # told in time (the API checked its lease): not failed
    advance(run)
    lost = run.study.get_trials()[third.number]
    assert lost.state == TrialState.FAIL
    assert lost.user_attrs["fail_reason"] == "lease expired: no word from its client for 30 s"
    assert run.outcome is not None and run.outcome.status == StudyStatus.COMPLETED
    assert run.outcome.reason == "max_trials reached"


def test_the_target_value_ends_the_study_and_fails_the_trials_out_as_interrupted(
    tmp_path: Path,
) -> None:
    spec = spec_of(budget={"max_trials": 10, "target_value": 0.1})
    run = opened(tmp_path, spec)
    winner, other = (
        asking.ask(run.study, spec, "a", queued=False, number=0),
        asking.ask(run.study, spec, "b", queued=False, number=0),
    )
    tell(run, winner, 0.05)
    advance(run)
    assert run.outcome is not None and run.outcome.status == StudyStatus.COMPLETED
    assert run.outcome.reason.startswith("target value 0.1 reached by trial 0")
    cut = run.study.get_trials()[other.number]
    assert cut.state == TrialState.FAIL and cut.user_attrs["interrupted"] is True


def test_max_failed_trials_fails_the_study(tmp_path: Path) -> None:
    spec = spec_of(budget={"max_trials": 10, "max_failed_trials": 2})
    run = opened(tmp_path, spec)
    for token in ("a", "b"):
        asked = asking.ask(run.study, spec, token, queued=False, number=0)
        telling.tell(run.study, spec, asked.trial_id, "fail", {}, "diverged")
    advance(run)
    assert run.outcome is not None and run.outcome.status == StudyStatus.FAILED
    assert run.outcome.reason == "max_failed_trials reached: 2 trials failed"


def test_a_stop_fails_the_trials_out_and_a_drain_waits_for_them(tmp_path: Path) -> None:
    spec = spec_of(budget={"max_trials": 10})
    run = opened(tmp_path, spec)
    out = asking.ask(run.study, spec, "a", queued=False, number=0)
    run.drain()
    advance(run)
    assert run.outcome is None  # a trial is out: the drain waits for its client
    tell(run, out, 0.3)
    advance(run)
    assert run.outcome is not None and run.outcome.status == StudyStatus.STOPPED
    again = opened(tmp_path / "b" if (tmp_path / "b").mkdir() is None else tmp_path, spec)
    held = asking.ask(again.study, spec, "c", queued=False, number=0)
    again.stop("stopped by user")
    cut = again.study.get_trials()[held.number]
    assert cut.state == TrialState.FAIL and cut.user_attrs["fail_reason"] == "stopped by user"
    assert again.outcome is not None and again.outcome.status == StudyStatus.STOPPED


def test_a_timeout_ends_the_study_once_no_trial_is_out(tmp_path: Path) -> None:
    spec = spec_of(budget={"max_trials": 10, "timeout_s": 5})
    run = opened(tmp_path, spec, started_at=time.time() - 10)
    advance(run)
    assert run.outcome is not None and run.outcome.reason == "timeout reached"
