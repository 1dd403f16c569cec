"""Request and response types of the REST API (pydantic), and their converters.

A study spec is JSON data: every field is checked here, with errors that name the field's path.
Checks that need more than one field (a search-space parameter against the task field it sets,
an algorithm's settings against its registry entry) live in :meth:`StudyCreate.cross_errors`.
"""

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from models.data import list_datasets
from models.layers import list_activations
from models.train import list_optimizers
from search.registry import SettingError, get_algorithm
from search.spec import (
    AlgorithmSpec,
    Budget,
    Objective,
    ParamSpec,
    Resources,
    StudySpec,
    TaskSpec,
)

METRICS = ("val_accuracy", "val_loss", "train_loss")
_MAX_PARAMS = 64
_MAX_CHOICES = 1024

Scalar = str | bool | int | float | None


def _one_of(value: str, valid: list[str] | tuple[str, ...], what: str) -> str:
    if value not in valid:
        raise ValueError(f"unknown {what} {value!r}; valid: {', '.join(valid)}")
    return value


class _Strict(BaseModel):
    # A typo in a field name is an error, not a silently ignored key; no float in a spec may
    # be infinite or NaN (an infinite bound would only fail later, inside the sampler).
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)


# -- search space ----------------------------------------------------------------------------


class FloatParam(_Strict):
    type: Literal["float"]
    low: float
    high: float
    log: bool = False
    step: float | None = Field(None, gt=0)

    @model_validator(mode="after")
    def _check(self) -> "FloatParam":
        _check_range(self.low, self.high, self.log, self.step)
        return self


class IntParam(_Strict):
    type: Literal["int"]
    low: int
    high: int
    log: bool = False
    step: int = Field(1, gt=0)

    @model_validator(mode="after")
    def _check(self) -> "IntParam":
        _check_range(self.low, self.high, self.log, self.step if self.step != 1 else None)
        return self


class CategoricalParam(_Strict):
    type: Literal["categorical"]
    choices: list[Scalar] = Field(min_length=1, max_length=_MAX_CHOICES)

    @field_validator("choices")
    @classmethod
    def _unique(cls, choices: list[Scalar]) -> list[Scalar]:
        seen = [repr(c) for c in choices]
        if len(set(seen)) != len(seen):
            raise ValueError("choices must be distinct")
        return choices


def _check_range(low: float, high: float, log: bool, step: float | None) -> None:
    if low > high:
        raise ValueError(f"low ({low}) must not be greater than high ({high})")
    if log and low <= 0:
        raise ValueError(f"a log-scaled range needs low > 0, got low={low}")
    if log and step is not None:
        raise ValueError("log and step cannot be combined")


Param = Annotated[FloatParam | IntParam | CategoricalParam, Field(discriminator="type")]

# -- the task: dataset, model, training -------------------------------------------------------


class DatasetIn(_Strict):
    name: str = Field(description=f"A bundled dataset: {', '.join(list_datasets())}.")
    val_fraction: float = Field(0.2, gt=0, lt=0.9, description="Held-out validation share.")
    split_seed: int = Field(0, ge=0, description="Seed of the fixed validation split.")

    @field_validator("name")
    @classmethod
    def _known(cls, v: str) -> str:
        return _one_of(v, list_datasets(), "dataset")


class MLPIn(_Strict):
    family: Literal["mlp"] = "mlp"
    hidden_layers: int = Field(2, ge=1, le=32)
    width: int = Field(128, ge=1, le=8192)
    activation: str = "relu"
    dropout: float = Field(0.0, ge=0, lt=1)

    @field_validator("activation")
    @classmethod
    def _known(cls, v: str) -> str:
        return _one_of(v, list_activations(), "activation")


class TrainingIn(_Strict):
    epochs: int = Field(10, ge=1, le=10_000)
    batch_size: int = Field(64, ge=1, le=1 << 20)
    optimizer: str = "adam"
    lr: float = Field(1e-3, gt=0, le=1e12)
    weight_decay: float = Field(0.0, ge=0)
    momentum: float = Field(0.0, ge=0, lt=1)

    @field_validator("optimizer")
    @classmethod
    def _known(cls, v: str) -> str:
        return _one_of(v, list_optimizers(), "optimizer")


class TaskIn(_Strict):
    dataset: DatasetIn
    model: MLPIn = MLPIn()
    training: TrainingIn = TrainingIn()


# Sections of the task a search-space parameter may set, by dotted name ("training.lr").
_SEARCHABLE: dict[str, type[_Strict]] = {"model": MLPIn, "training": TrainingIn}


def searchable_names() -> list[str]:
    """Every dotted parameter name a search space accepts."""
    return [
        f"{section}.{name}"
        for section, schema in _SEARCHABLE.items()
        for name in schema.model_fields
        if name != "family"
    ]


# -- the study --------------------------------------------------------------------------------


class ObjectiveIn(_Strict):
    metric: str = "val_accuracy"
    direction: Literal["maximize", "minimize"] = "maximize"

    @field_validator("metric")
    @classmethod
    def _known(cls, v: str) -> str:
        return _one_of(v, METRICS, "metric")


class AlgorithmIn(_Strict):
    name: str = "tpe"
    settings: dict[str, Any] = Field(default_factory=dict)

    @field_validator("name")
    @classmethod
    def _known(cls, v: str) -> str:
        get_algorithm(v)  # raises ValueError listing the valid names
        return v


class BudgetIn(_Strict):
    max_trials: int = Field(20, gt=0, le=100_000, description="Trials started, any outcome.")
    max_failed_trials: int | None = Field(None, gt=0, description="Failures that end a study.")
    timeout_s: float | None = Field(None, gt=0, description="No new trial after this long.")


class ResourcesIn(_Strict):
    cpu: float = Field(1.0, gt=0, le=1024)
    gpu: float = Field(0.0, ge=0, le=64)

    @field_validator("gpu")
    @classmethod
    def _whole_above_one(cls, v: float) -> float:
        if v > 1 and v != int(v):
            raise ValueError("more than one GPU must be a whole number")
        return v


class StudyCreate(_Strict):
    """A study as submitted (``POST /api/v1/studies``)."""

    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,127}$")
    objective: ObjectiveIn = ObjectiveIn()
    algorithm: AlgorithmIn = AlgorithmIn()
    search_space: dict[str, Param] = Field(default_factory=dict, max_length=_MAX_PARAMS)
    budget: BudgetIn = BudgetIn()
    parallelism: int = Field(1, ge=1, le=256)
    resources: ResourcesIn = ResourcesIn()
    task: TaskIn
    seed: int = Field(0, ge=0, description="Base seed; trial n trains with seed + n.")

    def cross_errors(self) -> list[tuple[tuple[str | int, ...], str]]:
        """Errors that involve several fields, each with its location and message."""
        errors: list[tuple[tuple[str | int, ...], str]] = []
        try:
            get_algorithm(self.algorithm.name).check_settings(self.algorithm.settings)
        except SettingError as exc:
            errors.append((("algorithm", "settings", exc.setting), str(exc)))
        for name, param in self.search_space.items():
            errors += [(("search_space", name, *loc), msg) for loc, msg in self._param(name, param)]
        return errors

    def _param(self, name: str, param: Param) -> list[tuple[tuple[str | int, ...], str]]:
        if name not in searchable_names():
            return [
                ((), f"unknown parameter {name!r}; searchable: {', '.join(searchable_names())}")
            ]
        section, field = name.split(".", 1)
        schema = _SEARCHABLE[section]
        annotation = schema.model_fields[field].annotation
        if param.type != "categorical" and annotation is str:
            return [(("type",), f"{name} takes names; use type categorical")]
        if param.type == "float" and annotation is int:
            return [(("type",), f"{name} is an integer; use type int or categorical")]
        current = getattr(self.task, section).model_dump()
        candidates: list[tuple[tuple[str | int, ...], Any]] = (
            [(("choices", i), c) for i, c in enumerate(param.choices)]
            if isinstance(param, CategoricalParam)
            else [(("low",), param.low), (("high",), param.high)]
        )
        errors: list[tuple[tuple[str | int, ...], str]] = []
        for loc, value in candidates:
            try:
                # Strict: the value is used as given, so "64" must not pass for an int field.
                schema.model_validate({**current, field: value}, strict=True)
            except ValidationError as exc:
                msg = exc.errors()[0]["msg"].removeprefix("Value error, ")
                errors.append((loc, f"{value!r} is not a valid {name}: {msg}"))
        return errors

    def to_spec(self) -> StudySpec:
        """The domain form the search loop runs."""
        return StudySpec(
            name=self.name,
            objective=Objective(self.objective.metric, self.objective.direction),
            algorithm=AlgorithmSpec(self.algorithm.name, dict(self.algorithm.settings)),
            search_space=tuple(_param_spec(n, p) for n, p in self.search_space.items()),
            budget=Budget(**self.budget.model_dump()),
            parallelism=self.parallelism,
            resources=Resources(**self.resources.model_dump()),
            task=TaskSpec(
                dataset=self.task.dataset.model_dump(),
                model=self.task.model.model_dump(),
                training=self.task.training.model_dump(),
            ),
            seed=self.seed,
        )


def _param_spec(name: str, p: Param) -> ParamSpec:
    if isinstance(p, CategoricalParam):
        return ParamSpec(name, "categorical", choices=tuple(p.choices))
    step = p.step if isinstance(p, FloatParam) else float(p.step)
    return ParamSpec(name, p.type, low=p.low, high=p.high, log=p.log, step=step)


class BudgetPatch(_Strict):
    """Budget fields to change; the ones left out keep their value."""

    max_trials: int | None = Field(None, gt=0, le=100_000)
    max_failed_trials: int | None = Field(None, gt=0)
    timeout_s: float | None = Field(None, gt=0)

    @model_validator(mode="after")
    def _max_trials_set(self) -> "BudgetPatch":
        if "max_trials" in self.model_fields_set and self.max_trials is None:
            raise ValueError("max_trials cannot be null")
        return self


class StudyPatch(_Strict):
    """A change to a study: extend (or cut) its budget, change its parallelism."""

    budget: BudgetPatch | None = None
    parallelism: int | None = Field(None, ge=1, le=256)


# -- responses --------------------------------------------------------------------------------

TrialStateName = Literal["RUNNING", "COMPLETE", "PRUNED", "FAIL", "WAITING"]


class StudyPublic(BaseModel):
    id: int
    name: str
    status: str
    status_reason: str | None
    optuna_study_name: str
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    trial_counts: dict[str, int] = Field(description="Trials by state.")
    best_value: float | None
    spec: dict[str, Any]


class StudyPage(BaseModel):
    items: list[StudyPublic]
    total: int
    offset: int
    limit: int


class CurvePoint(BaseModel):
    epoch: int
    metrics: dict[str, float]


class TrialPublic(BaseModel):
    number: int
    state: TrialStateName
    params: dict[str, Any]
    value: float | None
    intermediate_values: dict[int, float] = Field(description="Objective per epoch.")
    fail_reason: str | None
    node_id: str | None
    user_attrs: dict[str, Any]
    datetime_start: datetime | None
    datetime_complete: datetime | None
    duration_s: float | None


class TrialDetail(TrialPublic):
    learning_curve: list[CurvePoint] = Field(description="Every metric per epoch.")


class TrialPage(BaseModel):
    items: list[TrialPublic]
    total: int
    offset: int
    limit: int


class SettingPublic(BaseModel):
    name: str
    type: str
    default: Any
    description: str


class AlgorithmPublic(BaseModel):
    name: str
    kind: str
    description: str
    settings: list[SettingPublic]


class CatalogPublic(BaseModel):
    datasets: list[str]
    model_families: dict[str, dict[str, Any]]
    activations: list[str]
    optimizers: list[str]
    metrics: list[str]
    searchable: list[str]


class ErrorItem(BaseModel):
    loc: list[str | int]
    path: str
    msg: str
    type: str
