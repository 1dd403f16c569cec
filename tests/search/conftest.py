"""Shared by the search tests: the session's Ray joined per module, a small digits study, and a
loop built the way an algorithm opens one."""

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import optuna
import pytest

from models.data import Dataset
from search.algorithm import Env
from search.datadir import DataDir
from search.loop import StudyLoop
from search.ray_runtime import connect, disconnect
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
from search.trials import TrialKind, kind_of
from search.trials.train import load_named
from search.trials.worker import run_trial, warm_workers


@pytest.fixture(scope="module")
def local_ray(ray_cluster: str) -> Iterator[None]:
    """This process joins the session's Ray (see ``tests/conftest.py``) for the module, with
    one trial-ready worker per CPU, as the service warms them (a Ray started for this
    process would have started them itself; one joined starts workers only on demand, and
    the first two trials would then start seconds apart)."""
    connect(address=ray_cluster)
    warm_workers()
    yield
    disconnect()


DIGITS = DatasetRef(name="digits")


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
        task=TrainTask(
            dataset=DIGITS,
            model={"family": "mlp", "hidden_layers": 1, "width": 16},
            training={"epochs": epochs, "lr": 0.01},
        ),
    )


def make_loop(
    spec: StudySpec,
    study: optuna.Study,
    data_dir: Path,
    started_at: float = 1e18,
    trial_fn: Callable[..., Any] = run_trial,
    kind: TrialKind | None = None,
    load: Callable[[DatasetRef], Dataset] = load_named,
    checkpoint_every: int = 0,
    retries: int = 3,
    trial_cap: int | None = None,
) -> StudyLoop:
    """The sampler loop of ``spec`` on ``study``, with its files under ``data_dir``."""
    env = Env(DataDir(data_dir), load, started_at, checkpoint_every, retries)
    return StudyLoop(spec, study, env, kind or kind_of(spec.task), trial_cap, trial_fn)
