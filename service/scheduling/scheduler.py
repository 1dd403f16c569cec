"""One thread that runs every active study: reads ``tf_studies``, drives each study's Run.

Which studies run, and their status, is decided here; everything else is the study's
algorithm's: it opens a :class:`~search.algorithm.Run` (the sampler loop, a population, a
one-shot search), which this thread drives the same way whatever it is, and never names.
"""

import functools
import logging
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime

import optuna
from optuna.storages import RDBStorage
from sqlalchemy.orm import Session, sessionmaker

from models.data import Dataset, from_arrays
from search.algorithm import Env, Run, StudyRef, Waiting
from search.loop import abandon, wait_any
from search.ray_runtime import connect, disconnect, unplaceable
from search.registry import study_algorithm
from search.spec import DatasetRef, StudyStatus
from search.trials.train import load_named
from search.trials.worker import warm_workers
from service.config import Settings
from service.scheduling.metrics import SchedulerMetrics
from service.store import crud
from service.store.engine import transient
from service.store.orm import StudyRow, utcnow
from service.store.uploads import load_upload

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
        self._runs: dict[int, Run] = {}
        self._specs: dict[int, dict[str, object]] = {}
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._thread = threading.Thread(target=self._run, name="tuneforge-scheduler", daemon=True)
        self.ready = threading.Event()
        self.error: str | None = None
        self.metrics = SchedulerMetrics()  # its own registry: see service.scheduling.metrics

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
                    self.metrics.pass_done(time.monotonic() - began, self._runs.values())
                except Exception:
                    # The database may be briefly unreachable: keep the thread, try again.
                    self.metrics.loop_errors.inc()
                    log.exception("scheduler iteration failed; retrying in 1 s")
                    self._stop.wait(1.0)
        finally:
            self._suspend_all()
            self.metrics.idle()
            disconnect()

    def _step(self) -> None:
        for study_id, run in list(self._runs.items()):
            self._guard(study_id, run.advance)
        self._reap()
        wait_any(self._runs.values(), _WAIT_S, on_error=self._on_run_error)
        self._reap()

    def _on_run_error(self, run: Run, exc: Exception) -> None:
        study_id = next(i for i, candidate in self._runs.items() if candidate is run)
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
        run = self._runs.pop(study_id, None)
        if run is not None:
            try:
                run.stop(f"internal error: {exc}")
                run.close()
            except Exception:
                log.exception("cannot cancel study %s's trials", study_id)
        with self._sessions() as s:
            crud.mark_finished(s, study_id, StudyStatus.FAILED, f"internal error: {exc}")

    def _sync(self) -> None:
        with self._sessions() as session:
            rows = {r.id: r for r in crud.active_studies(session)}
            for study_id in list(self._runs):
                if study_id not in rows:  # finished or deleted elsewhere
                    ended = self._runs.pop(study_id)
                    ended.stop("the study was ended outside the scheduler")
                    ended.close()
            for study_id, row in rows.items():
                run = self._runs.get(study_id)
                if row.stop_requested and row.stop_drain and run is not None:
                    run.drain()  # it ends once its trials finish
                elif row.stop_requested and run is not None:
                    run.stop("stopped by user")  # _reap records how it ended
                elif row.stop_requested:
                    # Stopped while no scheduler ran it: trials a restart would have resumed.
                    study = optuna.load_study(
                        study_name=row.optuna_study_name, storage=self._storage
                    )
                    abandon(study, "stopped by user")
                    crud.mark_finished(session, study_id, StudyStatus.STOPPED, "stopped by user")
                elif run is None:
                    self._guard(study_id, functools.partial(self._open, session, row))
                elif row.spec != self._specs[study_id]:
                    run.update(crud.study_spec(row))
                    self._specs[study_id] = row.spec

    def _open(self, session: Session, row: StudyRow) -> None:
        spec = crud.study_spec(row)
        reason = unplaceable(spec.resources.cpu, spec.resources.gpu)
        if reason is not None and self._settings.ray_address:
            # A cluster's nodes come and go (workers still starting, autoscaling): wait.
            crud.mark_waiting(session, row.id, f"waiting for a Ray node: {reason}")
            return
        if reason is not None:  # the local Ray has what it has: no trial could ever start
            crud.mark_finished(session, row.id, StudyStatus.FAILED, reason)
            return
        started = row.started_at or utcnow()
        env = Env(
            data_dir=self._settings.paths,
            load_data=self._load_data,
            started_at=_timestamp(started),
            checkpoint_every=self._settings.checkpoint_every,
            trial_retries=self._settings.trial_retries,
        )
        study = StudyRef(self._storage, row.optuna_study_name, row.id)
        try:
            run = study_algorithm(spec.algorithm.name).open(spec, study, env)
        except Waiting as waiting:
            crud.mark_waiting(session, row.id, str(waiting))
            return
        crud.mark_running(session, row.id, started)
        self._runs[row.id] = run
        self._specs[row.id] = row.spec
        run.resume()
        log.info("study %s (%s) running", row.id, row.name)

    def _load_data(self, ref: DatasetRef) -> Dataset:
        """A study's dataset: a named one, or an upload's split (any thread may ask)."""
        if ref.upload_id is None:
            return load_named(ref)
        with self._sessions() as session:
            info = crud.upload_info(session, ref.upload_id)
        if info is None:
            raise ValueError(f"the uploaded dataset {ref.upload_id!r} no longer exists")
        x, y = load_upload(self._settings.paths, ref.upload_id)
        return from_arrays(info.name, x, y, info.task, ref.val_fraction, ref.split_seed)

    def _reap(self) -> None:
        for study_id, run in list(self._runs.items()):
            outcome = run.outcome
            if outcome is not None:
                with self._sessions() as s:  # recorded first: a failed write is tried again
                    crud.mark_finished(s, study_id, outcome.status, outcome.reason)
                self._runs.pop(study_id)
                run.close()
                log.info("study %s %s: %s", study_id, outcome.status, outcome.reason)

    def _suspend_all(self) -> None:
        # The studies stay "running" and their trials in flight RUNNING, curves and
        # checkpoints saved: the next start resumes them (their Ray tasks cannot outlive this
        # process's Ray driver; a population is left in Ray Tune's experiment).
        for study_id, run in self._runs.items():
            try:
                run.suspend()
            except Exception:
                log.exception("cannot suspend study %s", study_id)
        for run in self._runs.values():
            run.close()
        self._runs.clear()


def _timestamp(dt: datetime) -> float:
    # SQLite hands back naive datetimes; the service writes only UTC.
    return (dt if dt.tzinfo else dt.replace(tzinfo=UTC)).timestamp()
