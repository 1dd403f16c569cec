"""Trial kinds: what one trial runs, as a typed strategy (see :mod:`search.trials.base`).

A study's task names its kind: ``train`` (:mod:`search.trials.train`) or ``function``
(:mod:`search.trials.function`). The one-shot kind (:mod:`search.trials.oneshot`) is chosen by
the algorithm that needs it (DARTS), not by the task.
"""

from dataclasses import dataclass

from search.spec import Direction, FunctionTask, Task, TrainTask
from search.trials.base import Payload, TrialKind, TrialRecord
from search.trials.function import FUNCTION
from search.trials.train import TRAIN


@dataclass(frozen=True)
class TaskShape:
    """What a task of one kind holds beside ``kind``: its fields, the one it needs, and how
    messages name such tasks."""

    fields: tuple[str, ...]
    required: str
    label: str
    objective: tuple[str, Direction]  # the default objective: metric, direction
    hint: str = ""


TASK_SHAPES: dict[str, TaskShape] = {
    TrainTask.kind: TaskShape(
        ("dataset", "model", "training"), "dataset", "train tasks", ("val_accuracy", "maximize")
    ),
    FunctionTask.kind: TaskShape(
        ("name", "options"),
        "name",
        "function tasks (kind: function)",
        ("value", "minimize"),
        " (see the catalog's functions)",
    ),
}
DEFAULT_TASK_KIND = TrainTask.kind


def kind_of(task: Task) -> TrialKind:
    """The trial kind that runs ``task``."""
    return FUNCTION if isinstance(task, FunctionTask) else TRAIN


__all__ = [
    "DEFAULT_TASK_KIND",
    "TASK_SHAPES",
    "Payload",
    "TaskShape",
    "TrialKind",
    "TrialRecord",
    "kind_of",
]
