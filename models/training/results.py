"""What training yields: the network's measures before training, per-epoch metrics,
checkpoints to resume from, the final result."""

from dataclasses import dataclass, field
from typing import Any


class NonFiniteLossError(FloatingPointError):
    """The loss or a gradient turned NaN or infinite; going on would only waste the budget."""


@dataclass(frozen=True)
class EpochMetrics:
    """One point of the learning curves."""

    epoch: int
    metrics: dict[str, float]

    def as_dict(self) -> dict[str, float]:
        return {"epoch": self.epoch, **self.metrics}


@dataclass(frozen=True)
class NetworkMeasured:
    """What the built network tells before its first epoch (``latency_ms``): known early, a
    trial can be ranked on it at every rung, or rejected by a constraint before it trains."""

    metrics: dict[str, float]


@dataclass(frozen=True)
class TrainResult:
    """A finished training: the metrics of the kept weights, and the exports."""

    metrics: dict[str, float]
    best_epoch: int
    stopped_early: bool
    grad_norms: dict[str, float]
    state_dict: bytes = field(repr=False)
    torchscript: bytes = field(repr=False)
    export: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class TrainCheckpoint:
    """Everything :func:`train` needs to continue after ``epoch`` (``resume=state``)."""

    epoch: int
    state: bytes = field(repr=False)

    @classmethod
    def read(cls, state: bytes) -> "TrainCheckpoint":
        """A checkpoint from its ``state`` alone: the epoch is read from inside it."""
        from models.training.export import load_state  # torch: only where a checkpoint is read

        return cls(int(load_state(state)["trainer"]["epoch"]), state)
