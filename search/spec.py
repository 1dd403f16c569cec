"""Frozen domain types of a study, free of any web framework or ORM.

The service validates a request (``service.schemas.StudyCreate``) and converts it with
``to_spec()``; everything under ``search/`` works on these types only.
"""

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

ParamKind = Literal["float", "int", "categorical"]
Direction = Literal["maximize", "minimize"]


@dataclass(frozen=True)
class ParamSpec:
    """One searched parameter, named by the dotted path of the task field it sets."""

    name: str
    kind: ParamKind
    low: float | None = None
    high: float | None = None
    log: bool = False
    step: float | None = None
    choices: tuple[Any, ...] = ()


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
    """When a study ends. ``max_trials`` counts every trial started, whatever its outcome."""

    max_trials: int
    max_failed_trials: int | None = None
    timeout_s: float | None = None


@dataclass(frozen=True)
class Resources:
    cpu: float = 1.0
    gpu: float = 0.0


@dataclass(frozen=True)
class TaskSpec:
    """What one trial trains: the dataset, the model spec and the training settings."""

    dataset: Mapping[str, Any]
    model: Mapping[str, Any]
    training: Mapping[str, Any]

    def with_params(self, params: Mapping[str, Any]) -> "TaskSpec":
        """The task with each dotted parameter set to its sampled value.

        ``"training.lr"`` sets a field; ``"model.widths.1"`` sets one element of a list field.
        """
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
        return TaskSpec(**sections)


@dataclass(frozen=True)
class StudySpec:
    name: str
    objective: Objective
    algorithm: AlgorithmSpec
    search_space: tuple[ParamSpec, ...]
    budget: Budget
    parallelism: int
    resources: Resources
    task: TaskSpec
    seed: int = 0
