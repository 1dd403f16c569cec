"""The Ray Tune driver of a population study: one per study, blocking in its own thread;
several run side by side in one process (see :func:`_member_of`).

:func:`run_pbt` runs one study to its end with Ray Tune's PBT or PB2 scheduler (design point
4), mirroring every segment into Optuna (:mod:`search.pbt.mirror`). On a restart (a shutdown
or a kill -9) the study continues through Ray Tune's restore: the members resume from their
newest checkpoints and the mirror rebuilds its segments from the study's trials. The budget's
``timeout_s`` (counted from ``started_at``) and ``target_value`` apply; ``max_trials`` and
``parallelism`` do not (the population fixes the work, and Ray runs as many members at once
as the cluster fits, time-multiplexing the rest).
"""

import logging
import math
import os
import random
import re
import shutil
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import optuna
from optuna.artifacts import FileSystemArtifactStore
from optuna.trial import TrialState

from models.data import Dataset
from search import optuna_compat
from search.artifacts import data_facts
from search.pbt.explore import Explorer, Plan, sample
from search.pbt.member import MEMBER, member_index, train_member, trial_name
from search.pbt.mirror import Mirror, PBTOutcome, trial_error
from search.pbt.settings import PB2Settings, check_pbt, epochs, structural_params
from search.spec import StudySpec, StudyStatus

log = logging.getLogger(__name__)


def _tune_hooks(run: Mirror) -> tuple[Any, Any]:
    """The Tune callback that feeds ``run`` and the stopper that reads it.

    Tune pickles both with its config (``tuner.pkl``); the live run (an Optuna storage, an
    event) stays out of the pickle and in this process.
    """
    from ray import tune

    class Feed(tune.Callback):  # type: ignore[misc]
        def __init__(self, run: Mirror) -> None:
            self.run: Mirror | None = run

        def on_trial_result(
            self, iteration: int, trials: Any, trial: Any, result: Any, **info: Any
        ) -> None:
            assert self.run is not None
            if not self.run.suspended:
                self.run.on_result(member_index(str(trial)), result)

        def on_trial_complete(self, iteration: int, trials: Any, trial: Any, **info: Any) -> None:
            assert self.run is not None
            if not self.run.suspended:
                self.run.on_complete(member_index(str(trial)), trial.checkpoint)

        def on_trial_error(self, iteration: int, trials: Any, trial: Any, **info: Any) -> None:
            assert self.run is not None
            if not self.run.suspended:
                self.run.on_error(member_index(str(trial)), trial_error(trial), trial.config)

        def __getstate__(self) -> dict[str, Any]:
            return {"run": None}

    class Stop(tune.Stopper):  # type: ignore[misc]
        def __init__(self, run: Mirror) -> None:
            self.epochs = run.plan.epochs
            self.run: Mirror | None = run

        def __call__(self, trial_id: str, result: dict[str, Any]) -> bool:
            return int(result.get("epoch", 0)) >= self.epochs

        def stop_all(self) -> bool:
            if self.run is not None and self.run.suspended:
                # Abandon the driver loop without stopping the members: Tune's experiment
                # state keeps them unfinished, so a restore continues them.
                raise Suspended("the service is shutting down")
            return self.run is not None and bool(self.run.should_stop())

        def __getstate__(self) -> dict[str, Any]:
            return {"epochs": self.epochs, "run": None}

    return Feed(run), Stop(run)


# -- the entry point --------------------------------------------------------------------------


def run_pbt(
    spec: StudySpec,
    study: optuna.Study,
    dataset: Dataset,
    storage_dir: Path,
    settings: PB2Settings,
    stop: threading.Event,
    *,
    artifact_dir: Path | None = None,
    artifact_store: FileSystemArtifactStore | None = None,
    started_at: float | None = None,
    suspend: threading.Event | None = None,
) -> PBTOutcome:
    """Run a PBT or PB2 study on Ray Tune to its end, mirroring every segment into ``study``.

    Blocks; call it from a thread of its own with Ray connected (``search.ray_runtime``).

    Args:
        spec: the study; see :func:`check_pbt` for what it must satisfy.
        study: its Optuna study (single objective, the spec's direction).
        dataset: the study's data, put once into Ray's object store.
        storage_dir: Ray Tune's experiment goes to ``storage_dir/tune`` (shared storage on a
            cluster).
        settings: the checked algorithm settings (:class:`search.pbt.settings.PBTSettings`
            for ``pbt``, :class:`~search.pbt.settings.PB2Settings` for ``pb2``: the study's
            algorithm name is the method).
        stop: set it to stop the population; the call then returns soon with ``stopped``.
        suspend: set it when the process shuts down: the call returns soon (``stopped``,
            "suspended"), leaving the members unfinished in Ray Tune's experiment and their
            segments RUNNING; the next call on the same ``storage_dir`` restores both.
        artifact_dir: where each member's final model is written (``trial-<n>/``); None
            writes none.
        artifact_store: Optuna's artifact store, where the final models' files are uploaded
            too (:mod:`search.optuna_artifacts`); None uploads none.
        started_at: wall-clock start of the study; ``budget.timeout_s`` counts from it
            (default: now).

    Returns:
        The outcome: ``completed`` (every member trained all epochs, or the timeout or the
        target value was reached), ``stopped`` (``stop`` was set) or ``failed`` (every member
        failed), with a reason and counts.

    Raises:
        ValueError: the spec cannot run as a PBT / PB2 study (the reasons of
            :func:`check_pbt`).
    """
    method = spec.algorithm.name
    problems = check_pbt(spec, settings, dataset.info)
    if problems:
        raise ValueError("; ".join(problems))

    # Results go to Optuna. Tune's own result loggers (CSV, JSON, TensorBoard per member) would
    # cost a fifth of a small population's time, and warn on every restore of a paused member
    # that their files have not reached the storage yet.
    os.environ["TUNE_DISABLE_AUTO_CALLBACK_LOGGERS"] = "1"
    logging.getLogger("ray.tune.analysis.experiment_analysis").setLevel(logging.ERROR)
    from ray import tune
    from ray.tune.schedulers import PopulationBasedTraining
    from ray.tune.search.basic_variant import BasicVariantGenerator

    from search.pbt.tune_compat import go_asynchronous, plug_hooks

    structural = set(structural_params(spec, dataset.info))
    objective = spec.objective
    plan = Plan(
        spec=spec,
        method=method,
        epochs=epochs(spec),
        interval=settings.perturbation_interval,
        mutable=tuple(p.name for p in spec.search_space if p.name not in structural),
        monitor=objective.metric,
        cpus=spec.resources.cpu,
        gpus=spec.resources.gpu,
    )
    population = settings.population_size
    rng = random.Random(spec.seed)
    points = [
        {MEMBER: m, **plan.encode({p.name: sample(p, rng) for p in spec.search_space})}
        for m in range(population)
    ]
    explorer = Explorer(plan, settings.resample, spec.seed + 1)
    mode = "max" if objective.direction == "maximize" else "min"
    common: dict[str, Any] = {
        "time_attr": "epoch",
        "metric": objective.metric,
        "mode": mode,
        "perturbation_interval": plan.interval,
        "quantile_fraction": settings.quantile_fraction,
        "custom_explore_fn": explorer,
        "log_config": False,
        "synch": settings.synch,
    }
    if method == "pb2":
        from ray.tune.schedulers.pb2 import PB2

        bounds = {}
        for name in plan.mutable:
            p = plan.param(name)
            assert p.low is not None and p.high is not None
            low, high = (math.log10(p.low), math.log10(p.high)) if p.log else (p.low, p.high)
            bounds[name] = [low, high]
        scheduler: Any = PB2(hyperparam_bounds=bounds, **common)
    else:
        scheduler = PopulationBasedTraining(
            hyperparam_mutations={},
            resample_probability=0.0,  # the explorer resamples
            **common,
        )

    timeout = spec.budget.timeout_s
    deadline = None if timeout is None else (started_at or time.time()) + timeout
    run = Mirror(plan, study, stop, population, artifact_dir, data_facts(dataset.info), deadline)
    run.artifact_store = artifact_store
    if suspend is not None:
        run.suspend = suspend
    mirror, stopper = _tune_hooks(run)
    trainable = _registered(
        lambda: tune.with_resources(
            tune.with_parameters(_member_of(study.study_name), data=dataset, plan=plan),
            {"cpu": spec.resources.cpu, "gpu": spec.resources.gpu},
        )
    )
    # Tune saves its experiment state (members, their checkpoints, the scheduler) at most
    # this often: what a restore after a crash starts from.
    os.environ.setdefault("TUNE_GLOBAL_CHECKPOINT_S", "1")
    experiment = (storage_dir / "tune").resolve()
    if experiment.is_dir() and tune.Tuner.can_restore(str(experiment)):
        # The study ran before this process (a restart, kill -9 included): the members go on
        # from their newest checkpoints and the open segments continue.
        run.restore()
        tuner = tune.Tuner.restore(str(experiment), trainable, resume_unfinished=True)
        # tuner.pkl holds the hooks without their live run (see _tune_hooks): plug it in.
        plug_hooks(tuner, mirror, stopper)
        # Ray Tune 2.60's synchronous PBT deadlocks after a restore: it rebuilds each
        # member's state with no perturbation yet, so every member waits at its first result
        # for the others, and no step is ever taken. The restored population goes on
        # asynchronously (a crash has ended exact repeatability anyway).
        go_asynchronous(tuner)
        return _fit(tuner, run)
    _fail_orphans(study)  # segments of a run whose experiment never got saved
    shutil.rmtree(experiment, ignore_errors=True)
    storage_dir.mkdir(parents=True, exist_ok=True)
    tuner = tune.Tuner(
        trainable,
        param_space={p.name: None for p in spec.search_space} | {MEMBER: None},
        tune_config=tune.TuneConfig(
            scheduler=scheduler,
            search_alg=BasicVariantGenerator(points_to_evaluate=points),
            num_samples=population,
            reuse_actors=True,
            trial_name_creator=trial_name,
            trial_dirname_creator=trial_name,
        ),
        run_config=tune.RunConfig(
            name="tune",
            storage_path=str(storage_dir.resolve()),
            stop=stopper,
            callbacks=[mirror],
            checkpoint_config=tune.CheckpointConfig(num_to_keep=settings.keep),
            failure_config=tune.FailureConfig(max_failures=0),
            verbose=0,
        ),
    )
    return _fit(tuner, run)


def _member_of(study_name: str) -> Any:
    """The study's own trainable: ``train_member`` under a name of the study's.

    Ray Tune keeps two things per process: its trainable registry, by the trainable's
    ``__name__``, and ``with_parameters``' objects, by the trainable's ``str()``. With
    ``train_member`` itself, two populations driven at once in one process would overwrite
    each other's entries: a member of one would train on the other's data and plan. A function
    object of its own per study, named after the study (the same name on a restore, which
    checks it), keeps each population's entries apart.
    """

    def member(config: dict[str, Any], **parameters: Any) -> None:
        train_member(config, **parameters)

    member.__name__ = member.__qualname__ = "member_" + re.sub(r"\W", "_", study_name)
    return member


# Ray Tune's process-wide registries (trainables, with_parameters' objects) are plain dicts
# flushed to Ray by iterating them: two population studies starting at once in one process
# (one driver thread each) failed with "dictionary changed size during iteration".
_REGISTRIES = threading.Lock()


def _registered(make: Callable[[], Any]) -> str:
    """Make a trainable and register it under its name, one thread at a time; the name is
    what the Tuner gets, so Tune registers nothing itself."""
    from ray import tune
    from ray.tune.experiment import Experiment

    with _REGISTRIES:
        trainable = make()
        name = str(Experiment.get_trainable_name(trainable))
        tune.register_trainable(name, trainable)
    return name


class Suspended(Exception):
    """Raised inside Tune's driver loop to leave it without finishing the members."""


def _fit(tuner: Any, run: Mirror) -> PBTOutcome:
    try:
        tuner.fit()
    except Exception:
        if not run.suspended:
            raise
    finally:
        run.finish()
    if run.suspended:
        return run._outcome(StudyStatus.STOPPED, "suspended: the service shut down", None)
    return run.outcome()


def _fail_orphans(study: optuna.Study) -> None:
    # Segments left RUNNING belong to a driver that died with its scheduler: their members
    # are gone. Fail them with a reason, marked interrupted like the loop's orphans.
    for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        trial = optuna_compat.trial_of(study, optuna_compat.trial_id_of(t))
        trial.set_user_attr("fail_reason", "interrupted: the scheduler restarted while it ran")
        trial.set_user_attr("interrupted", True)
        study.tell(t.number, state=TrialState.FAIL)
