"""Request and response types of the REST API (pydantic), and their converters.

A study spec is JSON data: every field is checked here, with errors that name the field's path.
Checks that need more than one field (a search-space parameter against the task field it sets,
an algorithm's settings against its registry entry) live in :meth:`StudyCreate.cross_errors`.
"""

from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    SerializerFunctionWrapHandler,
    WithJsonSchema,
    field_validator,
    model_serializer,
    model_validator,
)

from models.data import list_datasets
from models.metrics import list_metrics
from search.functions import FUNCTIONS
from search.registry import STUDY_KINDS, get_algorithm
from search.spec import (
    AlgorithmSpec,
    Budget,
    Condition,
    Objective,
    ParamSpec,
    Resources,
    StudySpec,
    TaskSpec,
)
from service.architecture import Architecture

_MAX_PARAMS = 64
_MAX_CHOICES = 1024
MAX_DEPTH = 8  # of nested objects and lists in a spec
MAX_STRING = 1000  # characters of any string in a spec (keys included)

Scalar = str | bool | int | float | None


def _one_of(value: str, valid: list[str] | tuple[str, ...], what: str) -> str:
    if value not in valid:
        raise ValueError(f"unknown {what} {value!r}; valid: {', '.join(valid)}")
    return value


class _Strict(BaseModel):
    # A typo in a field name is an error, not a silently ignored key; no float in a spec may
    # be infinite or NaN (an infinite bound would only fail later, inside the sampler). Types
    # are the document's: false is no number, 0 and "true" are no booleans, "5" is no integer
    # (strict; an integer still fits a number field).
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False, strict=True)


# -- search space ----------------------------------------------------------------------------


class ConditionIn(_Strict):
    """A parameter is active only when an earlier parameter's value is ``in`` a list and/or
    within bounds; e.g. ``{"param": "training.optimizer", "in": ["sgd"]}`` or
    ``{"param": "model.hidden_layers", "gt": 1}``."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False, populate_by_name=True)

    param: str
    in_: list[Scalar] | None = Field(None, alias="in", min_length=1)
    gt: float | None = None
    ge: float | None = None
    lt: float | None = None
    le: float | None = None

    @model_validator(mode="after")
    def _something(self) -> "ConditionIn":
        if self.in_ is None and all(b is None for b in (self.gt, self.ge, self.lt, self.le)):
            raise ValueError("a condition needs `in` or a bound (gt, ge, lt, le)")
        return self

    def to_domain(self) -> Condition:
        values = None if self.in_ is None else tuple(self.in_)
        return Condition(self.param, values, self.gt, self.ge, self.lt, self.le)


class _ParamBase(_Strict):
    when: list[ConditionIn] = Field(
        default_factory=list, max_length=8, description="Active only when all of these hold."
    )


class FloatParam(_ParamBase):
    type: Literal["float"]
    low: float
    high: float
    log: bool = False
    step: float | None = Field(None, gt=0)

    @model_validator(mode="after")
    def _check(self) -> "FloatParam":
        _check_range(self.low, self.high, self.log, self.step)
        return self


class IntParam(_ParamBase):
    type: Literal["int"]
    low: int
    high: int
    log: bool = False
    step: int = Field(1, gt=0)

    @model_validator(mode="after")
    def _check(self) -> "IntParam":
        _check_range(self.low, self.high, self.log, self.step if self.step != 1 else None)
        return self


class CategoricalParam(_ParamBase):
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
    """A bundled or synthetic dataset by ``name``, or an uploaded one by ``upload_id``."""

    name: str | None = Field(None, description="A bundled or synthetic dataset (see /catalog).")
    upload_id: str | None = Field(None, description="The id of an uploaded dataset.")
    options: dict[str, Any] = Field(default_factory=dict, description="Generator options.")
    val_fraction: float = Field(0.2, gt=0, lt=0.9, description="Held-out validation share.")
    split_seed: int = Field(0, ge=0, description="Seed of the fixed validation split.")

    @field_validator("name")
    @classmethod
    def _known(cls, v: str | None) -> str | None:
        return v if v is None else _one_of(v, list_datasets(), "dataset")

    @model_validator(mode="after")
    def _one_source(self) -> "DatasetIn":
        if (self.name is None) == (self.upload_id is None):
            raise ValueError("give exactly one of name (bundled or synthetic) and upload_id")
        if self.upload_id is not None and self.options:
            raise ValueError("options apply to synthetic datasets, not to uploads")
        return self


class TaskIn(_Strict):
    """What every trial does. ``kind: train`` (the default) trains a network: ``model`` and
    ``training`` are checked against the catalog (``GET /api/v1/catalog``) and the dataset when
    the study is submitted. ``kind: function`` evaluates a synthetic function (``name``, see
    the catalog's ``functions``) at the searched parameters, with ``options`` fixing the
    arguments not searched; its one metric is ``value``."""

    kind: Literal["train", "function"] = Field("train", description="train or function.")
    dataset: DatasetIn | None = Field(None, description="The data (train tasks).")
    model: dict[str, Any] = Field(
        default_factory=lambda: {"family": "mlp"}, description="{family, **fields} (train)."
    )
    training: dict[str, Any] = Field(default_factory=dict, description="Training fields (train).")
    name: str | None = Field(None, description="The function (function tasks).")
    options: dict[str, float] = Field(
        default_factory=dict, description="Fixed arguments of the function (function tasks)."
    )

    @field_validator("name")
    @classmethod
    def _known_function(cls, v: str | None) -> str | None:
        return v if v is None else _one_of(v, list(FUNCTIONS), "function")

    @model_validator(mode="after")
    def _fields_of_its_kind(self) -> "TaskIn":
        given = self.model_fields_set
        if self.kind == "train":
            if self.dataset is None:
                raise ValueError("a train task needs task.dataset")
            if given & {"name", "options"}:
                raise ValueError("name and options belong to function tasks (kind: function)")
        else:
            if self.name is None:
                raise ValueError("a function task needs task.name (see the catalog's functions)")
            if given & {"dataset", "model", "training"}:
                raise ValueError("dataset, model and training belong to train tasks")
        return self

    @model_serializer(mode="wrap")
    def _only_its_kind(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        data: dict[str, Any] = handler(self)
        drop = ("dataset", "model", "training") if self.kind == "function" else ("name", "options")
        return {k: v for k, v in data.items() if k not in drop}


# -- the study --------------------------------------------------------------------------------


class ObjectiveIn(_Strict):
    metric: str = "val_accuracy"
    direction: Literal["maximize", "minimize"] = "maximize"

    @field_validator("metric")
    @classmethod
    def _known(cls, v: str) -> str:
        return _one_of(v, list_metrics(), "metric")


class AlgorithmIn(_Strict):
    name: str = "tpe"
    settings: dict[str, Any] = Field(default_factory=dict)

    @field_validator("name")
    @classmethod
    def _known(cls, v: str) -> str:
        get_algorithm(v, STUDY_KINDS)  # raises ValueError listing the valid names
        return v


class BudgetIn(_Strict):
    max_trials: int = Field(20, gt=0, le=100_000, description="Trials started, any outcome.")
    max_failed_trials: int | None = Field(None, gt=0, description="Failures that end a study.")
    timeout_s: float | None = Field(None, gt=0, description="No new trial after this long.")
    target_value: float | None = Field(
        None, description="End the study when a trial reaches it (single objective)."
    )


class PrunerIn(_Strict):
    """Early stopping of unpromising trials (``GET /api/v1/algorithms``, kind pruner)."""

    name: str
    settings: dict[str, Any] = Field(default_factory=dict)

    @field_validator("name")
    @classmethod
    def _known(cls, v: str) -> str:
        get_algorithm(v, "pruner")  # raises ValueError listing the valid names
        return v


class WarmStartIn(_Strict):
    """Points to evaluate first, and finished trials of another study to learn from."""

    points: list[dict[str, Scalar]] = Field(default_factory=list, max_length=1000)
    from_study: int | None = Field(None, description="A study id with a compatible space.")


class ResourcesIn(_Strict):
    cpu: float = Field(1.0, gt=0, le=1024)
    gpu: float = Field(0.0, ge=0, le=64)

    @field_validator("gpu")
    @classmethod
    def _whole_above_one(cls, v: float) -> float:
        if v > 1 and v != int(v):
            raise ValueError("more than one GPU must be a whole number")
        return v


def json_limit_error(value: Any, path: str = "", depth: int = 0) -> str | None:
    """Why a JSON value breaks the spec's size limits (nesting depth, string length), naming
    where; None when it does not."""
    if depth > MAX_DEPTH:
        return f"{path or 'the spec'} nests deeper than {MAX_DEPTH} levels"
    if isinstance(value, str) and len(value) > MAX_STRING:
        return f"{path or 'a string'} is longer than {MAX_STRING} characters"
    items: list[tuple[str, Any]] = []
    if isinstance(value, dict):
        for key, item in value.items():
            if isinstance(key, str) and len(key) > MAX_STRING:
                return f"a key of {path or 'the spec'} is longer than {MAX_STRING} characters"
            items.append((f"{path}.{key}" if path else str(key), item))
    elif isinstance(value, list):
        items = [(f"{path}[{i}]", item) for i, item in enumerate(value)]
    for where, item in items:
        error = json_limit_error(item, where, depth + 1)
        if error:
            return error
    return None


class StudyCreate(_Strict):
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
    warm_start: WarmStartIn = WarmStartIn()
    search_space: dict[str, Param] = Field(default_factory=dict, max_length=_MAX_PARAMS)
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
        description="Sampler seed (unless its settings give one); trial n trains with seed + n.",
    )

    @model_validator(mode="after")
    def _expand_architecture(self) -> "StudyCreate":
        if self.architecture is None:
            return self
        if self.task.kind == "function":
            return self  # refused by service.validation, with its path
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
        if len(space) > _MAX_PARAMS:
            raise ValueError(
                f"the architecture and search_space add up to more than {_MAX_PARAMS} parameters"
            )
        self.task.model = model
        self.search_space = space
        return self

    @model_validator(mode="after")
    def _one_objective_field(self) -> "StudyCreate":
        if self.objective is not None and self.objectives is not None:
            raise ValueError("give objective or objectives, not both")
        metrics = [o.metric for o in self.objective_list()]
        if len(set(metrics)) != len(metrics):
            raise ValueError("objectives must name distinct metrics")
        return self

    def objective_list(self) -> list[ObjectiveIn]:
        """The objectives given, or the task's default: validation accuracy for a training,
        the value (minimized) for a function."""
        if self.objectives or self.objective:
            return self.objectives or [self.objective or ObjectiveIn()]
        if self.task.kind == "function":
            return [ObjectiveIn(metric="value", direction="minimize")]
        return [ObjectiveIn()]

    def to_spec(self) -> StudySpec:
        """The domain form the search loop runs."""
        pruner = self.pruner
        return StudySpec(
            name=self.name,
            objectives=tuple(Objective(o.metric, o.direction) for o in self.objective_list()),
            pruner=None if pruner is None else AlgorithmSpec(pruner.name, dict(pruner.settings)),
            algorithm=AlgorithmSpec(self.algorithm.name, dict(self.algorithm.settings)),
            search_space=tuple(_param_spec(n, p) for n, p in self.search_space.items()),
            budget=Budget(**self.budget.model_dump()),
            parallelism=self.parallelism,
            resources=Resources(**self.resources.model_dump()),
            task=self.task_spec(),
            seed=self.seed,
        )

    def task_spec(self) -> TaskSpec:
        task = self.task
        if task.kind == "function":
            return TaskSpec(kind="function", function=task.name, options=dict(task.options))
        assert task.dataset is not None  # the schema requires it
        return TaskSpec(
            dataset=task.dataset.model_dump(),
            model={"family": "mlp", **task.model},
            training=dict(task.training),
        )


def _param_spec(name: str, p: Param) -> ParamSpec:
    when = tuple(c.to_domain() for c in p.when)
    if isinstance(p, CategoricalParam):
        return ParamSpec(name, "categorical", choices=tuple(p.choices), when=when)
    step = p.step if isinstance(p, FloatParam) else float(p.step)
    return ParamSpec(name, p.type, low=p.low, high=p.high, log=p.log, step=step, when=when)


class BudgetPatch(_Strict):
    """Budget fields to change; the ones left out keep their value."""

    # Left out: unchanged; null is refused (a study needs a trial budget), so the document
    # shows an integer, not a nullable one.
    max_trials: Annotated[
        int | None,
        WithJsonSchema(
            {"type": "integer", "exclusiveMinimum": 0, "maximum": 100_000, "title": "Max Trials"}
        ),
    ] = Field(None, gt=0, le=100_000)
    max_failed_trials: int | None = Field(None, gt=0)
    timeout_s: float | None = Field(None, gt=0)
    target_value: float | None = None

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


def _utc(value: datetime) -> datetime:
    """A time of the service's own tables, in UTC with its zone.

    The service writes only UTC (``orm.utcnow``); SQLite drops the zone on the way back, so a
    naive value is UTC. PostgreSQL hands back an aware value, which is converted.
    """
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _optuna_utc(value: datetime) -> datetime:
    """A time from Optuna's tables, in UTC with its zone.

    Optuna stores ``datetime.now()``: naive *local* time of the process that told the trial,
    the scheduler in this service; ``astimezone`` reads a naive value as local time.
    """
    return value.astimezone(UTC)


# Every time in a response is RFC 3339 with its zone ("2026-01-02T03:04:05.123456Z"), as the
# OpenAPI document's ``date-time`` format says; a naive value would be no RFC 3339 time.
UtcDatetime = Annotated[datetime, AfterValidator(_utc)]
OptunaDatetime = Annotated[datetime, AfterValidator(_optuna_utc)]

TrialStateName = Literal["RUNNING", "COMPLETE", "PRUNED", "FAIL", "WAITING"]


class StudyPublic(BaseModel):
    id: int
    name: str
    status: str
    status_reason: str | None
    optuna_study_name: str
    created_at: UtcDatetime
    started_at: UtcDatetime | None
    finished_at: UtcDatetime | None
    trial_counts: dict[str, int] = Field(description="Trials by state.")
    best_value: float | None
    spec: dict[str, Any]


class StudyProgress(BaseModel):
    """A study's ``study`` and ``end`` events (``GET /studies/{id}/events``)."""

    id: int
    name: str
    status: str
    status_reason: str | None
    trial_counts: dict[str, int] = Field(description="Trials by state.")
    best_value: float | None
    started_at: UtcDatetime | None
    finished_at: UtcDatetime | None


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
    value: float | None = Field(description="The (first) objective's value.")
    values: list[float] | None = Field(description="Every objective's value.")
    intermediate_values: dict[int, float] = Field(description="Objective per epoch.")
    fail_reason: str | None
    node_id: str | None
    user_attrs: dict[str, Any]
    datetime_start: OptunaDatetime | None
    datetime_complete: OptunaDatetime | None
    duration_s: float | None


class TrialDetail(TrialPublic):
    learning_curve: list[CurvePoint] = Field(description="Every metric per epoch.")
    final_metrics: dict[str, float] = Field(description="Metrics of the kept weights.")
    artifacts: list[str] = Field(
        description="Downloadable at .../artifacts/{kind}: weights, torchscript, spec."
    )


class ParetoFront(BaseModel):
    """The best trials of a multi-objective study: none is beaten in every objective."""

    objectives: list[dict[str, str]]
    trials: list[TrialPublic]


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
    minimum: float | None = None
    choices: list[Any] | None = None


class AlgorithmPublic(BaseModel):
    name: str
    kind: str = Field(description="sampler (what to try) or pruner (early stopping).")
    description: str
    multi_objective: bool
    settings: list[SettingPublic]


class FamilyPublic(BaseModel):
    description: str
    data_kinds: list[str]
    fields: dict[str, dict[str, Any]] = Field(description="type, default, bounds, choices, doc")


class DatasetEntry(BaseModel):
    task: str
    kind: str
    input_shape: list[int]
    n_outputs: int
    n_samples: int
    options: dict[str, dict[str, Any]]


class MetricPublic(BaseModel):
    tasks: list[str]
    per_epoch: bool
    direction: str
    doc: str


class FunctionEntry(BaseModel):
    doc: str
    domain: dict[str, list[float]] = Field(description="Each argument's usual [low, high].")
    optimum: float | None = Field(description="The known minimum.")


class CatalogPublic(BaseModel):
    """Everything a study's task may name; search-space keys are ``model.<field>`` of the
    chosen family and ``training.<field>`` (``model.widths.1`` for one list element)."""

    families: dict[str, FamilyPublic]
    functions: dict[str, "FunctionEntry"] = Field(
        description="Synthetic functions a task of kind function may name: search-space keys "
        "are their arguments (domain), the objective metric is value."
    )
    training: dict[str, dict[str, Any]]
    datasets: dict[str, DatasetEntry]
    metrics: dict[str, MetricPublic]
    activations: list[str]
    norms: list[str]
    inits: list[str]


class ErrorItem(BaseModel):
    loc: list[str | int]
    path: str
    msg: str
    type: str


class DatasetPublic(BaseModel):
    """An uploaded dataset (``POST /api/v1/datasets``); studies name it by ``id``."""

    model_config = ConfigDict(from_attributes=True)

    id: str = Field(description="12 hex characters.")
    name: str
    filename: str = Field(description="The file's name as uploaded.")
    task: Literal["multiclass", "binary", "regression"]
    kind: Literal["tabular", "sequence", "image"]
    input_shape: list[int] = Field(description="One sample's shape: (F,), (C, L) or (C, H, W).")
    n_outputs: int = Field(description="Classes, or targets for regression.")
    n_samples: int
    size_bytes: int = Field(description="Size of the file as uploaded.")
    sha256: str = Field(description="SHA-256 of the file as uploaded.")
    created_at: UtcDatetime


class DatasetPage(BaseModel):
    items: list[DatasetPublic]
    total: int
    offset: int
    limit: int
