"""A population study as a :class:`~search.algorithm.Run`: one Ray Tune driver in a thread.

Sampler studies are stepped by the scheduler's thread; a population blocks in
:func:`search.pbt.driver.run_pbt` until it is trained, so it gets a thread of its own, started
by the first :meth:`PopulationRun.advance`. Several populations run at once, each with a
trainable of its own in Ray Tune's process-wide registries (:func:`search.pbt.driver.run_pbt`).
"""

import logging
import threading
from typing import Any, ClassVar

import optuna

from search.algorithm import Env, Outcome, Run, StudyRef
from search.optuna_artifacts import artifact_store
from search.pbt.driver import run_pbt
from search.pbt.settings import PB2Settings
from search.spec import StudySpec, StudyStatus, TrainTask

log = logging.getLogger(__name__)


class PopulationRun(Run):
    """One population study in flight (see the module docstring)."""

    label: ClassVar[str] = "population"

    def __init__(self, spec: StudySpec, study: StudyRef, env: Env, settings: PB2Settings) -> None:
        self.spec = spec
        self._ref = study
        self._env = env
        self._settings = settings
        self._stop = threading.Event()
        self._suspend = threading.Event()
        self._stop_reason: str | None = None
        self._outcome: Outcome | None = None
        self._thread: threading.Thread | None = None

    @property
    def outcome(self) -> Outcome | None:  # type: ignore[override]
        return self._outcome

    def advance(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(
                target=self._run, name=f"tuneforge-population-{self.spec.name}", daemon=True
            )
            self._thread.start()

    def _run(self) -> None:
        try:
            task = self.spec.task
            assert isinstance(task, TrainTask)
            study = optuna.load_study(study_name=self._ref.name, storage=self._ref.storage)
            data_dir = self._env.data_dir
            result = run_pbt(
                self.spec,
                study,
                self._env.load_data(task.dataset),
                data_dir.population(self._ref.name),
                self._settings,
                self._stop,
                artifact_dir=data_dir.artifacts(self._ref.name),
                artifact_store=artifact_store(data_dir),
                started_at=self._env.started_at,
                suspend=self._suspend,
            )
            outcome = Outcome(result.status, result.reason)
        except Exception as exc:
            log.exception("population study %s failed", self.spec.name)
            outcome = Outcome(StudyStatus.FAILED, f"internal error: {exc}"[:1000])
        if outcome.status == StudyStatus.STOPPED and self._stop_reason is not None:
            outcome = Outcome(StudyStatus.STOPPED, self._stop_reason)
        self._outcome = outcome

    def update(self, spec: StudySpec) -> None:
        """Nothing to change: the population is the budget (its size and epochs)."""

    def stop(self, reason: str) -> None:
        """End the population soon: open segments are told with their last value."""
        if not self._stop.is_set():
            self._stop_reason = reason
            self._stop.set()
        if self._thread is None:  # never started: nothing to wait for
            self._outcome = Outcome(StudyStatus.STOPPED, reason)

    def drain(self) -> None:
        """A population cannot finish its members early: it stops at once."""
        self.stop("stopped by user")

    def suspend(self) -> None:
        """The service shuts down: leave the members unfinished and their segments running;
        the next start restores the population from its checkpoints (Ray Tune's restore)."""
        self._suspend.set()

    def close(self, timeout: float = 20) -> None:
        if self._thread is not None:
            self._thread.join(timeout)

    def join(self, timeout: float) -> Any:
        """Wait for the driver's thread (tests)."""
        if self._thread is not None:
            self._thread.join(timeout)
