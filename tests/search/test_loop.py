"""``StudyLoop`` on a real local Ray with an in-memory Optuna study."""

import json
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import optuna
import pytest
import ray
import torch
from optuna.artifacts import FileSystemArtifactStore, get_all_artifact_meta

from models.data import load_dataset
from search.algorithm import Outcome
from search.attrs import MAX_ATTR_JSON, trial_attr, trial_curve
from search.loop import StudyLoop, failure_reason, wait_any
from search.ray_runtime import node_ip
from search.spec import Budget, DatasetRef, Resources, StudySpec, StudyStatus
from search.trials.events import Started
from search.trials.train import TrainPayload
from search.trials.worker import run_trial, warm_workers
from tests.search.conftest import digits_spec, make_loop


def make_spec(max_trials: int = 4, parallelism: int = 2, epochs: int = 2) -> StudySpec:
    return digits_spec("loop-test", 1, max_trials, parallelism, epochs)


def drive(loop: StudyLoop, max_seen: list[int] | None = None) -> None:
    """Run the loop to its end the way the scheduler does."""
    for _ in range(10_000):
        loop.advance()
        if max_seen is not None:
            max_seen.append(loop.n_in_flight)
        if loop.outcome is not None:
            return
        wait_any([loop], 0.5)
    pytest.fail("loop did not finish")


def new_study() -> optuna.Study:
    """The study as the service opens it for a spec with no pruner: no trial is pruned (Optuna's
    own default, a median pruner, would prune some depending on which trials end first)."""
    return optuna.create_study(
        direction="maximize",
        sampler=optuna.samplers.RandomSampler(1),
        pruner=optuna.pruners.NopPruner(),
    )


def test_ray_is_bound_to_loopback(local_ray: None) -> None:
    assert node_ip() == "127.0.0.1"


def test_trials_run_on_the_workers_warmed_beforehand(local_ray: None, tmp_path: Path) -> None:
    # One warm worker per CPU; the study's trials (1 CPU each) then land on them, so none
    # pays torch's import. (Runs before any other test of this module starts a worker.)
    warmed = warm_workers()
    assert len(warmed) == 2
    study = new_study()
    loop = make_loop(make_spec(max_trials=4), study, tmp_path, started_at=time.time())
    drive(loop)
    pids = {t.user_attrs["pid"] for t in study.trials}
    assert pids and pids <= warmed, (pids, warmed)


def _disable_grad() -> int:
    import os

    torch.set_grad_enabled(False)  # what a cancel landing inside no_grad's exit leaves behind
    time.sleep(0.5)  # both run at once, so each of the two workers gets one
    return os.getpid()


def test_a_worker_left_without_gradients_still_trains_the_next_trials(
    local_ray: None, tmp_path: Path
) -> None:
    poison = ray.remote(_disable_grad).options(num_cpus=1)
    poisoned = set(ray.get([poison.remote(), poison.remote()]))
    assert len(poisoned) == 2
    study = new_study()
    loop = make_loop(make_spec(max_trials=4), study, tmp_path, started_at=time.time())
    drive(loop)
    assert [t.state.name for t in study.trials] == ["COMPLETE"] * 4
    assert {t.user_attrs["pid"] for t in study.trials} <= poisoned


def test_dataset_is_put_once_and_parallelism_is_held(local_ray: None, tmp_path: Path) -> None:
    loads: list[str] = []

    def counting_load(ref: DatasetRef) -> Any:
        loads.append(str(ref.name))
        return load_dataset(str(ref.name), ref.val_fraction, ref.split_seed)

    study = new_study()
    loop = make_loop(make_spec(max_trials=5, parallelism=2), study, tmp_path, load=counting_load)
    seen: list[int] = []
    drive(loop, seen)
    assert loads == ["digits"]  # once for the study, never in a trial
    assert max(seen) == 2  # parallelism trials in flight, never more
    assert loop.outcome is not None and loop.outcome.status == "completed"
    states = [t.state for t in study.trials]
    assert states == [optuna.trial.TrialState.COMPLETE] * 5
    storage = study._storage
    artifacts = (tmp_path / "artifacts" / study.study_name).resolve()
    store = FileSystemArtifactStore(tmp_path / "optuna-artifacts")
    for t in study.trials:
        assert sorted(t.intermediate_values) == [1, 2]
        assert trial_curve(t)[trial_attr(t, "best_epoch") - 1]["val_accuracy"] == t.value
        assert trial_attr(t, "final_metrics")["val_accuracy"] == t.value
        assert (t.user_attrs["final_val_accuracy"], t.user_attrs["epochs"]) == (t.value, 2)
        # Every user attribute is one short line in optuna-dashboard.
        assert max(len(json.dumps(v)) for v in t.user_attrs.values()) <= MAX_ATTR_JSON
        # The model goes under the data directory, where the API serves it from...
        folder = Path(trial_attr(t, "artifact_uri")).resolve()
        assert folder.parent == artifacts
        # ... and into Optuna's artifact store, where optuna-dashboard lists it.
        uploaded = {m.filename: m.artifact_id for m in get_all_artifact_meta(t, storage=storage)}
        assert sorted(uploaded) == ["curve.csv", "model.ts", "spec.json", "weights.pt"]
        for name, artifact_id in uploaded.items():
            with store.open_reader(artifact_id) as f:
                assert f.read() == (folder / name).read_bytes()


def test_exception_fails_the_trial_alone(local_ray: None, tmp_path: Path) -> None:
    def flaky(payload: TrainPayload, data: Any, seed: int, cpus: float, gpus: float) -> Any:
        width = payload.model["width"]
        if width % 2:  # odd widths blow up mid-trial
            yield Started("n", 0, "cpu")
            raise RuntimeError(f"width {width} is odd")
        yield from run_trial(payload, data, seed, cpus, gpus)

    study = new_study()
    loop = make_loop(make_spec(max_trials=8), study, tmp_path, trial_fn=flaky)
    drive(loop)
    assert loop.outcome == Outcome(StudyStatus.COMPLETED, "max_trials reached")
    failed = [t for t in study.trials if t.state == optuna.trial.TrialState.FAIL]
    complete = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    states = [(t.number, t.state.name) for t in study.trials]
    assert failed and complete and len(failed) + len(complete) == 8, states
    for t in failed:
        assert t.params["model.width"] % 2 == 1
        assert (
            t.user_attrs["fail_reason"] == f"RuntimeError: width {t.params['model.width']} is odd"
        )


def test_timeout_stops_new_trials(local_ray: None, tmp_path: Path) -> None:
    from dataclasses import replace

    spec = replace(make_spec(max_trials=100), budget=Budget(max_trials=100, timeout_s=1.0))
    study = new_study()
    # Started long ago: the timeout has passed.
    loop = make_loop(spec, study, tmp_path, started_at=0.0)
    drive(loop)
    assert loop.outcome == Outcome(StudyStatus.COMPLETED, "timeout reached")
    assert study.trials == []


def test_failure_reason_unwraps_ray_errors(local_ray: None) -> None:
    @ray.remote
    def boom() -> None:
        raise ValueError("first line\nlast line")

    with pytest.raises(ray.exceptions.RayTaskError) as info:
        ray.get(boom.remote())
    assert failure_reason(info.value) == "ValueError: first line / last line"


def test_resumed_seeded_sampler_does_not_replay(tmp_path: Path) -> None:
    from search.algorithm import Env, StudyRef
    from search.datadir import DataDir
    from search.registry import study_algorithm
    from search.spec import FunctionTask

    storage = optuna.storages.RDBStorage(f"sqlite:///{tmp_path / 'db.sqlite'}")
    spec = replace(make_spec(), task=FunctionTask("noop"), search_space=())
    env = Env(DataDir(tmp_path), lambda ref: None, 1e18)  # type: ignore[arg-type, return-value]

    def proposals(name: str, n_existing: int) -> list[int]:
        study = optuna.create_study(storage=storage, study_name=name)
        for _ in range(n_existing):  # trials a previous owner ran
            study.tell(study.ask(), 0.0)
        loop = study_algorithm("random").open(spec, StudyRef(storage, name), env)
        assert isinstance(loop, StudyLoop)
        from optuna.distributions import IntDistribution

        return [loop.study.ask({"x": IntDistribution(0, 10**9)}).params["x"] for _ in range(3)]

    assert proposals("a", 0) == proposals("b", 0)  # a fixed seed repeats from scratch
    assert proposals("c", 3) != proposals("d", 0)  # a resumed study (3 trials) does not


def test_unplaceable_resources_are_named(local_ray: None) -> None:
    from search.ray_runtime import unplaceable

    assert unplaceable(1, 0) is None
    assert unplaceable(2, 0) is None
    assert unplaceable(3, 0) == (
        "no Ray node can run a trial with resources cpu=3, gpu=0 (largest node: 2 CPU, 0 GPU)"
    )
    reason = unplaceable(1, 0.5)
    assert reason is not None and "gpu=0.5" in reason and "0 GPU" in reason


def test_event_of_a_trial_cancelled_meanwhile_is_ignored(local_ray: None, tmp_path: Path) -> None:
    spec = make_spec(max_trials=4, parallelism=2, epochs=50)
    study = new_study()
    loop = make_loop(spec, study, tmp_path)
    loop.advance()
    gens = loop.waiting_on()
    assert len(gens) == 2
    ray.wait(gens, num_returns=2, timeout=60)  # both streams have an event ready
    loop.stop("stopped by test")
    for gen in gens:
        loop.on_ready(gen)  # no KeyError: the trial was cancelled after it became ready
    assert [t.user_attrs["fail_reason"] for t in study.trials] == ["stopped by test"] * 2
    assert all(t.user_attrs["interrupted"] for t in study.trials)


def test_max_failed_trials_with_simultaneous_failures(local_ray: None, tmp_path: Path) -> None:
    from dataclasses import replace

    def crash(payload: Any, data: Any, seed: int, cpus: float, gpus: float) -> Any:
        raise MemoryError("simulated")
        yield  # a generator, like every trial

    spec = replace(make_spec(parallelism=2), budget=Budget(max_trials=10, max_failed_trials=1))
    study = new_study()
    loop = make_loop(spec, study, tmp_path, trial_fn=crash)
    drive(loop)
    assert loop.outcome == Outcome(StudyStatus.FAILED, "max_failed_trials reached: 1 trials failed")
    reasons = {t.user_attrs["fail_reason"] for t in study.trials}
    assert "MemoryError: simulated" in reasons
    assert len(study.trials) == 2  # no trial started after the limit was hit


def test_a_study_whose_every_trial_failed_ends_failed_with_the_reason(
    local_ray: None, tmp_path: Path
) -> None:
    from dataclasses import replace

    def crash(payload: Any, data: Any, seed: int, cpus: float, gpus: float) -> Any:
        raise MemoryError("simulated")
        yield  # a generator, like every trial

    spec = replace(make_spec(parallelism=2), budget=Budget(max_trials=3, max_failed_trials=None))
    study = new_study()
    loop = make_loop(spec, study, tmp_path, trial_fn=crash)
    drive(loop)
    assert loop.outcome == Outcome(
        StudyStatus.FAILED, "every trial failed (3); the last: MemoryError: simulated"
    )


def test_wait_any_reports_a_loop_error_and_keeps_going(
    local_ray: None, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    study = new_study()
    loop = make_loop(make_spec(max_trials=1, parallelism=1), study, tmp_path)
    loop.advance()

    def broken(gen: Any) -> None:
        raise ConnectionError("database unreachable")

    monkeypatch.setattr(loop, "on_ready", broken)
    errors: list[tuple[Any, Exception]] = []
    while not errors:
        wait_any([loop], 5.0, on_error=lambda lp, exc: errors.append((lp, exc)))
    assert errors[0][0] is loop and str(errors[0][1]) == "database unreachable"
    with pytest.raises(ConnectionError):  # without a handler, the error propagates
        wait_any([loop], 5.0)
    loop.stop("test over")


def test_trials_reserve_the_requested_resources(local_ray: None, tmp_path: Path) -> None:
    import time
    from dataclasses import replace

    spec = replace(make_spec(max_trials=2, parallelism=2, epochs=400), resources=Resources(cpu=0.5))
    study = new_study()
    loop = make_loop(spec, study, tmp_path)
    loop.advance()
    deadline = time.monotonic() + 60
    while not all(t.user_attrs.get("pid") for t in study.trials):  # both workers started
        assert time.monotonic() < deadline
        wait_any([loop], 1.0)
    # Two trials of half a CPU each hold exactly one of the local Ray's two CPUs. Ray's
    # resource view is refreshed asynchronously, so wait for it to show the running trials.
    while ray.available_resources().get("CPU") == 2.0:
        assert time.monotonic() < deadline
        time.sleep(0.1)
    time.sleep(0.5)  # settle: a second refresh must not lower it further
    assert ray.available_resources().get("CPU") == pytest.approx(1.0)
    loop.stop("test over")
    deadline = time.monotonic() + 30
    while ray.available_resources().get("CPU", 0) < 2.0:  # cancelling frees them
        assert time.monotonic() < deadline
        time.sleep(0.1)
