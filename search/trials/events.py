"""What a trial's Ray task yields back to the loop: typed events, in order.

A trial runs as a Ray streaming task: its events reach the scheduler while it trains, in
batches (:mod:`search.trials.batching`: an epoch no pruner decides on waits for the next event,
at most half a second). Events are frozen dataclasses, pickled by Ray between the worker and
the scheduler's process (never from a client).
"""

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Started:
    """Where the trial runs: first event of every trial (a function's result carries it)."""

    node_id: str
    pid: int
    device: str


@dataclass(frozen=True)
class Measured:
    """What the built network tells before it trains (``latency_ms``), when the study ranks or
    constrains it: the loop knows it at every rung, and a trial past a constraint on it ends
    here, before its first epoch."""

    metrics: dict[str, float]


@dataclass(frozen=True)
class EpochEnd:
    """One point of the learning curves: every metric after ``epoch``."""

    epoch: int
    metrics: dict[str, float]


@dataclass(frozen=True)
class CheckpointSaved:
    """The trainer's state after ``epoch``: a trial cut short resumes from the newest."""

    epoch: int
    state: bytes = field(repr=False)


@dataclass(frozen=True)
class SearchEpoch:
    """One epoch of a one-shot search: the supernet's metrics and the cell it would derive."""

    epoch: int
    metrics: dict[str, float]
    genotype: str


@dataclass(frozen=True)
class ArchitectureChosen:
    """A one-shot search chose the architecture: its parameters become the trial's."""

    params: dict[str, str]
    genotype: str
    alpha: list[list[float]]
    search_seconds: float


@dataclass(frozen=True)
class Finished:
    """The trial's result, last: its final metrics and, for a training, what it exports."""

    metrics: dict[str, float]
    started: Started | None = None  # where it ran, when no Started event came first
    best_epoch: int | None = None
    stopped_early: bool | None = None
    grad_norms: dict[str, float] | None = None
    state_dict: bytes | None = field(default=None, repr=False)
    torchscript: bytes | None = field(default=None, repr=False)


Event = (
    Started | Measured | EpochEnd | CheckpointSaved | SearchEpoch | ArchitectureChosen | Finished
)
