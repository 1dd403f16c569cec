"""A study as submitted, and a change to one (the bodies of ``POST`` and ``PATCH
/api/v1/studies``). Every field is checked here, with errors that name the field's path;
checks that need the catalog, the data or the algorithm live in :mod:`search.checks`, called by
:mod:`service.api.validation`.
"""

from typing import Annotated, Any, Literal

from pydantic import Field, WithJsonSchema, field_validator, model_validator

from search.constraints import MAX_CONSTRAINTS
from search.registry import check_name
from search.spec import DEFAULT_ALGORITHM, MAX_SEED, MAX_TRIALS, MAX_VALUE
from search.trials import TASK_SHAPES
from service.api.schemas.architecture import Architecture
from service.api.schemas.base import MAX_INT, Scalar, Strict, json_limit_error
from service.api.schemas.search_space import CategoricalParam, Param
from service.api.schemas.task import TaskIn, metric_name

MAX_PARAMS = 64


class ObjectiveIn(Strict):
    metric: str = "val_accuracy"
    direction: Literal["maximize", "minimize"] = "maximize"

    @field_validator("metric")
    @classmethod
    def _named(cls, v: str) -> str:
        return metric_name(v)  # measured by the study's task: its trial kind checks


class AlgorithmIn(Strict):
    name: str = DEFAULT_ALGORITHM
    settings: dict[str, Any] = Field(default_factory=dict)

    @field_validator("name")
    @classmethod
    def _known(cls, v: str) -> str:
        return check_name(v)  # raises ValueError listing the valid names


class BudgetIn(Strict):
    max_trials: int = Field(20, gt=0, le=MAX_TRIALS, description="Trials started, any outcome.")
    max_failed_trials: int | None = Field(None, gt=0, description="Failures that end a study.")
    timeout_s: float | None = Field(None, gt=0, description="No new trial after this long.")
    target_value: float | None = Field(
        None, description="End the study when a trial reaches it (single objective)."
    )


class PrunerIn(Strict):
    """Early stopping of unpromising trials (``GET /api/v1/algorithms``, kind pruner)."""

    name: str
    settings: dict[str, Any] = Field(default_factory=dict)

    @field_validator("name")
    @classmethod
    def _known(cls, v: str) -> str:
        return check_name(v, "pruner")  # raises ValueError listing the valid names


class WarmStartIn(Strict):
    """Points to evaluate first, and finished trials of another study to learn from."""

    points: list[dict[str, Scalar]] = Field(default_factory=list, max_length=1000)
    from_study: int | None = Field(
        None, ge=1, le=MAX_INT, description="A study id with a compatible space."
    )


class ConstraintIn(Strict):
    """A trial is feasible when ``metric`` is at most ``le`` (or at least ``ge``)."""

    metric: str
    le: float | None = Field(None, ge=-MAX_VALUE, le=MAX_VALUE, description="Upper bound.")
    ge: float | None = Field(None, ge=-MAX_VALUE, le=MAX_VALUE, description="Lower bound.")

    @field_validator("metric")
    @classmethod
    def _named(cls, v: str) -> str:
        return metric_name(v)  # measured by the study's task: its trial kind checks

    @model_validator(mode="after")
    def _one_bound(self) -> "ConstraintIn":
        if (self.le is None) == (self.ge is None):
            raise ValueError("give exactly one of le or ge")
        return self


class ResourcesIn(Strict):
    cpu: float = Field(1.0, gt=0, le=1024)
    gpu: float = Field(0.0, ge=0, le=64)

    @field_validator("gpu")
    @classmethod
    def _whole_above_one(cls, v: float) -> float:
        if v > 1 and v != int(v):
            raise ValueError("more than one GPU must be a whole number")
        return v


class StudyCreate(Strict):
    """A study as submitted (``POST /api/v1/studies``)."""

    @model_validator(mode="before")
    @classmethod
    def _size_limits(cls, data: Any) -> Any:
        error = json_limit_error(data)
        if error:
            raise ValueError(error)
        return data

    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,127}$")
    objective: ObjectiveIn | None = Field(None, description="One objective (default accuracy).")
    objectives: list[ObjectiveIn] | None = Field(
        None, min_length=1, max_length=4, description="Several objectives: a Pareto front."
    )
    algorithm: AlgorithmIn = AlgorithmIn()
    pruner: PrunerIn | None = Field(None, description="Early stopping (none by default).")
    constraints: list[ConstraintIn] = Field(
        default_factory=list,
        max_length=MAX_CONSTRAINTS,
        description="Outcome constraints: best and Pareto front among feasible trials only.",
    )
    warm_start: WarmStartIn = WarmStartIn()
    search_space: dict[str, Param] = Field(default_factory=dict, max_length=MAX_PARAMS)
    budget: BudgetIn = BudgetIn()
    parallelism: int = Field(1, ge=1, le=256)
    resources: ResourcesIn = ResourcesIn()
    task: TaskIn
    architecture: Architecture | None = Field(
        None, description="A NAS space (macro stages or a cell); expands into the search space."
    )
    seed: int = Field(
        0,
        ge=0,
        le=MAX_SEED,
        description="Sampler seed (unless its settings give one); trial n trains with seed + n.",
    )

    @model_validator(mode="after")
    def _expand_architecture(self) -> "StudyCreate":
        if self.architecture is None:
            return self
        if "model" not in TASK_SHAPES[self.task.kind].fields:
            return self  # a task without a network: refused by the checks, with its path
        fields, params = self.architecture.expand()
        # The task's default model (an MLP) gives way; a model the user wrote must agree.
        model = dict(self.task.model) if "model" in self.task.model_fields_set else {}
        for key, value in fields.items():
            if key in model and model[key] != value:
                raise ValueError(
                    f"task.model.{key} is set by the architecture section ({value!r}); "
                    f"leave it out (got {model[key]!r})"
                )
            model[key] = value
        space = dict(self.search_space)
        for name, raw in params.items():
            param = CategoricalParam.model_validate(raw)
            if name in space and space[name] != param:
                raise ValueError(f"search_space[{name!r}] is set by the architecture section")
            space[name] = param
        if len(space) > MAX_PARAMS:
            raise ValueError(
                f"the architecture and search_space add up to more than {MAX_PARAMS} parameters"
            )
        self.task.model = model
        self.search_space = space
        return self

    @model_validator(mode="after")
    def _one_objective_field(self) -> "StudyCreate":
        if self.objective is not None and self.objectives is not None:
            raise ValueError("give objective or objectives, not both")
        if self.task.kind == "external" and self.objective is None and not self.objectives:
            raise ValueError(
                "an external task needs objective (or objectives): which of task.metrics to "
                "optimize, and its direction"
            )
        metrics = [o.metric for o in self.objective_list()]
        if len(set(metrics)) != len(metrics):
            raise ValueError("objectives must name distinct metrics")
        return self

    def objective_list(self) -> list[ObjectiveIn]:
        """The objectives given, or the task's default: validation accuracy for a training,
        the value (minimized) for a function."""
        if self.objectives or self.objective:
            return self.objectives or [self.objective or ObjectiveIn()]
        metric, direction = TASK_SHAPES[self.task.kind].objective
        return [ObjectiveIn(metric=metric, direction=direction)]


class BudgetPatch(Strict):
    """Budget fields to change; the ones left out keep their value."""

    # Left out: unchanged; null is refused (a study needs a trial budget), so the document
    # shows an integer, not a nullable one.
    max_trials: Annotated[
        int | None,
        WithJsonSchema(
            {"type": "integer", "exclusiveMinimum": 0, "maximum": MAX_TRIALS, "title": "Max Trials"}
        ),
    ] = Field(None, gt=0, le=MAX_TRIALS)
    max_failed_trials: int | None = Field(None, gt=0)
    timeout_s: float | None = Field(None, gt=0)
    target_value: float | None = None

    @model_validator(mode="after")
    def _max_trials_set(self) -> "BudgetPatch":
        if "max_trials" in self.model_fields_set and self.max_trials is None:
            raise ValueError("max_trials cannot be null")
        return self


class StudyPatch(Strict):
    """A change to a study: extend (or cut) its budget, change its parallelism."""

    budget: BudgetPatch | None = None
    parallelism: int | None = Field(None, ge=1, le=256)


class TrialEnqueue(Strict):
    """A trial to run next in a study, with given parameters (an expert's suggestion)."""

    params: dict[str, Scalar] = Field(
        max_length=1000,
        description="Parameter values by name; any parameter left out is sampled.",
    )
    note: str | None = Field(
        None, max_length=200, description="Said in the trial's user attribute `enqueued`."
    )
