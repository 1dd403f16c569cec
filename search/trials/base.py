"""A trial kind: the typed strategy behind each kind of trial the loop dispatches.

A kind checks a study's task at submission, builds each trial's :class:`Payload` (a frozen
dataclass sent to Ray; its :meth:`Payload.run` executes in the worker and yields
:mod:`search.trials.events`), and handles the events only it produces. The loop drives every
kind the same way; what differs is declared here (does the kind need the dataset, does the
sampler propose its parameters, can a trial cut short resume).
"""

from abc import ABC, abstractmethod
from collections.abc import Iterator, Mapping
from typing import Any, ClassVar, Protocol

import optuna

from models.data import Dataset, DatasetInfo
from search.algorithm import FieldError
from search.spec import StudySpec, Task
from search.trials.events import Event, Started


class Payload(ABC):
    """One trial's work, sent to a Ray worker: ``run`` yields its events there."""

    @abstractmethod
    def run(self, data: Dataset | None, seed: int, where: Started) -> Iterator[Event]:
        """The trial's events (``where``: the worker's :class:`Started`, already measured)."""


class TrialRecord(Protocol):
    """What the loop keeps of a trial in flight, as a kind may change it."""

    trial: optuna.Trial
    params: dict[str, Any]  # the trial's parameters (a one-shot search sets them)
    notes: dict[str, Any]  # the kind's own bookkeeping for this trial

    def set(self, **attrs: Any) -> None:
        """User attributes, written with the trial's next save."""


class TrialKind(ABC):
    """A kind of trial (see the module docstring)."""

    name: ClassVar[str]
    needs_data: ClassVar[bool] = True  # the trial reads the study's dataset
    suggests: ClassVar[bool] = True  # the sampler proposes the trial's parameters
    resumable: ClassVar[bool] = True  # a trial cut short resumes (from its checkpoint)

    @abstractmethod
    def check(self, spec: StudySpec, data: DatasetInfo | None) -> list[FieldError]:
        """Every reason ``spec``'s task cannot run as this kind (``data``: its dataset)."""

    def complete(self, task: Task) -> Task:
        """The task with every default spelled out, so a stored study keeps its meaning when
        a later release changes a default."""
        return task

    @abstractmethod
    def payload(
        self,
        spec: StudySpec,
        params: Mapping[str, Any],
        checkpoint_every: int,
        resume: bytes | None,
    ) -> Payload:
        """The work of one trial with ``params`` (resumed after the checkpoint ``resume``)."""

    def attrs(self, spec: StudySpec, params: Mapping[str, Any]) -> dict[str, Any]:
        """User attributes a trial gets when it starts (a NAS trial's ``genotype``)."""
        return {}

    def on_event(self, event: Event, record: TrialRecord, study: optuna.Study) -> None:
        """Handle an event only this kind produces."""
        raise TypeError(f"{self.name} trials yield no {type(event).__name__} events")
