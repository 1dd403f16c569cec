"""A study's task: what every trial does (train a network on a dataset, or evaluate a
function)."""

import re
from typing import Any, Literal

from pydantic import (
    Field,
    SerializerFunctionWrapHandler,
    field_validator,
    model_serializer,
    model_validator,
)

from models.data import list_datasets
from models.metrics import list_metrics
from search.functions import all_functions
from search.trials import DEFAULT_TASK_KIND, TASK_SHAPES
from service.api.schemas.base import MAX_INT, Strict, one_of

MAX_CLASSES = 10_000  # of a dataset's class subset
MAX_METRICS = 32  # an external task's metrics
_METRIC_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_.\-]{0,63}")


def metric_name(name: str) -> str:
    """A metric's name: a catalog metric, or one an external task's client reports (a letter
    or ``_``, then letters, digits, ``_``, ``.``, ``-``; at most 64). Whether the study's task
    measures it is its trial kind's check."""
    if name not in list_metrics() and not _METRIC_NAME.fullmatch(name):
        raise ValueError(
            f"{name[:80]!r} is no metric name: a letter or _, then letters, digits, _ . -"
            " (at most 64); the catalog's metrics: " + ", ".join(list_metrics())
        )
    return name


class DatasetIn(Strict):
    """A bundled or synthetic dataset by ``name``, or an uploaded one by ``upload_id``."""

    name: str | None = Field(None, description="A bundled or synthetic dataset (see /catalog).")
    upload_id: str | None = Field(None, description="The id of an uploaded dataset.")
    options: dict[str, Any] = Field(default_factory=dict, description="Generator options.")
    val_fraction: float = Field(0.2, gt=0, lt=0.9, description="Held-out validation share.")
    split_seed: int = Field(0, ge=0, description="Seed of the fixed validation split.")
    classes: list[int] | None = Field(
        None,
        min_length=2,
        max_length=MAX_CLASSES,
        description="Train on these classes only, relabelled 0..k-1 in this order "
        "(classification; named sets and uploads).",
    )

    @field_validator("name")
    @classmethod
    def _known(cls, v: str | None) -> str | None:
        return v if v is None else one_of(v, list_datasets(), "dataset")

    @model_validator(mode="after")
    def _one_source(self) -> "DatasetIn":
        if (self.name is None) == (self.upload_id is None):
            raise ValueError("give exactly one of name (bundled or synthetic) and upload_id")
        if self.upload_id is not None and self.options:
            raise ValueError("options apply to synthetic datasets, not to uploads")
        return self


class InitFromIn(Strict):
    """Start every trial from a finished trial's weights (see docs/transfer.md)."""

    study: int = Field(ge=1, le=MAX_INT, description="A finished study of yours.")
    trial: int | Literal["best"] = Field(
        "best", description="Its trial number, or best (a single-objective study's best)."
    )
    layers: Literal["all", "backbone"] = Field(
        "all", description="Load every layer, or the backbone only (the head starts fresh)."
    )
    freeze: list[str] = Field(
        default_factory=list,
        max_length=64,
        description="Parameter-name prefixes (e.g. net.0), or backbone / head, kept fixed.",
    )
    lr_mult: float = Field(
        1.0, gt=0, le=1000, description="Multiplies the backbone's learning rate."
    )

    @field_validator("trial")
    @classmethod
    def _trial_number(cls, v: int | str) -> int | str:
        if isinstance(v, int) and not 0 <= v <= MAX_INT:
            raise ValueError(f"a trial number is 0 to {MAX_INT}")
        return v


class TaskIn(Strict):
    """What every trial does. ``kind: train`` (the default) trains a network: ``model`` and
    ``training`` are checked against the catalog (``GET /api/v1/catalog``) and the dataset when
    the study is submitted. ``kind: function`` evaluates a synthetic function (``name``, see
    the catalog's ``functions``) at the searched parameters, with ``options`` fixing the
    arguments not searched; its one metric is ``value``."""

    kind: str = Field(
        DEFAULT_TASK_KIND,
        description="The kind of task.",
        json_schema_extra={"enum": list(TASK_SHAPES)},
    )
    dataset: DatasetIn | None = Field(None, description="The data (train tasks).")
    model: dict[str, Any] = Field(
        default_factory=lambda: {"family": "mlp"}, description="{family, **fields} (train)."
    )
    training: dict[str, Any] = Field(default_factory=dict, description="Training fields (train).")
    init_from: InitFromIn | None = Field(
        None, description="Start from a finished trial's weights (train)."
    )
    fewshot: dict[str, Any] = Field(
        default_factory=dict, description="Episodes and method (fewshot; docs/fewshot.md)."
    )
    name: str | None = Field(None, description="The function (function tasks).")
    options: dict[str, float] = Field(
        default_factory=dict, description="Fixed arguments of the function (function tasks)."
    )
    metrics: list[str] | None = Field(
        None,
        min_length=1,
        max_length=MAX_METRICS,
        description="The metrics its clients report (external tasks; docs/external.md).",
    )
    lease_s: float = Field(
        60.0,
        ge=1,
        le=86_400,
        description="A trial out this long without a word from its client fails (external).",
    )

    @field_validator("metrics")
    @classmethod
    def _metric_names(cls, v: list[str] | None) -> list[str] | None:
        for name in v or []:
            metric_name(name)
        return v

    @field_validator("kind")
    @classmethod
    def _known_kind(cls, v: str) -> str:
        return one_of(v, list(TASK_SHAPES), "task kind")

    @field_validator("name")
    @classmethod
    def _known_function(cls, v: str | None) -> str | None:
        return v if v is None else one_of(v, list(all_functions()), "function")

    @model_validator(mode="after")
    def _fields_of_its_kind(self) -> "TaskIn":
        shape = TASK_SHAPES[self.kind]
        if getattr(self, shape.required) is None:
            raise ValueError(f"a {self.kind} task needs task.{shape.required}{shape.hint}")
        for other in TASK_SHAPES.values():
            foreign = [
                f for f in other.fields if f in self.model_fields_set and f not in shape.fields
            ]
            if other is not shape and foreign:
                names = tuple(foreign)
                listed = f"{', '.join(names[:-1])} and {names[-1]}" if len(names) > 1 else names[0]
                raise ValueError(f"{listed} belong to {other.label}")
        return self

    @model_serializer(mode="wrap")
    def _only_its_kind(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        data: dict[str, Any] = handler(self)
        own = TASK_SHAPES[self.kind].fields
        return {k: v for k, v in data.items() if k == "kind" or k in own}
