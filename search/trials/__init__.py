"""Trial kinds: what one trial runs, as a typed strategy (see :mod:`search.trials.base`).

A study's task names its kind: ``train`` (:mod:`search.trials.train`; with a class subset or
``init_from``, :mod:`search.trials.transfer`), ``fewshot`` (:mod:`search.trials.fewshot`),
``function`` (:mod:`search.trials.function`) or ``external`` (:mod:`search.trials.external`:
evaluated by a client, never on the cluster). The one-shot kind (:mod:`search.trials.oneshot`)
is chosen by the algorithm that needs it (DARTS), not by the task.
"""

from dataclasses import dataclass

from search.spec import Direction, ExternalTask, FewShotTask, FunctionTask, Task, TrainTask
from search.trials.base import Payload, TrialKind, TrialRecord
from search.trials.external import EXTERNAL
from search.trials.fewshot import FEWSHOT
from search.trials.function import FUNCTION
from search.trials.train import TRAIN
from search.trials.transfer import TRANSFER


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
        ("dataset", "model", "training", "init_from"),
        "dataset",
        "train tasks",
        ("val_accuracy", "maximize"),
    ),
    FunctionTask.kind: TaskShape(
        ("name", "options"),
        "name",
        "function tasks (kind: function)",
        ("value", "minimize"),
        " (see the catalog's functions)",
    ),
    FewShotTask.kind: TaskShape(
        ("dataset", "model", "fewshot"),
        "dataset",
        "few-shot tasks (kind: fewshot)",
        ("val_episode_accuracy", "maximize"),
    ),
    ExternalTask.kind: TaskShape(
        ("metrics", "lease_s"),
        "metrics",
        "external tasks (kind: external)",
        ("", "minimize"),  # none: an external study names its objective (see StudyCreate)
        " (the metrics its clients report)",
    ),
}
DEFAULT_TASK_KIND = TrainTask.kind


def kind_of(task: Task) -> TrialKind:
    """The trial kind that runs ``task``."""
    if isinstance(task, FunctionTask):
        return FUNCTION
    if isinstance(task, ExternalTask):
        return EXTERNAL
    if isinstance(task, FewShotTask):
        return FEWSHOT
    if task.init_from is not None or task.dataset.classes is not None:
        return TRANSFER
    return TRAIN


__all__ = [
    "DEFAULT_TASK_KIND",
    "TASK_SHAPES",
    "Payload",
    "TaskShape",
    "TrialKind",
    "TrialRecord",
    "kind_of",
]
