"""The algorithm seam: what every search algorithm provides, and what the scheduler drives.

An algorithm is registered by name (:mod:`search.registry`) and provides
``check(spec, data_info) -> list[FieldError]`` (why a study cannot use it, each problem at its
path in the study) and, for a study's algorithm, ``open(spec, study, env) -> Run``. A
:class:`Run` is the one interface the scheduler drives, whatever runs behind it (the sampler
loop, a population on Ray Tune, a one-shot search): ``resume`` once, ``advance`` every pass,
``wait_any`` on the Ray streams of every run, ``update`` / ``stop`` / ``drain`` on request,
``suspend`` at shutdown, ``close`` at the end; ``outcome`` says how it ended.

Kinds, for listing (``GET /api/v1/algorithms``): ``sampler`` (ask Optuna's sampler what to try
next), ``population`` (PBT, PB2), ``oneshot`` (DARTS) — the three a study's ``algorithm`` may
name — and ``pruner`` (early stopping, a study's ``pruner``).
"""

from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, Literal

from optuna.pruners import BasePruner
from optuna.storages import BaseStorage

from models.data import Dataset, DatasetInfo
from models.fields import build, check
from search.datadir import DataDir
from search.spec import DatasetRef, StudySpec, StudyStatus, TrainTask

AlgorithmKind = Literal["sampler", "pruner", "population", "oneshot"]
STUDY_KINDS: tuple[AlgorithmKind, ...] = ("sampler", "population", "oneshot")
Loc = tuple[str | int, ...]


@dataclass(frozen=True)
class FieldError:
    """A problem of a study at ``loc``, its path in the study document (``("algorithm",
    "settings", "seed")``, ``("search_space", "model.width", "low")``)."""

    loc: Loc
    msg: str


def at(loc: Loc, messages: Sequence[str]) -> list[FieldError]:
    """Each message as a :class:`FieldError` at ``loc``."""
    return [FieldError(loc, m) for m in messages]


def proposes_nothing(name: str, spec: StudySpec) -> list[FieldError]:
    """What a study whose algorithm asks no sampler for trials cannot combine with: a pruner
    (it does not stop trials early) or a warm start (it proposes no trials)."""
    errors: list[FieldError] = []
    if spec.pruner is not None:
        errors += at(("pruner",), [f"{name} does not stop trials early; drop the pruner"])
    if spec.warm_start.points or spec.warm_start.from_study is not None:
        errors += at(("warm_start",), [f"{name} proposes no trials to warm-start"])
    return errors


def trains_networks(name: str, spec: StudySpec) -> list[FieldError]:
    """A study of a function or external task cannot use an algorithm that trains networks."""
    if not isinstance(spec.task, TrainTask):
        kind = spec.task.kind
        article = "an" if kind[0] in "aeiou" else "a"
        return at(("algorithm", "name"), [f"{name} trains networks; {article} {kind} task cannot"])
    return []


@dataclass(frozen=True)
class Outcome:
    """How a study ended: ``completed`` (budget spent), ``failed`` or ``stopped``."""

    status: StudyStatus
    reason: str


@dataclass(frozen=True)
class StudyRef:
    """The Optuna study of a study: its storage and name, and the service's id for it."""

    storage: BaseStorage
    name: str
    study_id: int = 0


@dataclass(frozen=True)
class Env:
    """What a run may use of the process that opened it.

    Args:
        data_dir: where artifacts, checkpoints and population experiments go.
        load_data: loads a study's dataset (uploads through the service's store).
        started_at: the study's first start (epoch seconds): its timeout counts from it.
        checkpoint_every: epochs between a running trial's checkpoints (0: none).
        trial_retries: how often a trial cut short by a lost worker or a restart resumes.
    """

    data_dir: DataDir
    load_data: Callable[[DatasetRef], Dataset]
    started_at: float
    checkpoint_every: int = 5
    trial_retries: int = 3


# What the scheduler's metrics call each kind of run: the sampler loop (one-shot searches
# included) and the population run. Every Run declares one.
RUN_LABELS = ("loop", "population")


class Run(ABC):
    """One study in flight, driven by the scheduler's thread (see the module docstring)."""

    label: ClassVar[str]  # one of RUN_LABELS
    outcome: Outcome | None = None
    # The most trials the scheduler lets the run have in flight now (its share of a full
    # cluster, its tenant's quota); None: its parallelism. A run that dispatches trials one
    # by one honours it; a population trains its members together and counts as in flight.
    limit: int | None = None

    @property
    def n_in_flight(self) -> int:
        """Trials this run has dispatched and not yet told."""
        return 0

    def wanted(self) -> int:
        """How many more trials the run would start now if :attr:`limit` allowed."""
        return 0

    def resume(self) -> None:  # noqa: B027 (a run with nothing to take over)
        """Take over what an earlier owner of the study left: trials left RUNNING resume from
        their checkpoints, or fail with a reason. Called once, right after ``open``."""

    @abstractmethod
    def advance(self) -> None:
        """Start what the budget and parallelism allow; end the run when they are spent."""

    def waiting_on(self) -> list[Any]:
        """The Ray streams whose next event this run waits for (:func:`search.loop.wait_any`)."""
        return []

    def on_ready(self, ref: Any) -> None:
        """Handle the next event of one of :meth:`waiting_on`'s streams (it is ready)."""
        raise NotImplementedError(f"{type(self).__name__} waits on no Ray stream")

    @abstractmethod
    def update(self, spec: StudySpec) -> None:
        """Apply a changed budget or parallelism while the study runs."""

    @abstractmethod
    def stop(self, reason: str) -> None:
        """End the study now (``outcome`` stopped with ``reason``, soon if not at once)."""

    @abstractmethod
    def drain(self) -> None:
        """Start nothing more; end (stopped) when what is in flight has finished."""

    @abstractmethod
    def suspend(self) -> None:
        """The process shuts down: leave the trials in flight RUNNING, their checkpoints saved,
        for the next owner's :meth:`resume`."""

    def close(self) -> None:  # noqa: B027 (a run that holds nothing)
        """Release what the run holds (threads, Ray references); called last."""


class Algorithm(ABC):
    """A registered algorithm: its name, kind, description, settings and checks.

    ``settings`` is a dataclass of :func:`models.fields.setting` fields: its declaration is
    what ``GET /api/v1/algorithms`` lists and what :meth:`read_settings` checks.
    """

    name: str
    kind: AlgorithmKind
    description: str
    settings: type
    multi_objective: bool = True

    def read_settings(
        self, given: Mapping[str, Any], loc: Loc = ("algorithm", "settings")
    ) -> tuple[Any | None, list[FieldError]]:
        """The settings dataclass for ``given`` (defaults filled in), or the problems, each at
        ``loc + (setting,)``."""
        settings, errors = check(self.settings, given, "setting", f" for {self.name!r}", named=True)
        return settings, [FieldError((*loc, name), msg) for name, msg in errors]

    def stored_settings(self, given: Mapping[str, Any]) -> Any:
        """The settings dataclass of a stored study, read leniently (:func:`models.fields.build`):
        a study accepted once runs as it was accepted, whatever a later release tightened."""
        return build(self.settings, given)

    @abstractmethod
    def check(self, spec: StudySpec, data: DatasetInfo | None) -> list[FieldError]:
        """Every reason ``spec`` cannot use this algorithm (``data``: the study's dataset, None
        for a task without one or a dataset that could not be found)."""


class StudyAlgorithm(Algorithm):
    """An algorithm a study's ``algorithm`` names: it opens the study's run."""

    @abstractmethod
    def open(self, spec: StudySpec, study: StudyRef, env: Env) -> Run:
        """The run of ``spec`` on its Optuna study (nothing is started before ``advance``)."""


class PrunerAlgorithm(Algorithm):
    """An early-stopping rule a study's ``pruner`` names: an Optuna pruner."""

    kind: AlgorithmKind = "pruner"
    multi_objective: bool = False  # early stopping watches one objective

    @abstractmethod
    def create(self, settings: Any) -> BasePruner:
        """The pruner for checked settings (:meth:`read_settings`)."""
