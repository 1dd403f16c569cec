"""One thread that runs every active study: reads ``tf_studies``, drives ``search`` loops.

The part that knows which studies run and records their status lives here; everything about
asking, dispatching and telling trials lives in :mod:`search.loop`. A population study (PBT,
PB2) runs its own Ray Tune driver in a thread (:mod:`service.population`); this thread starts
it, stops it and records how it ended.
"""

import functools
import logging
import threading
import time
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any

import optuna
from optuna.storages import RDBStorage
from sqlalchemy.orm import Session, sessionmaker

from models.data import Dataset, from_arrays
from search.darts import darts_task
from search.loop import StudyLoop, fail_running_trials, wait_any
from search.ray_runtime import connect, disconnect, unplaceable
from search.registry import STUDY_KINDS, create_pruner, create_sampler, get_algorithm
from search.spec import StudySpec
from search.trial import run_trial, warm_workers
from service import crud
from service.artifacts import checkpoints_dir
from service.config import Settings
from service.datasets import load_upload
from service.db import transient
from service.metrics import SchedulerMetrics
from service.orm import StudyRow
from service.population import PopulationRun, population_dir
from service.schemas import StudyCreate
from service.views import load_trials

log = logging.getLogger(__name__)

_WAIT_S = 0.1  # longest a finished epoch waits before the scheduler sees it


class Scheduler:
    """Keeps every pending or running study's trials in flight on Ray."""

    def __init__(
        self, settings: Settings, sessions: sessionmaker[Session], storage: RDBStorage
    ) -> None:
        self._settings = settings
        self._sessions = sessions
        self._storage = storage
        self._loops: dict[int, StudyLoop] = {}
        self._populations: dict[int, PopulationRun] = {}
        self._specs: dict[int, dict[str, object]] = {}
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._thread = threading.Thread(target=self._run, name="tuneforge-scheduler", daemon=True)
        self.ready = threading.Event()
        self.error: str | None = None
        self.metrics = SchedulerMetrics()  # its own registry: see service.metrics

    # -- control ----------------------------------------------------------------------------

    def start(self) -> None:
        self._thread.start()

    def wake(self) -> None:
        """Reread the studies now (a study was created, stopped or changed)."""
        self._wake.set()

    def shutdown(self, timeout: float = 30) -> None:
        self._stop.set()
        self._wake.set()
        self._thread.join(timeout)

    @property
    def state(self) -> str:
        if self.error:
            return "error"
        if self.ready.is_set():
            return "running" if self._thread.is_alive() else "stopped"
        return "starting"

    # -- the loop ---------------------------------------------------------------------------

    def _run(self) -> None:
        try:
            connect(self._settings.ray_address, self._settings.ray_num_cpus)
            if self._settings.warm_workers:
                warm_workers()
        except Exception as exc:
            self.error = f"cannot start Ray: {exc}"
            log.exception("scheduler cannot start Ray")
            return
        self.ready.set()
        next_sync = 0.0
        try:
            while not self._stop.is_set():
                began = time.monotonic()
                try:
                    if self._wake.is_set() or began >= next_sync:
                        self._wake.clear()
                        with self.metrics.sync_seconds.time():
                            self._sync()
                        next_sync = time.monotonic() + self._settings.scheduler_poll_s
                    self._step()
                    self.metrics.pass_done(
                        time.monotonic() - began, self._loops.values(), len(self._populations)
                    )
                except Exception:
                    # The database may be briefly unreachable: keep the thread, try again.
                    self.metrics.loop_errors.inc()
                    log.exception("scheduler iteration failed; retrying in 1 s")
                    self._stop.wait(1.0)
        finally:
            self._interrupt_all()
            self.metrics.idle()
            disconnect()

    def _step(self) -> None:
        for study_id, loop in list(self._loops.items()):
            self._guard(study_id, loop.fill)
        self._reap()
        wait_any(self._loops.values(), _WAIT_S, on_error=self._on_loop_error)
        self._reap()

    def _on_loop_error(self, loop: StudyLoop, exc: Exception) -> None:
        study_id = next(i for i, candidate in self._loops.items() if candidate is loop)
        self._fail_study(study_id, exc)

    def _guard(self, study_id: int, action: Callable[[], None]) -> None:
        try:
            action()
        except Exception as exc:
            if transient(exc):  # the database is away for longer than the storage waits
                log.warning("study %s waits for the database: %s", study_id, exc)
                self._stop.wait(1.0)
                return
            self._fail_study(study_id, exc)

    def _fail_study(self, study_id: int, exc: Exception) -> None:
        # One study's bug must not stop the others: it fails alone, with the reason.
        log.error("study %s failed in the scheduler", study_id, exc_info=exc)
        population = self._populations.pop(study_id, None)
        if population is not None:
            population.stop(f"internal error: {exc}")
        loop = self._loops.pop(study_id, None)
        if loop is not None:
            try:
                loop.stop(f"internal error: {exc}")
            except Exception:
                log.exception("cannot cancel study %s's trials", study_id)
        with self._sessions() as s:
            crud.mark_finished(s, study_id, "failed", f"internal error: {exc}")

    def _sync(self) -> None:
        with self._sessions() as session:
            rows = {r.id: r for r in crud.active_studies(session)}
            for study_id in list(self._loops):
                if study_id not in rows:  # finished or deleted elsewhere
                    self._loops.pop(study_id).stop("the study was ended outside the scheduler")
            for study_id in list(self._populations):
                if study_id not in rows:
                    self._populations.pop(study_id).stop("the study was ended elsewhere")
            for study_id, row in rows.items():
                if study_id in self._populations:
                    # A population stops at once (drain or not); _reap records the outcome
                    # once its open segments are told. Its budget is the population itself.
                    if row.stop_requested:
                        self._populations[study_id].stop("stopped by user")
                elif row.stop_requested and row.stop_drain and study_id in self._loops:
                    self._loops[study_id].drain()  # it ends once its trials finish
                elif row.stop_requested:
                    loop = self._loops.pop(study_id, None)
                    if loop is not None:
                        loop.stop("stopped by user")
                    else:  # stopped while no scheduler ran it: trials a restart would resume
                        study = optuna.load_study(
                            study_name=row.optuna_study_name, storage=self._storage
                        )
                        fail_running_trials(study, "stopped by user")
                    crud.mark_finished(session, study_id, "stopped", "stopped by user")
                elif study_id not in self._loops and self._population_busy(row):
                    running = next(iter(self._populations))
                    crud.mark_waiting(
                        session,
                        study_id,
                        f"waiting for population study {running} to end: Ray Tune drives one "
                        f"population at a time",
                    )
                elif study_id not in self._loops:
                    self._guard(study_id, functools.partial(self._open, session, row))
                elif row.spec != self._specs[study_id]:
                    spec = StudyCreate.model_validate(row.spec).to_spec()
                    self._loops[study_id].update_budget(spec.budget, spec.parallelism)
                    self._specs[study_id] = row.spec

    def _population_busy(self, row: StudyRow) -> bool:
        """A population study waits while another runs: Ray Tune's trainable registry is
        global to the process, so two drivers in one process would overwrite each other's."""
        return bool(self._populations) and _is_population(row)

    def _open(self, session: Session, row: StudyRow) -> None:
        spec = StudyCreate.model_validate(row.spec).to_spec()
        reason = unplaceable(spec.resources.cpu, spec.resources.gpu)
        if reason is not None and self._settings.ray_address:
            # A cluster's nodes come and go (workers still starting, autoscaling): wait.
            crud.mark_waiting(session, row.id, f"waiting for a Ray node: {reason}")
            return
        if reason is not None:  # the local Ray has what it has: no trial could ever start
            crud.mark_finished(session, row.id, "failed", reason)
            return
        algorithm = spec.algorithm
        if _is_population(row):
            self._open_population(session, row, spec)
            return
        n_trials = len(load_trials(self._storage, row.optuna_study_name))
        entry = get_algorithm(algorithm.name, STUDY_KINDS)
        oneshot = entry.kind == "oneshot"
        sampler = (
            optuna.samplers.RandomSampler(spec.seed)  # asks no parameter: the trial searches
            if oneshot
            else create_sampler(
                algorithm.name, algorithm.settings, spec.search_space, spec.seed, n_trials
            )
        )
        pruner = spec.pruner
        study = optuna.load_study(
            study_name=row.optuna_study_name,
            storage=self._storage,
            sampler=sampler,
            # No pruner means none: Optuna would otherwise default to a median pruner.
            pruner=create_pruner(
                pruner.name if pruner else None, pruner.settings if pruner else {}
            ),
        )
        dataset = self._load_upload(session, spec.task.dataset)
        started = crud.mark_running(session, row.id)
        self._loops[row.id] = StudyLoop(
            spec,
            study,
            started_at=_timestamp(started),
            dataset=dataset,
            artifact_dir=self._settings.data_dir / "artifacts" / row.optuna_study_name,
            trial_cap=entry.trial_cap(spec.search_space),
            checkpoint_dir=checkpoints_dir(self._settings.data_dir, row.optuna_study_name),
            checkpoint_every=self._settings.checkpoint_every,
            max_retries=self._settings.trial_retries,
            oneshot=oneshot,
            trial_fn=entry.factory if oneshot else run_trial,
            trial_task=darts_task(spec, entry.check_settings(algorithm.settings))
            if oneshot
            else None,
        )
        self._specs[row.id] = row.spec
        log.info("study %s (%s) running", row.id, row.name)

    def _open_population(self, session: Session, row: StudyRow, spec: StudySpec) -> None:
        study = optuna.load_study(study_name=row.optuna_study_name, storage=self._storage)
        dataset = self._load_upload(session, spec.task.dataset)
        started = crud.mark_running(session, row.id)
        data_dir = self._settings.data_dir
        self._populations[row.id] = PopulationRun(
            spec,
            study,
            dataset,
            storage_dir=population_dir(data_dir, row.optuna_study_name),
            artifact_dir=data_dir / "artifacts" / row.optuna_study_name,
            started_at=_timestamp(started),
        )
        self._specs[row.id] = row.spec
        log.info("population study %s (%s) running", row.id, row.name)

    def _load_upload(self, session: Session, ds: Mapping[str, Any]) -> Dataset | None:
        """An uploaded dataset's split (named datasets are loaded by the loop itself)."""
        upload_id = ds.get("upload_id")
        if upload_id is None:
            return None
        info = crud.upload_info(session, upload_id)
        if info is None:
            raise ValueError(f"the uploaded dataset {upload_id!r} no longer exists")
        x, y = load_upload(self._settings.data_dir, upload_id)
        return from_arrays(info.name, x, y, info.task, ds["val_fraction"], ds["split_seed"])

    def _reap(self) -> None:
        runs: dict[int, StudyLoop | PopulationRun] = {**self._loops, **self._populations}
        for study_id, run in runs.items():
            outcome = run.outcome
            if outcome is not None:
                with self._sessions() as s:  # recorded first: a failed write is tried again
                    crud.mark_finished(s, study_id, outcome.status, outcome.reason)
                self._loops.pop(study_id, None)
                self._populations.pop(study_id, None)
                log.info("study %s %s: %s", study_id, outcome.status, outcome.reason)

    def _interrupt_all(self) -> None:
        # The studies stay "running" and their trials in flight RUNNING, curves and
        # checkpoints saved: the next start resumes them (their Ray tasks cannot outlive this
        # process's Ray driver).
        for loop in self._loops.values():
            try:
                loop.suspend()
            except Exception:
                log.exception("cannot interrupt study %s", loop.spec.name)
        self._loops.clear()
        # A population is left as it is in Ray Tune's experiment; the next start restores it.
        for population in self._populations.values():
            population.suspend()
        for population in self._populations.values():
            population.join(timeout=20)
        self._populations.clear()


def _is_population(row: StudyRow) -> bool:
    name = row.spec.get("algorithm", {}).get("name", "tpe")
    return get_algorithm(str(name), STUDY_KINDS).kind == "population"


def _timestamp(dt: datetime) -> float:
    # SQLite hands back naive datetimes; the service writes only UTC.
    return (dt if dt.tzinfo else dt.replace(tzinfo=UTC)).timestamp()
