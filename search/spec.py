"""Frozen domain types of a study, free of any web framework or ORM.

The service validates a request (``service.schemas.StudyCreate``) and converts it with
``to_spec()``; everything under ``search/`` works on these types only.
"""

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any, Literal

ParamKind = Literal["float", "int", "categorical"]
Direction = Literal["maximize", "minimize"]


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


@dataclass(frozen=True)
class AlgorithmSpec:
    name: str
    settings: Mapping[str, Any] = field(default_factory=dict)


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


TaskKind = Literal["train", "function"]


@dataclass(frozen=True)
class TaskSpec:
    """What one trial does: train a network (``kind`` train: the dataset, the model spec and
    the training settings) or evaluate a synthetic function (``kind`` function: its name and
    fixed ``options``; the searched parameters are its arguments)."""

    dataset: Mapping[str, Any] = field(default_factory=dict)
    model: Mapping[str, Any] = field(default_factory=dict)
    training: Mapping[str, Any] = field(default_factory=dict)
    kind: TaskKind = "train"
    function: str | None = None
    options: Mapping[str, Any] = field(default_factory=dict)

    def with_params(self, params: Mapping[str, Any]) -> "TaskSpec":
        """The task with each dotted parameter set to its sampled value.

        ``"training.lr"`` sets a field; ``"model.widths.1"`` sets one element of a list field.
        A function task's parameters are its arguments: they join its ``options``.
        """
        if self.kind == "function":
            return replace(self, options={**self.options, **params})
        sections: dict[str, dict[str, Any]] = {
            "dataset": dict(self.dataset),
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
        return replace(
            self,
            dataset=sections["dataset"],
            model=sections["model"],
            training=sections["training"],
        )


@dataclass(frozen=True)
class StudySpec:
    name: str
    objectives: tuple[Objective, ...]
    algorithm: AlgorithmSpec
    search_space: tuple[ParamSpec, ...]
    budget: Budget
    parallelism: int
    resources: Resources
    task: TaskSpec
    seed: int = 0
    pruner: AlgorithmSpec | None = None

    @property
    def objective(self) -> Objective:
        """The first (for a single-objective study: the) objective."""
        return self.objectives[0]
