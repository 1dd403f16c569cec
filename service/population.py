"""A PBT or PB2 study run by the scheduler: one Ray Tune driver in a thread of its own.

Sampler studies are stepped by the scheduler's loop (:mod:`search.loop`); a population study
instead blocks in :func:`search.pbt.run_pbt` until its population is trained, so it gets its
own thread. The scheduler polls :attr:`PopulationRun.outcome` like a loop's.
"""

import logging
import threading
from pathlib import Path

import optuna

from models.data import Dataset, load_dataset
from search.loop import Outcome
from search.pbt import run_pbt
from search.spec import StudySpec

log = logging.getLogger(__name__)


def population_dir(data_dir: Path, optuna_study_name: str) -> Path:
    """Where a population study keeps Ray Tune's experiment and the members' checkpoints."""
    return data_dir / "pbt" / optuna_study_name


class PopulationRun:
    """One population study in flight.

    Args:
        spec: the study (algorithm ``pbt`` or ``pb2``).
        study: its Optuna study.
        dataset: an uploaded dataset's split; None loads the spec's named dataset in the thread.
        storage_dir: Ray Tune's experiment directory (see :func:`population_dir`).
        artifact_dir: where each member's final model goes.
        started_at: the study's first start; its timeout counts from it.
    """

    def __init__(
        self,
        spec: StudySpec,
        study: optuna.Study,
        dataset: Dataset | None,
        storage_dir: Path,
        artifact_dir: Path,
        started_at: float,
    ) -> None:
        self.spec = spec
        self.outcome: Outcome | None = None
        self._study = study
        self._dataset = dataset
        self._storage_dir = storage_dir
        self._artifact_dir = artifact_dir
        self._started_at = started_at
        self._stop = threading.Event()
        self._suspend = threading.Event()
        self._stop_reason: str | None = None
        self._thread = threading.Thread(
            target=self._run, name=f"tuneforge-population-{spec.name}", daemon=True
        )
        self._thread.start()

    def _run(self) -> None:
        try:
            ds = self.spec.task.dataset
            data = self._dataset or load_dataset(
                ds["name"], ds["val_fraction"], ds["split_seed"], ds.get("options") or {}
            )
            result = run_pbt(
                self.spec,
                self._study,
                data,
                self._storage_dir,
                self.spec.algorithm.settings,
                self._stop,
                artifact_dir=self._artifact_dir,
                started_at=self._started_at,
                suspend=self._suspend,
            )
            outcome = Outcome(result.status, result.reason)
        except Exception as exc:
            log.exception("population study %s failed", self.spec.name)
            outcome = Outcome("failed", f"internal error: {exc}"[:1000])
        if outcome.status == "stopped" and self._stop_reason is not None:
            outcome = Outcome("stopped", self._stop_reason)
        self.outcome = outcome

    @property
    def stopping(self) -> bool:
        return self._stop.is_set()

    def stop(self, reason: str) -> None:
        """End the population soon: open segments are told with their last value."""
        if not self._stop.is_set():
            self._stop_reason = reason
            self._stop.set()

    def suspend(self) -> None:
        """The service shuts down: leave the members unfinished and their segments running;
        the next start restores the population from its checkpoints (Ray Tune's restore)."""
        self._suspend.set()

    def join(self, timeout: float) -> None:
        self._thread.join(timeout)
