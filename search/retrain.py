"""A trial as a study of its own: what trains its architecture and hyperparameters again."""

from dataclasses import replace
from typing import Any

from search.spec import AlgorithmSpec, Budget, StudySpec, TrainTask


def retrain_spec(
    spec: StudySpec, number: int, params: dict[str, Any], epochs: int | None
) -> StudySpec:
    """A study of one trial that trains trial ``number`` (with ``params``) again.

    Every searched parameter is fixed to the trial's value (a NAS study's architecture
    included), the search space is empty, and the seed is the one the trial trained with, so
    with the same ``epochs`` it reproduces the trial; with more it is the full training.
    """
    task = spec.task.with_params(params)
    if isinstance(task, TrainTask) and epochs is not None:
        task = replace(task, training={**task.training, "epochs": epochs})
    return StudySpec(
        name=f"{spec.name}-trial-{number}"[:128],
        objectives=spec.objectives,
        algorithm=AlgorithmSpec("random"),
        search_space=(),
        budget=Budget(max_trials=1),
        parallelism=1,
        resources=spec.resources,
        task=task,
        seed=spec.seed + number,
    )
