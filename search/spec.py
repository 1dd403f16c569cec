"""Frozen domain types of a study, free of any web framework or ORM.

The API converts a request into a :class:`StudySpec` at its edge; the database stores it as a
versioned document (:mod:`search.document`); everything under ``search/`` works on these types
only. A study's task is one of the trial kinds' task types (:class:`TrainTask`,
:class:`FunctionTask`); :mod:`search.trials` knows what each one runs.
"""

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any, ClassVar, Literal

ParamKind = Literal["float", "int", "categorical"]
MAX_TRIALS = 100_000  # the largest budget a study may have
MAX_SEED = 2**32 - 1  # the largest seed: what NumPy's and Optuna's generators take
MAX_EPOCHS = 10_000  # the most epochs a trial trains (the training's own bound)
MAX_VALUE = 1e30  # the largest magnitude of a setting in a metric's units (a threshold, a delta)
Direction = Literal["maximize", "minimize"]


class StudyStatus(enum.StrEnum):
    """Where a study is in its life: pending → running → completed | failed | stopped."""

    PENDING = "pending"
    RUNNING = "running"
    COMPLETED = "completed"
    FAILED = "failed"
    STOPPED = "stopped"

    @property
    def active(self) -> bool:
        """Whether the scheduler (still) runs it."""
        return self in (StudyStatus.PENDING, StudyStatus.RUNNING)


ACTIVE = (StudyStatus.PENDING, StudyStatus.RUNNING)
FINISHED = (StudyStatus.COMPLETED, StudyStatus.FAILED, StudyStatus.STOPPED)


@dataclass(frozen=True)
class Condition:
    """When a parameter is active: another (earlier) parameter's value is in ``values`` or
    passes the bounds."""

    param: str
    values: tuple[Any, ...] | None = None
    gt: float | None = None
    ge: float | None = None
    lt: float | None = None
    le: float | None = None

    def holds(self, params: Mapping[str, Any]) -> bool:
        if self.param not in params:
            return False  # the parent itself is inactive
        v = params[self.param]
        if self.values is not None and v not in self.values:
            return False
        return (
            (self.gt is None or v > self.gt)
            and (self.ge is None or v >= self.ge)
            and (self.lt is None or v < self.lt)
            and (self.le is None or v <= self.le)
        )


@dataclass(frozen=True)
class ParamSpec:
    """One searched parameter, named by the dotted path of the task field it sets; active only
    when every condition in ``when`` holds."""

    name: str
    kind: ParamKind
    low: float | None = None
    high: float | None = None
    log: bool = False
    step: float | None = None
    choices: tuple[Any, ...] = ()
    when: tuple[Condition, ...] = ()

    def contains(self, value: Any) -> bool:
        """Whether ``value`` is one this parameter can take."""
        if self.kind == "categorical":
            return value in self.choices
        if isinstance(value, bool) or not isinstance(value, int | float):
            return False
        if self.kind == "int" and not isinstance(value, int):
            return False
        assert self.low is not None and self.high is not None
        return self.low <= value <= self.high


@dataclass(frozen=True)
class Objective:
    metric: str
    direction: Direction


DEFAULT_ALGORITHM = "tpe"  # what a study that names no algorithm runs


@dataclass(frozen=True)
class AlgorithmSpec:
    """A registered algorithm (sampler, population method, one-shot search or pruner) by name,
    with its settings as given."""

    name: str
    settings: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Constraint:
    """An outcome constraint: a trial is feasible when its ``metric`` is at most ``le`` (or at
    least ``ge``; exactly one of the two is set)."""

    metric: str
    le: float | None = None
    ge: float | None = None


@dataclass(frozen=True)
class Budget:
    """When a study ends. ``max_trials`` counts every trial started, whatever its outcome;
    ``target_value`` ends a single-objective study once a trial reaches it."""

    max_trials: int
    max_failed_trials: int | None = None
    timeout_s: float | None = None
    target_value: float | None = None


@dataclass(frozen=True)
class Resources:
    cpu: float = 1.0
    gpu: float = 0.0


@dataclass(frozen=True)
class WarmStart:
    """Points to evaluate first, and another study whose finished trials seed the sampler."""

    points: tuple[Mapping[str, Any], ...] = ()
    from_study: int | None = None


@dataclass(frozen=True)
class DatasetRef:
    """A bundled or synthetic dataset by ``name`` (with generator ``options``), or an uploaded
    one by ``upload_id``; split with a fixed seed."""

    name: str | None = None
    upload_id: str | None = None
    options: Mapping[str, Any] = field(default_factory=dict)
    val_fraction: float = 0.2
    split_seed: int = 0
    classes: tuple[int, ...] | None = None  # a class subset, relabelled 0..k-1 in this order


@dataclass(frozen=True)
class InitFrom:
    """Start a training from a finished trial's weights (:mod:`search.transfer`): ``trial``
    is its number or ``"best"``; ``layers`` all of them or the ``backbone`` (all but the head,
    which is re-created anyway when the class count differs); ``freeze`` parameter-name
    prefixes (or ``backbone`` / ``head``) kept fixed; ``lr_mult`` scales the backbone's
    learning rate. ``source`` is the trial's artifact folder, found at submission."""

    study: int
    trial: int | Literal["best"] = "best"
    layers: Literal["all", "backbone"] = "all"
    freeze: tuple[str, ...] = ()
    lr_mult: float = 1.0
    source: str | None = None


@dataclass(frozen=True)
class TrainTask:
    """Train a network: the dataset, the model (``{"family": ..., **fields}``) and the
    training fields. A search-space parameter ``model.width`` or ``training.lr`` sets one of
    them; ``model.widths.1`` sets one element of a list field."""

    dataset: DatasetRef
    model: Mapping[str, Any] = field(default_factory=lambda: {"family": "mlp"})
    training: Mapping[str, Any] = field(default_factory=dict)
    init_from: InitFrom | None = None
    kind: ClassVar[str] = "train"

    def with_params(self, params: Mapping[str, Any]) -> "TrainTask":
        """The task with each dotted parameter set to its sampled value."""
        sections: dict[str, dict[str, Any]] = {
            "model": dict(self.model),
            "training": dict(self.training),
        }
        for name, value in params.items():
            section, key, *index = name.split(".")
            if index:
                items = list(sections[section][key])
                items[int(index[0])] = value
                sections[section][key] = items
            else:
                sections[section][key] = value
        return replace(self, model=sections["model"], training=sections["training"])


@dataclass(frozen=True)
class FunctionTask:
    """Evaluate a synthetic function (:mod:`search.functions`): the searched parameters are its
    arguments, ``options`` fixes the others; its one metric is ``value``."""

    name: str
    options: Mapping[str, float] = field(default_factory=dict)
    kind: ClassVar[str] = "function"

    @property
    def dataset(self) -> None:
        """A function reads no data (so every task answers ``task.dataset``)."""
        return None

    def with_params(self, params: Mapping[str, Any]) -> "FunctionTask":
        """The task with the sampled arguments joining its fixed ones."""
        return replace(self, options={**self.options, **params})


@dataclass(frozen=True)
class FewShotTask(TrainTask):
    """Meta-learn an embedding on N-way K-shot episodes (:mod:`search.trials.fewshot`): the
    model is the embedding network, ``fewshot`` the method's fields (``fewshot.ways`` is
    searchable like ``model.width``). ``training`` and ``init_from`` are not used."""

    fewshot: Mapping[str, Any] = field(default_factory=dict)
    kind: ClassVar[str] = "fewshot"

    def with_params(self, params: Mapping[str, Any]) -> "FewShotTask":
        own = {k[len("fewshot.") :]: v for k, v in params.items() if k.startswith("fewshot.")}
        rest = {k: v for k, v in params.items() if not k.startswith("fewshot.")}
        task = TrainTask.with_params(self, rest)
        assert isinstance(task, FewShotTask)
        return replace(task, fewshot={**self.fewshot, **own})


@dataclass(frozen=True)
class ExternalTask:
    """Trials evaluated outside the cluster (:mod:`search.external`): a client asks for a
    trial's parameters, reports its ``metrics`` as it goes and tells the outcome; a trial out
    longer than ``lease_s`` without a word from its client fails."""

    metrics: tuple[str, ...]
    lease_s: float = 60.0
    kind: ClassVar[str] = "external"

    @property
    def dataset(self) -> None:
        """The service holds no data of an external task."""
        return None

    def with_params(self, params: Mapping[str, Any]) -> "ExternalTask":
        """The parameters go to the client, not into the task."""
        return self


Task = TrainTask | FunctionTask | ExternalTask


@dataclass(frozen=True)
class StudySpec:
    """A study: what to search, how, for how long, and what each trial does.

    ``architecture`` keeps a NAS section as the user wrote it (it has been expanded into the
    task's model and the search space already).
    """

    name: str
    objectives: tuple[Objective, ...]
    algorithm: AlgorithmSpec
    search_space: tuple[ParamSpec, ...]
    budget: Budget
    parallelism: int
    resources: Resources
    task: Task
    seed: int = 0
    pruner: AlgorithmSpec | None = None
    warm_start: WarmStart = WarmStart()
    architecture: Mapping[str, Any] | None = None
    constraints: tuple[Constraint, ...] = ()

    @property
    def objective(self) -> Objective:
        """The first (for a single-objective study: the) objective."""
        return self.objectives[0]

    @property
    def directions(self) -> list[Direction]:
        return [o.direction for o in self.objectives]

    def param(self, name: str) -> ParamSpec | None:
        """The searched parameter ``name`` (None: not searched)."""
        return next((p for p in self.search_space if p.name == name), None)
