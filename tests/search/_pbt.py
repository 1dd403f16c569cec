"""Shared by the ``test_pbt*`` modules: a PBT study spec on the synthetic ``classification``
data (3000 samples, 3 classes), plain SGD, the learning rate searched over [0.01, 2]."""

from typing import Any

import optuna

from search.spec import (
    AlgorithmSpec,
    Budget,
    DatasetRef,
    Objective,
    ParamSpec,
    Resources,
    StudySpec,
    TrainTask,
)

EPOCHS = 8
LR = ParamSpec("training.lr", "float", low=0.01, high=2.0, log=True)
CLASSIFICATION = DatasetRef("classification", options={"n_samples": 3000})

optuna.logging.set_verbosity(optuna.logging.WARNING)


def make_spec(
    space: tuple[ParamSpec, ...] = (LR,),
    epochs: int = EPOCHS,
    settings: dict[str, Any] | None = None,
    algorithm: str = "pbt",
    objectives: tuple[Objective, ...] = (Objective("val_loss", "minimize"),),
    training: dict[str, Any] | None = None,
    seed: int = 0,
) -> StudySpec:
    return StudySpec(
        name="pbt-test",
        objectives=objectives,
        algorithm=AlgorithmSpec(algorithm, settings or {}),
        search_space=space,
        budget=Budget(max_trials=100),
        parallelism=2,
        # Half a CPU each: the whole population trains at once on the test's 2-CPU Ray.
        resources=Resources(cpu=0.5),
        task=TrainTask(
            dataset=CLASSIFICATION,
            model={"family": "mlp", "hidden_layers": 2, "width": 64},
            training={"epochs": epochs, "optimizer": "sgd", "batch_size": 64, **(training or {})},
        ),
        seed=seed,
    )
