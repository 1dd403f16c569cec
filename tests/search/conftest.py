"""Shared by the search tests: a local Ray per module, and a small digits study."""

from collections.abc import Iterator

import pytest

from search.ray_runtime import connect, disconnect
from search.spec import (
    AlgorithmSpec,
    Budget,
    Objective,
    ParamSpec,
    Resources,
    StudySpec,
    TaskSpec,
)


@pytest.fixture(scope="module")
def local_ray() -> Iterator[None]:
    connect(num_cpus=2)
    yield
    disconnect()


def digits_spec(name: str, seed: int, max_trials: int, parallelism: int, epochs: int) -> StudySpec:
    """A random search of a one-layer MLP's width on digits."""
    return StudySpec(
        name=name,
        objectives=(Objective("val_accuracy", "maximize"),),
        algorithm=AlgorithmSpec("random", {"seed": seed}),
        search_space=(ParamSpec("model.width", "int", low=8, high=32),),
        budget=Budget(max_trials=max_trials, max_failed_trials=None),
        parallelism=parallelism,
        resources=Resources(cpu=1),
        task=TaskSpec(
            dataset={"name": "digits", "val_fraction": 0.2, "split_seed": 0, "options": {}},
            model={"family": "mlp", "hidden_layers": 1, "width": 16},
            training={"epochs": epochs, "lr": 0.01},
        ),
    )
