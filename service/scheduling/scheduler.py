"""One thread that runs this replica's studies: reads ``tf_studies``, drives each study's Run.

Which studies run, and their status, is decided here; everything else is the study's
algorithm's: it opens a :class:`~search.algorithm.Run` (the sampler loop, a population, a
one-shot search), which this thread drives the same way whatever it is, and never names.

Any number of schedulers may share one database (:mod:`service.store.leases`): each takes
studies nobody holds, up to its fair share of the active ones, runs them only while it holds
their lease (renewed by a thread of its own), and writes to them only through a storage fenced
by that lease. A study whose lease another replica took is dropped here without a write.
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
from search.algorithm import Env, Run, StudyRef
from search.loop import abandon, wait_any
from search.ray_runtime import connect, disconnect, unplaceable
from search.registry import study_algorithm
from search.spec import DatasetRef, StudySpec, StudyStatus
from search.trials.train import load_named
from search.trials.worker import warm_workers
from service.config import Settings
from service.scheduling.fair import FairShare
from service.scheduling.jobs import JobRunner
from service.scheduling.metrics import SchedulerMetrics
from service.scheduling.plugins import WorkerPlugins
from service.store import crud, leases, quotas
from service.store.engine import transient
from service.store.leases import Lease, LeaseLost, fenced_storage, lost_lease
from service.store.orm import StudyRow, utcnow
from service.store.quotas import Quota
from service.store.uploads import load_upload

log = logging.getLogger(__name__)

_WAIT_S = 0.1  # longest a finished epoch waits before the scheduler sees it


class Scheduler:
    """Keeps every pending or running study's trials in flight on Ray."""

    def __init__(
        self,
        settings: Settings,
        sessions: sessionmaker[Session],
        storage: RDBStorage,
        announce: str = "",
    ) -> None:
        self._settings = settings
        self._sessions = sessions
        self._storage = storage  # its pool serves every run's fenced storage
        self._announce = announce  # said in the line that tells it is ready
        self._runs: dict[int, Run] = {}
        self._specs: dict[int, dict[str, object]] = {}
        self._leases: dict[int, Lease] = {}
        self._tenants: dict[int, str] = {}
        self._study_specs: dict[int, StudySpec] = {}
        self._fair = FairShare(settings.quota_trials_in_flight)
        self._plugins = WorkerPlugins()
        self._storages: dict[int, RDBStorage] = {}  # each run's, fenced by its lease
        self.owner = leases.replica_id()
        self._replicas = 1  # live schedulers on the database, this one included
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._thread = threading.Thread(target=self._run, name="tuneforge-scheduler", daemon=True)
        self._renewer = threading.Thread(
            target=self._keep_leases, name="tuneforge-leases", daemon=True
        )
        self.ready = threading.Event()
        self.error: str | None = None
        self.metrics = SchedulerMetrics()  # its own registry: see service.scheduling.metrics
        # Pre-flight checks and ensembles the API hands over (service.store.jobs).
        self._jobs = JobRunner(sessions, storage, settings.paths, self.owner, self._load_data)

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
        warmed: set[int] = set()
        try:
            connect(self._settings.ray_address, self._settings.ray_num_cpus)
            if self._settings.warm_workers:
                warmed = warm_workers()
            self._plugins.look(timeout_s=30.0)  # for the API's check of a submission
        except Exception as exc:
            self.error = f"cannot start Ray: {exc}"
            log.exception("scheduler cannot start Ray")
            return
        try:
            self._heartbeat()  # the others count this replica before it takes a study
        except Exception as exc:
            self.error = f"cannot reach the database: {exc}"
            log.exception("scheduler cannot reach the database")
            disconnect()
            return
        self._renewer.start()
        self.ready.set()
        workers = f"{len(warmed)} Ray workers warmed" if warmed else "Ray workers start on demand"
        ready = "tuneforge ready: %sscheduler %s running, %s, lease %g s"
        log.info(ready, self._announce, self.owner, workers, self._settings.lease_s)
        next_sync = 0.0
        polled = False
        try:
            while not self._stop.is_set():
                began = time.monotonic()
                try:
                    if self._wake.is_set() or began >= next_sync:
                        self._wake.clear()
                        self._plugins.look()
                        with self.metrics.sync_seconds.time():
                            self._sync()
                        next_sync = time.monotonic() + self._settings.scheduler_poll_s
                        polled = True
                    self._step()
                    self._jobs.step(poll=polled)
                    polled = False
                    self.metrics.pass_done(time.monotonic() - began, self._runs.values())
                except Exception:
                    # The database may be briefly unreachable: keep the thread, try again.
                    self.metrics.loop_errors.inc()
                    log.exception("scheduler iteration failed; retrying in 1 s")
                    self._stop.wait(1.0)
        finally:
            self._jobs.shutdown()
            self._suspend_all()
            self.metrics.idle()
            disconnect()

    # -- leases -----------------------------------------------------------------------------

    def _heartbeat(self) -> None:
        with self._sessions() as s:
            lease_s, plugins = self._settings.lease_s, self._plugins.found
            self._replicas = leases.heartbeat(s, self.owner, lease_s, time.time(), plugins)

    def _keep_leases(self) -> None:
        """Renew this replica's leases a few times per lease, apart from the scheduler's
        thread (a long pass there must not lose them); a lease another replica took is marked
        lost, and the scheduler's thread drops its run."""
        every = self._settings.lease_s / 3
        while not self._stop.wait(every):
            try:
                self._heartbeat()
                with self._sessions() as s:
                    lost = leases.renew(s, list(self._leases.values()), self._settings.lease_s)
                if lost:
                    self._wake.set()
            except Exception:
                log.exception("cannot renew the leases; trying again in %.1f s", every)

    def _drop(self, study_id: int) -> None:
        """Another replica took the study over: cancel its trials here and forget it, without
        a write (its new owner resumes the trials from their checkpoints)."""
        log.warning("study %s: another scheduler took it over; dropped here", study_id)
        lease = self._leases.pop(study_id, None)
        if lease is not None:
            lease.lost = True
        run = self._runs.pop(study_id, None)
        self._specs.pop(study_id, None)
        if run is not None:
            try:
                run.suspend()  # cancels its Ray tasks first; its writes are refused
            except LeaseLost:
                pass
            except Exception:
                log.exception("cannot cancel study %s's trials", study_id)
            run.close()
        self._dispose(study_id)

    def _dispose(self, study_id: int) -> None:
        self._study_specs.pop(study_id, None)
        self._tenants.pop(study_id, None)
        storage = self._storages.pop(study_id, None)
        if storage is not None:
            storage.remove_session()  # its connections go back to the shared pool

    def _release(self, study_id: int) -> None:
        lease = self._leases.pop(study_id, None)
        self._dispose(study_id)
        if lease is not None and not lease.lost:
            with self._sessions() as s:
                leases.release(s, lease)

    def _step(self) -> None:
        self._fair.apply(self._runs, self._study_specs, self._tenants)
        for study_id, run in list(self._runs.items()):
            self._guard(study_id, run.advance)
        self._reap()
        wait_any(self._runs.values(), _WAIT_S, on_error=self._on_run_error)
        self._reap()

    def _on_run_error(self, run: Run, exc: Exception) -> None:
        study_id = next(i for i, candidate in self._runs.items() if candidate is run)
        if lost_lease(exc):
            self._drop(study_id)
        else:
            self._fail_study(study_id, exc)

    def _guard(self, study_id: int, action: Callable[[], None]) -> None:
        try:
            action()
        except Exception as exc:
            if lost_lease(exc):
                self._drop(study_id)
            elif transient(exc):  # the database is away for longer than the storage waits
                log.warning("study %s waits for the database: %s", study_id, exc)
                self._stop.wait(1.0)
            else:
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
        reason = f"internal error: {exc}"
        try:
            with self._sessions() as s:
                crud.mark_finished(
                    s, study_id, StudyStatus.FAILED, reason, self._leases.get(study_id)
                )
        except LeaseLost:
            pass
        self._release(study_id)

    def _sync(self) -> None:
        for study_id, lease in list(self._leases.items()):
            if lease.lost:
                self._drop(study_id)
        with self._sessions() as session:
            defaults = Quota(**self._settings.quota_defaults())
            self._fair.set_quotas(quotas.all_quotas(session, defaults))
            rows = {r.id: r for r in crud.active_studies(session)}
            for study_id in list(self._runs):
                if study_id not in rows:  # finished or deleted elsewhere
                    ended = self._runs.pop(study_id)
                    self._guard(study_id, functools.partial(ended.stop, "the study ended"))
                    ended.close()
                    self._release(study_id)
            self._fair.see_elsewhere(session, rows.values(), self.owner)
            share = leases.fair_share(len(rows), self._replicas)
            for study_id, row in rows.items():
                run = self._runs.get(study_id)
                if row.stop_requested and row.stop_drain and run is not None:
                    run.drain()  # it ends once its trials finish
                elif row.stop_requested and run is not None:
                    run.stop("stopped by user")  # _reap records how it ended
                elif run is not None:
                    if row.spec != self._specs[study_id]:
                        self._study_specs[study_id] = crud.study_spec(row)
                        run.update(self._study_specs[study_id])
                        self._specs[study_id] = row.spec
                elif not leases.held_by_another(row, self.owner) and len(self._runs) < share:
                    self._take(session, row)

    def _take(self, session: Session, row: StudyRow) -> None:
        """Take a study nobody holds (or whose holder stopped renewing) and run it."""
        lease = self._claim(session, row)
        if lease is None:  # another replica took it first
            return
        if row.stop_requested:
            self._guard(row.id, functools.partial(self._abandon, session, row, lease))
        else:
            self._guard(row.id, functools.partial(self._open, session, row, lease))

    def _claim(self, session: Session, row: StudyRow) -> Lease | None:
        lease = leases.claim(session, row, self.owner, self._settings.lease_s)
        if lease is not None:
            self._dispose(row.id)  # an earlier try's (its open failed: it is tried again)
            self._leases[row.id] = lease
            self._storages[row.id] = fenced_storage(self._storage, lease)
            if row.owner is not None and row.owner != self.owner:
                log.info("study %s taken over from scheduler %s", row.id, row.owner)
        return lease

    def _abandon(self, session: Session, row: StudyRow, lease: Lease) -> None:
        # Stopped while no scheduler ran it: trials a restart would have resumed.
        storage = self._storages[row.id]
        study = optuna.load_study(study_name=row.optuna_study_name, storage=storage)
        abandon(study, "stopped by user")
        crud.mark_finished(session, row.id, StudyStatus.STOPPED, "stopped by user", lease)
        self._release(row.id)

    def _open(self, session: Session, row: StudyRow, lease: Lease) -> None:
        spec = crud.study_spec(row)
        reason = unplaceable(spec.resources.cpu, spec.resources.gpu)
        if reason is not None and self._settings.ray_address:
            # A cluster's nodes come and go (workers still starting, autoscaling): wait.
            crud.mark_waiting(session, row.id, f"waiting for a Ray node: {reason}", lease)
            self._release(row.id)
            return
        if reason is not None:  # the local Ray has what it has: no trial could ever start
            crud.mark_finished(session, row.id, StudyStatus.FAILED, reason, lease)
            self._release(row.id)
            return
        started = row.started_at or utcnow()
        env = Env(
            data_dir=self._settings.paths,
            load_data=self._load_data,
            started_at=_timestamp(started),
            checkpoint_every=self._settings.checkpoint_every,
            trial_retries=self._settings.trial_retries,
        )
        study = StudyRef(self._storages[row.id], row.optuna_study_name, row.id)
        run = study_algorithm(spec.algorithm.name).open(spec, study, env)
        crud.mark_running(session, row.id, started, lease)
        self._runs[row.id] = run
        self._specs[row.id] = row.spec
        self._study_specs[row.id], self._tenants[row.id] = spec, row.tenant
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
        return from_arrays(info.name, x, y, info.task, ref.val_fraction, ref.split_seed, info.kind)

    def _reap(self) -> None:
        for study_id, run in list(self._runs.items()):
            if run.outcome is not None:
                self._guard(study_id, functools.partial(self._finish, study_id, run))

    def _finish(self, study_id: int, run: Run) -> None:
        outcome = run.outcome
        assert outcome is not None
        with self._sessions() as s:  # recorded first: a failed write is tried again
            crud.mark_finished(s, study_id, outcome.status, outcome.reason, self._leases[study_id])
        self._runs.pop(study_id)
        run.close()
        self._release(study_id)
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
        try:  # the next replica need not wait for the leases to expire
            for study_id in list(self._leases):
                self._release(study_id)
            with self._sessions() as s:
                leases.leave(s, self.owner)
        except Exception:
            log.exception(
                "cannot release the leases: they expire in %.0f s", self._settings.lease_s
            )


def _timestamp(dt: datetime) -> float:
    # SQLite hands back naive datetimes; the service writes only UTC.
    return (dt if dt.tzinfo else dt.replace(tzinfo=UTC)).timestamp()
