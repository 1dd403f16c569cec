"""Checkpoints and resumption: a trial cut short by a lost worker or a restart goes on from its
newest checkpoint, computes what an uninterrupted run computes, and counts once."""

import os
import time
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import optuna
import pytest
from optuna.trial import TrialState

from models.data import load_dataset
from models.training.config import TrainConfig
from models.training.results import EpochMetrics, TrainCheckpoint, TrainResult
from models.training.trainer import train
from search.attrs import trial_attr, trial_curve, write
from search.loop import StudyLoop, lost_worker, wait_any
from search.spec import Budget, StudySpec, StudyStatus
from search.trials.events import CheckpointSaved, EpochEnd, Event, Started
from search.trials.worker import run_trial
from tests.search.conftest import digits_spec, make_loop

MODEL = {"family": "mlp", "hidden_layers": 2, "width": 24, "dropout": 0.2}


@pytest.fixture(scope="module")
def digits() -> Any:
    return load_dataset("digits", 0.2, 0, {})


def spec(max_trials: int = 2, epochs: int = 8, parallelism: int = 1) -> StudySpec:
    return digits_spec("resume-test", 3, max_trials, parallelism, epochs)


def new_study() -> optuna.Study:
    """The study as the service opens it for a spec with no pruner: no trial is pruned (Optuna's
    own default, a median pruner, would prune some depending on which trials end first)."""
    return optuna.create_study(
        direction="maximize",
        sampler=optuna.samplers.RandomSampler(1),
        pruner=optuna.pruners.NopPruner(),
    )


def drive(loop: StudyLoop, until: Callable[[], bool] | None = None) -> None:
    """Run the loop the way the scheduler does, to its end or until ``until()`` holds."""
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline:
        loop.advance()
        if until is not None and until():
            return
        if loop.outcome is not None:
            if until is not None:  # the moment the test waits for never came
                pytest.fail(f"the loop ended ({loop.outcome}) before the moment to strike")
            return
        wait_any([loop], 0.2)
    pytest.fail("the loop did not get there in time")


def held_after(checkpoints: int, release: Path) -> Callable[..., Iterator[Event]]:
    """``run_trial`` that stops after its ``checkpoints``-th checkpoint until cancelled or
    ``release`` exists: the moment to strike is reached however the workers are scheduled (a
    free-running trial can end before its sibling's worker has even started, on a loaded
    machine, and a sibling may take minutes to start there)."""

    def trial(*args: Any) -> Iterator[Event]:
        seen = 0
        for event in run_trial(*args):
            yield event
            seen += isinstance(event, CheckpointSaved)
            if seen == checkpoints:
                # Short sleeps: ray.cancel's KeyboardInterrupt lands between them (it cannot
                # wake one long sleep) when the scheduler shuts down. The test releases the
                # hold after the strike: a cancel lost on a loaded machine must not keep the
                # worker from the trials resumed after it (nobody reads this stream by then).
                deadline = time.monotonic() + 600
                while not release.exists() and time.monotonic() < deadline:
                    time.sleep(0.1)
                return

    return trial


def run(items: Iterator[Any]) -> tuple[list[EpochMetrics], list[TrainCheckpoint], TrainResult]:
    epochs, checkpoints, result = [], [], None
    for item in items:
        if isinstance(item, EpochMetrics):
            epochs.append(item)
        elif isinstance(item, TrainCheckpoint):
            checkpoints.append(item)
        else:
            result = item
    assert result is not None
    return epochs, checkpoints, result


# -- the trainer --------------------------------------------------------------------------------


@pytest.mark.parametrize("patience", [0, 3])
def test_training_resumed_from_a_checkpoint_equals_the_uninterrupted_run(
    digits: Any, patience: int
) -> None:
    cfg = TrainConfig(
        epochs=9, lr=0.05, schedule="plateau", plateau_patience=1, early_stopping_patience=patience
    )
    monitor = ("val_accuracy", "maximize")
    whole, checkpoints, result = run(train(MODEL, cfg, digits, 7, "cpu", monitor, 3))
    assert [c.epoch for c in checkpoints] == [e for e in (3, 6) if e < len(whole)]
    middle = checkpoints[0]
    rest, _, resumed = run(train(MODEL, cfg, digits, 7, "cpu", monitor, 3, resume=middle.state))
    # Weights, optimizer moments, schedule, early stopping and every random generator carry
    # over: the epochs after the checkpoint, and the result, are exactly the same.
    assert [e.as_dict() for e in rest] == [e.as_dict() for e in whole[middle.epoch :]]
    assert resumed.best_epoch == result.best_epoch
    assert resumed.stopped_early == result.stopped_early
    assert resumed.state_dict == result.state_dict
    volatile = {"latency_ms"}  # timed, not computed
    assert {k: v for k, v in resumed.metrics.items() if k not in volatile} == {
        k: v for k, v in result.metrics.items() if k not in volatile
    }


def test_no_checkpoint_after_the_last_epoch(digits: Any) -> None:
    _, checkpoints, _ = run(train(MODEL, TrainConfig(epochs=4), digits, 1, checkpoint_every=2))
    assert [c.epoch for c in checkpoints] == [2]  # epoch 4's result follows at once


# -- the loop -----------------------------------------------------------------------------------


def crash_worker_once(marker_dir: Path, at_epoch: int) -> Callable[..., Any]:
    """A trial body whose worker process dies once per trial, after ``at_epoch``."""

    def body(payload: Any, data: Any, seed: int, cpus: float, gpus: float) -> Iterator[Event]:
        marker = marker_dir / f"crashed-{seed}"
        for event in run_trial(payload, data, seed, cpus, gpus):
            yield event
            if isinstance(event, EpochEnd) and event.epoch == at_epoch and not marker.exists():
                marker.touch()
                time.sleep(1.0)  # let the events before reach the scheduler
                os._exit(1)  # the worker dies like a node would take it: no exception, no goodbye

    return body


def crash_worker_always(
    payload: Any, data: Any, seed: int, cpus: float, gpus: float
) -> Iterator[Event]:
    yield Started("n", os.getpid(), "cpu")
    os._exit(1)


def test_lost_worker_resumes_the_trial_from_its_checkpoint(local_ray: None, tmp_path: Path) -> None:
    reference = new_study()
    drive(make_loop(spec(), reference, tmp_path / "reference"))

    study = new_study()
    loop = make_loop(
        spec(),
        study,
        tmp_path,
        trial_fn=crash_worker_once(tmp_path, at_epoch=5),
        checkpoint_every=2,
    )
    drive(loop)
    assert loop.outcome is not None and loop.outcome.reason == "max_trials reached"
    trials = study.get_trials()
    assert [t.state for t in trials] == [TrialState.COMPLETE, TrialState.COMPLETE]
    for t, ref in zip(trials, reference.get_trials(), strict=True):
        (resume,) = trial_attr(t, "resumes")
        assert resume["from_epoch"] == 4  # checkpoints at 2 and 4; the worker died after 5
        assert resume["reason"].startswith("worker lost: WorkerCrashedError")
        assert [c["epoch"] for c in trial_curve(t)] == list(range(1, 9))
        # The same computation as a trial nobody interrupted.
        assert t.params == ref.params
        assert t.value == ref.value
        assert trial_curve(t) == trial_curve(ref)
        assert t.intermediate_values == ref.intermediate_values
    # Dropped as trials end.
    assert list((tmp_path / "checkpoints" / study.study_name).iterdir()) == []


def test_a_trial_whose_worker_keeps_dying_fails_after_its_retries(
    local_ray: None, tmp_path: Path
) -> None:
    study = new_study()
    loop = make_loop(
        spec(max_trials=2, parallelism=2),
        study,
        tmp_path,
        trial_fn=crash_worker_always,
        checkpoint_every=1,
        retries=2,
    )
    drive(loop)
    # Every trial failed: the study failed, saying why (not "max_trials reached").
    assert loop.outcome is not None and loop.outcome.status == StudyStatus.FAILED
    assert loop.outcome.reason.startswith("every trial failed (2); the last: worker lost after 2")
    for t in study.get_trials():
        assert t.state == TrialState.FAIL
        assert len(trial_attr(t, "resumes")) == 2
        assert t.user_attrs["fail_reason"].startswith(
            "worker lost after 2 retries: WorkerCrashedError"
        )


def test_restart_resumes_trials_in_flight_and_counts_each_once(
    local_ray: None, tmp_path: Path
) -> None:
    reference = new_study()
    drive(make_loop(spec(max_trials=3, epochs=12, parallelism=2), reference, tmp_path / "ref"))

    study = new_study()
    checkpoints = tmp_path / "checkpoints" / study.study_name

    def loop(trial_fn: Callable[..., Iterator[Event]] = run_trial) -> StudyLoop:
        return make_loop(
            spec(max_trials=3, epochs=12, parallelism=2),
            study,
            tmp_path,
            checkpoint_every=3,
            trial_fn=trial_fn,
        )

    release = tmp_path / "release"
    first = loop(held_after(1, release))

    def checkpointed() -> bool:
        running = study.get_trials(states=(TrialState.RUNNING,))
        return len(running) == 2 and all("checkpoint_epoch" in t.user_attrs for t in running)

    try:
        drive(first, until=checkpointed)
        first.suspend()  # the service shuts down: the trials stay RUNNING, checkpoints kept
    finally:
        release.touch()
    cut = {t.number: t.user_attrs["checkpoint_epoch"] for t in study.get_trials()}
    assert cut == {0: 3, 1: 3}
    assert sorted(p.name for p in checkpoints.iterdir()) == ["trial-0.pt", "trial-1.pt"]

    second = loop()
    second.resume()
    assert second.n_in_flight == 2  # both resumed at once, before any new trial
    drive(second)
    trials = study.get_trials()
    assert len(trials) == 3  # exactly the budget: the resumed trials count once
    assert all(t.state == TrialState.COMPLETE for t in trials)
    for t, ref in zip(trials, reference.get_trials(), strict=True):
        assert t.params == ref.params and t.value == ref.value
        assert [c["epoch"] for c in trial_curve(t)] == list(range(1, 13))
    for number, epoch in cut.items():
        (resume,) = trial_attr(trials[number], "resumes")
        assert resume["from_epoch"] == epoch
        assert resume["reason"] == "interrupted: the scheduler restarted while the trial ran"


def test_a_crash_between_the_checkpoint_file_and_its_record_loses_no_epoch(
    local_ray: None, tmp_path: Path
) -> None:
    reference = new_study()
    drive(make_loop(spec(max_trials=1, epochs=12), reference, tmp_path / "ref"))

    study = new_study()

    def loop(trial_fn: Callable[..., Iterator[Event]] = run_trial) -> StudyLoop:
        return make_loop(
            spec(max_trials=1, epochs=12),
            study,
            tmp_path,
            checkpoint_every=3,
            trial_fn=trial_fn,
        )

    release = tmp_path / "release"
    first = loop(held_after(2, release))

    def second_checkpoint() -> bool:
        return any(t.user_attrs.get("checkpoint_epoch", 0) >= 6 for t in study.get_trials())

    try:
        drive(first, until=second_checkpoint)
        first.suspend()
    finally:
        release.touch()
    (trial,) = study.get_trials()
    path = tmp_path / "checkpoints" / study.study_name / "trial-0.pt"
    on_disk = TrainCheckpoint.read(path.read_bytes()).epoch
    assert on_disk == trial.user_attrs["checkpoint_epoch"] == 6
    # The scheduler died after the new checkpoint reached the disk, before its record did.
    study._storage.set_trial_user_attr(trial._trial_id, "checkpoint_epoch", on_disk - 3)

    drive(loop())
    (done,) = study.get_trials()
    (resume,) = trial_attr(done, "resumes")
    assert resume["from_epoch"] == on_disk  # the file's own epoch
    assert [c["epoch"] for c in trial_curve(done)] == list(range(1, 13))
    assert done.value == reference.get_trials()[0].value


def test_a_trial_that_used_up_its_retries_fails_at_restart(local_ray: None, tmp_path: Path) -> None:
    study = new_study()
    trial = study.ask({"model.width": optuna.distributions.IntDistribution(8, 32)})
    write(trial, {"resumes": [{"from_epoch": 0, "reason": "x"}] * 3})
    loop = make_loop(replace(spec(), budget=Budget(max_trials=1)), study, tmp_path)
    loop.resume()
    assert loop.n_in_flight == 0
    (t,) = study.get_trials()
    assert t.state == TrialState.FAIL
    assert t.user_attrs["fail_reason"] == (
        "interrupted: the scheduler restarted while the trial ran (after 3 retries)"
    )
    drive(loop)  # it counted: the budget of one trial is spent
    assert len(study.get_trials()) == 1


def test_out_of_memory_is_the_trials_own_failure() -> None:
    import ray

    assert not lost_worker(ray.exceptions.OutOfMemoryError("killed"))
    assert lost_worker(ray.exceptions.WorkerCrashedError())
    assert not lost_worker(RuntimeError("boom"))
