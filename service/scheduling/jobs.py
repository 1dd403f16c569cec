"""The scheduler's side of jobs (:mod:`service.store.jobs`): claim pending ones, run each as a
Ray task, write what it returns.

The scheduler's thread calls :meth:`JobRunner.step` every pass: finished Ray tasks are
recorded at once; new jobs are claimed when the scheduler rereads the database. A job that
cannot even start (its study is gone, its dataset cannot load) fails alone with its reason.
"""

import json
import logging
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import optuna
import ray
from optuna.storages import RDBStorage
from optuna.trial import TrialState
from sqlalchemy.orm import Session, sessionmaker

from models.data import Dataset
from search.attrs import trial_attr
from search.datadir import DataDir
from search.document import from_document
from search.jobs.ensembles import EnsembleJob, Member, run_ensemble
from search.jobs.preflight import PreflightJob, run_preflight, sample_points
from search.loop.outcomes import failure_reason
from search.spec import DatasetRef
from service.store import crud, jobs
from service.store.orm import JobRow

log = logging.getLogger(__name__)

MAX_IN_FLIGHT = 4  # jobs one replica runs at once
LEASE_S = 30.0  # a job whose scheduler stopped renewing is taken again after this
TIMEOUT_S = 900.0  # a job that runs longer is cancelled and fails with the reason


@dataclass
class _Running:
    job_id: int
    kind: str
    ref: Any  # the Ray task's ObjectRef
    where: tuple[str, int] | None = None  # an ensemble's study name and job id, to write
    started: float = field(default_factory=time.monotonic)


class JobRunner:
    """Runs this scheduler replica's jobs (see the module docstring)."""

    def __init__(
        self,
        sessions: sessionmaker[Session],
        storage: RDBStorage,
        paths: DataDir,
        owner: str,
        load_data: Callable[[DatasetRef], Dataset],
    ) -> None:
        self._sessions, self._storage, self._paths = sessions, storage, paths
        self._owner, self._load_data = owner, load_data
        self._running: dict[int, _Running] = {}
        self._renewed = 0.0

    def step(self, poll: bool) -> None:
        """Record finished jobs; with ``poll``, claim new ones (up to :data:`MAX_IN_FLIGHT`)."""
        self._collect()
        if poll and len(self._running) < MAX_IN_FLIGHT:
            with self._sessions() as session:
                for row in jobs.claimable(session, MAX_IN_FLIGHT - len(self._running)):
                    if row.id not in self._running and jobs.claim(
                        session, row, self._owner, LEASE_S
                    ):
                        self._start(session, row)
        if self._running and time.monotonic() - self._renewed > LEASE_S / 3:
            with self._sessions() as session:
                jobs.renew(session, list(self._running), self._owner, LEASE_S)
            self._renewed = time.monotonic()

    def shutdown(self) -> None:
        """Cancel the jobs in flight and give them back: the next scheduler runs them."""
        for running in self._running.values():
            ray.cancel(running.ref, force=True)
        try:
            with self._sessions() as session:
                jobs.release(session, list(self._running), self._owner)
        except Exception:
            log.exception("cannot give the jobs back: they are taken again in %.0f s", LEASE_S)
        self._running.clear()

    def _start(self, session: Session, row: JobRow) -> None:
        try:
            if row.attempts + 1 > jobs.MAX_ATTEMPTS:  # ``row`` as read before the claim
                raise RuntimeError(
                    f"gave up after {jobs.MAX_ATTEMPTS} attempts: its scheduler stopped each time"
                )
            start = getattr(_Starters(self, session), row.kind, None)
            if start is None:
                raise ValueError(f"unknown kind of job {row.kind!r}")
            self._running[row.id] = start(row)
            log.info("job %s (%s) started", row.id, row.kind)
        except Exception as exc:
            log.warning("job %s (%s) cannot start: %s", row.id, row.kind, exc)
            jobs.finish(session, row.id, self._owner, error=str(exc) or repr(exc))

    def _collect(self) -> None:
        if not self._running:
            return
        refs = {r.ref: r for r in self._running.values()}
        ready, _ = ray.wait(list(refs), num_returns=len(refs), timeout=0)
        for running in list(self._running.values()):
            if running.ref not in ready and time.monotonic() - running.started > TIMEOUT_S:
                ray.cancel(running.ref, force=True)
                del self._running[running.job_id]
                with self._sessions() as session:
                    jobs.finish(
                        session,
                        running.job_id,
                        self._owner,
                        error=f"timed out after {TIMEOUT_S:g} s",
                    )
        for ref in ready:
            running = refs[ref]
            del self._running[running.job_id]
            result: dict[str, Any] | None = None
            error: str | None = None
            try:
                value = ray.get(ref)
                result = self._record(running, value)
            except Exception as exc:
                error = failure_reason(exc) if _is_ray(exc) else f"{exc}"
                log.warning("job %s failed: %s\n%s", running.job_id, error, traceback.format_exc())
            with self._sessions() as session:
                jobs.finish(session, running.job_id, self._owner, result, error)
            log.info("job %s (%s) %s", running.job_id, running.kind, "failed" if error else "done")

    def _record(self, running: _Running, value: Any) -> dict[str, Any]:
        if running.where is None:
            return dict(value)
        result, blobs = value
        study, job_id = running.where
        with self._sessions() as session:
            if session.get(JobRow, job_id) is None:  # its study was deleted meanwhile
                return {}
        folder = self._paths.ensemble(study, job_id)
        folder.mkdir(parents=True, exist_ok=True)
        torchscript, weights = blobs
        (folder / "model.ts").write_bytes(torchscript)
        (folder / "weights.pt").write_bytes(weights)
        (folder / "spec.json").write_text(json.dumps(result["spec"], indent=2, default=str))
        return {k: v for k, v in result.items() if k != "spec"}


def _is_ray(exc: Exception) -> bool:
    return isinstance(exc, ray.exceptions.RayError)


class _Starters:
    """How each kind of job starts: one method per kind, named as ``JobRow.kind``."""

    def __init__(self, runner: JobRunner, session: Session) -> None:
        self.runner, self.session = runner, session

    def preflight(self, row: JobRow) -> _Running:
        spec = from_document(row.request["spec"])
        assert spec.task.dataset is not None
        data = self.runner._load_data(spec.task.dataset)
        seed = int(row.request.get("seed", spec.seed))
        points = sample_points(spec, int(row.request.get("points", 3)), seed)
        job = PreflightJob(spec, tuple(points), seed)
        cpu, gpu = spec.resources.cpu, spec.resources.gpu
        task = ray.remote(run_preflight).options(num_cpus=cpu, num_gpus=gpu, max_retries=1)
        return _Running(row.id, row.kind, task.remote(job, data, cpu, gpu))

    def ensemble(self, row: JobRow) -> _Running:
        assert row.study_id is not None
        study = crud.get_study(self.session, row.study_id)
        spec = crud.study_spec(study)
        assert spec.task.dataset is not None
        top_k, method = int(row.request["top_k"]), row.request["method"]
        members = _members(self.runner._storage, study.optuna_study_name, spec.directions[0], top_k)
        if len(members) < 2:
            raise ValueError(
                f"study {row.study_id} has {len(members)} completed trial(s) with saved "
                "weights: an ensemble needs at least 2"
            )
        data = self.runner._load_data(spec.task.dataset)
        job = EnsembleJob(tuple(members), method)
        cpu, gpu = spec.resources.cpu, spec.resources.gpu
        task = ray.remote(run_ensemble).options(num_cpus=cpu, num_gpus=gpu, max_retries=1)
        facts = {"study": row.study_id, "objective": spec.objective.metric, "top_k": top_k}
        ref = task.remote(job, data, cpu, gpu, facts)
        return _Running(row.id, row.kind, ref, (study.optuna_study_name, row.id))


def _members(storage: RDBStorage, study: str, direction: str, top_k: int) -> list[Member]:
    """The study's ``top_k`` best completed trials that saved their model, best first."""
    trials = crud.load_trials(storage, study, states=(TrialState.COMPLETE,))
    sign = -1.0 if direction == "maximize" else 1.0
    ranked = sorted(
        (t for t in trials if t.value is not None), key=lambda t: sign * float(t.value or 0.0)
    )
    members = []
    for trial in ranked:
        member = _member(trial)
        if member is not None:
            members.append(member)
        if len(members) == top_k:
            break
    return members


def _member(trial: optuna.trial.FrozenTrial) -> Member | None:
    uri = trial_attr(trial, "artifact_uri")
    if not isinstance(uri, str):
        return None
    folder = Path(uri)
    try:
        spec = json.loads((folder / "spec.json").read_text())
        weights = (folder / "weights.pt").read_bytes()
    except (OSError, ValueError):
        return None
    assert trial.value is not None
    return Member(trial.number, float(trial.value), spec["model"], spec["training"], weights)
