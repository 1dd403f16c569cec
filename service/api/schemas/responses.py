"""The responses of the REST API."""

from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field


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
    feasible: bool | None = Field(
        None, description="Within the study's constraints (None: the study has none)."
    )
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


class TrialEnqueued(BaseModel):
    number: int = Field(description="The queued trial's number.")
    state: Literal["WAITING"]
    params: dict[str, Any] = Field(description="The given parameters (the rest are sampled).")
    enqueued: str = Field(description="Its user attribute `enqueued`: who asked, and the note.")


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
    maximum: float | None = None
    choices: list[Any] | None = None


class AlgorithmPublic(BaseModel):
    name: str
    kind: str = Field(description="sampler (what to try) or pruner (early stopping).")
    description: str
    multi_objective: bool
    settings: list[SettingPublic]


class PluginPublic(BaseModel):
    """The installed package that adds a catalog entry (entry points ``tuneforge.*``)."""

    package: str
    version: str


_PLUGIN = Field(None, description="The installed package that adds it; null: built in.")


class FamilyPublic(BaseModel):
    description: str
    data_kinds: list[str]
    fields: dict[str, dict[str, Any]] = Field(description="type, default, bounds, choices, doc")
    plugin: PluginPublic | None = _PLUGIN


class DatasetEntry(BaseModel):
    task: str
    kind: str
    input_shape: list[int]
    n_outputs: int
    n_samples: int
    options: dict[str, dict[str, Any]]
    plugin: PluginPublic | None = _PLUGIN


class MetricPublic(BaseModel):
    tasks: list[str]
    per_epoch: bool
    direction: str
    doc: str


class FunctionEntry(BaseModel):
    doc: str
    domain: dict[str, list[float]] = Field(description="Each argument's usual [low, high].")
    optimum: float | None = Field(description="The known minimum.")
    plugin: PluginPublic | None = _PLUGIN


class CatalogPublic(BaseModel):
    """Everything a study's task may name; search-space keys are ``model.<field>`` of the
    chosen family and ``training.<field>`` (``model.widths.1`` for one list element)."""

    families: dict[str, FamilyPublic]
    functions: dict[str, "FunctionEntry"] = Field(
        description="Synthetic functions a task of kind function may name: search-space keys "
        "are their arguments (domain), the objective metric is value."
    )
    training: dict[str, dict[str, Any]]
    fewshot: dict[str, dict[str, Any]] = Field(
        description="The fields of task.fewshot (a task of kind fewshot); search-space keys "
        "are fewshot.<field>."
    )
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
    kind: Literal["tabular", "sequence", "image", "graph"]
    input_shape: list[int] = Field(
        description="One sample's shape: (F,), (C, L), (C, H, W), or (nodes, 2 + F + nodes) "
        "for padded graphs."
    )
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
