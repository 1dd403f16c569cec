"""What every system of the search-quality benchmark shares: the task's search space as Optuna
distributions, its data and trainer, the algorithms, and what one run recorded."""

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import optuna
import torch
from optuna.distributions import (
    BaseDistribution,
    CategoricalDistribution,
    FloatDistribution,
    IntDistribution,
)

from benchmarks.quality.tasks import TASKS, Task
from models.data import Dataset, load_dataset
from models.training.config import TrainConfig
from models.training.results import EpochMetrics, TrainResult
from models.training.trainer import train

GOAL = 0.8  # tuneforge's median time to target / the best peer's, at most (issue 18)
# Other processes may use this many CPUs on average during a run (the machine's own daemons
# take about 0.01) before the run counts as skewed and is measured again.
FOREIGN_RATE = 0.05
PARALLEL = 2
N_STARTUP = 5
MIN_RESOURCE = 1
REDUCTION = 3
METRIC = "val_accuracy"
SYSTEMS = ("tuneforge", "optuna", "raytune")  # what --system picks
# The peers' rows: cold (everything started inside the clock) and warm (workers started and
# torch imported before it: Optuna's processes wait at a barrier; Ray Tune's second
# experiment on the same Ray).
PEERS = ("optuna", "optuna-warm", "raytune", "raytune-warm")
LABELS = {
    "tuneforge": "tuneforge (tpe + asha), fresh server",
    "tuneforge-warm": "tuneforge, same server's second study",
    "optuna": "Optuna alone (TPE + SHA, 2 processes, SQLite), cold",
    "optuna-warm": "Optuna alone, workers started and torch imported before the clock",
    "raytune": "Ray Tune alone (OptunaSearch TPE + ASHA, reused actors), cold",
    "raytune-warm": "Ray Tune alone, the same Ray's second experiment",
    "tuneforge-bohb": "tuneforge (bohb), fresh server",
    "tuneforge-bohb-warm": "tuneforge (bohb), same server's second study",
}
# tuneforge's algorithms that --algorithm picks: the study's `algorithm` and `pruner` for a seed.
# tpe + asha is the measurement above; bohb (its own asynchronous Hyperband, no pruner) runs
# with its default settings but the same first rung and reduction factor.
ALGORITHMS: dict[str, Callable[[int], dict[str, Any]]] = {
    "tpe+asha": lambda seed: {
        "algorithm": {"name": "tpe", "settings": {"seed": seed, "n_startup_trials": N_STARTUP}},
        "pruner": {
            "name": "asha",
            "settings": {"min_resource": MIN_RESOURCE, "reduction_factor": REDUCTION},
        },
    },
    "tpe+curve": lambda seed: {
        "algorithm": {"name": "tpe", "settings": {"seed": seed, "n_startup_trials": N_STARTUP}},
        "pruner": {"name": "curve"},
    },
    "bohb": lambda seed: {
        "algorithm": {
            "name": "bohb",
            "settings": {
                "seed": seed,
                "min_resource": MIN_RESOURCE,
                "reduction_factor": REDUCTION,
            },
        },
    },
}


def tuneforge_system(algorithm: str, warm: bool = False) -> str:
    """The system name of tuneforge's runs with ``algorithm`` (tpe+asha: plain tuneforge)."""
    base = "tuneforge" if algorithm == "tpe+asha" else f"tuneforge-{algorithm}"
    return f"{base}-warm" if warm else base


# Optuna's trial states as a run records them.
STATES = {"COMPLETE": "complete", "PRUNED": "pruned", "FAIL": "failed"}


def distributions(task: Task) -> dict[str, BaseDistribution]:
    """The task's search space as Optuna distributions, under the same dotted names."""
    out: dict[str, BaseDistribution] = {}
    for name, p in task.space.items():
        if p["type"] == "categorical":
            out[name] = CategoricalDistribution(p["choices"])
        elif p["type"] == "int":
            out[name] = IntDistribution(p["low"], p["high"], log=p.get("log", False))
        else:
            out[name] = FloatDistribution(p["low"], p["high"], log=p.get("log", False))
    return out


def suggest(trial: optuna.Trial, name: str, p: dict[str, Any]) -> Any:
    """One parameter of SPACE, sampled the way tuneforge's loop samples it."""
    if p["type"] == "categorical":
        return trial.suggest_categorical(name, p["choices"])
    if p["type"] == "int":
        return trial.suggest_int(name, p["low"], p["high"], log=p.get("log", False))
    return trial.suggest_float(name, p["low"], p["high"], log=p.get("log", False))


def tpe(seed: int) -> optuna.samplers.TPESampler:
    """tuneforge's ``tpe`` with its defaults (multivariate, grouped, constant liar)."""
    return optuna.samplers.TPESampler(
        seed=seed, n_startup_trials=N_STARTUP, multivariate=True, group=True, constant_liar=True
    )


def load_data(task: Task) -> Dataset:
    """The task's data, split as its studies split it."""
    ref = task.dataset
    return load_dataset(
        ref["name"], ref.get("val_fraction", 0.2), ref.get("split_seed", 0), ref.get("options")
    )


def train_params(
    task: Task,
    params: dict[str, Any],
    data: Dataset,
    seed: int,
    on_epoch: Callable[[int, float], None],
) -> float:
    """Train one configuration the way a tuneforge trial does; return the final val_accuracy.

    ``on_epoch(epoch, val_accuracy)`` runs after every epoch; it may raise to stop the trial.
    """
    torch.set_num_threads(1)  # a trial reserves one CPU, as in tuneforge
    model: dict[str, Any] = dict(task.model)
    training: dict[str, Any] = {**task.training, "epochs": task.epochs}
    for name, value in params.items():
        part, key = name.split(".", 1)
        (model if part == "model" else training)[key] = value
    final = math.nan
    for item in train(model, TrainConfig(**training), data, seed, "cpu", (METRIC, "maximize")):
        if isinstance(item, EpochMetrics):
            on_epoch(item.epoch, item.metrics[METRIC])
        elif isinstance(item, TrainResult):
            final = item.metrics[METRIC]
    return final


@dataclass
class Trial:
    start: float | None  # seconds since the run's clock started
    end: float | None
    state: str  # complete | pruned | failed | other
    value: float | None  # final val_accuracy (complete trials)


@dataclass
class Run:
    system: str
    seed: int
    budget: float
    task: str = "mlp"
    trials: list[Trial] = field(default_factory=list)
    note: str = ""
    foreign_cpu_s: float = 0.0  # CPU time other processes of the machine used meanwhile
    skewed: bool = False  # they used more than FOREIGN_RATE CPUs on average
    # CPU time of the orchestrating process during the budget: tuneforge's server (API and
    # scheduler thread), Ray Tune's driver; None for Optuna (no such process).
    orchestrator_cpu_s: float | None = None
    # Seconds from starting the service (tuneforge: `tuneforge serve`) or Ray (Ray Tune:
    # `ray.init`) until it takes work: outside the clock.
    startup_s: float | None = None

    def inside(self) -> list[Trial]:
        """Trials that ended within the budget."""
        return [t for t in self.trials if t.end is not None and t.end <= self.budget]

    def count(self, state: str) -> int:
        return sum(t.state == state for t in self.inside())

    def best(self) -> float | None:
        values = [t.value for t in self.inside() if t.state == "complete" and t.value is not None]
        return max(values) if values else None

    def time_to_target(self, target: float | None = None) -> float:
        """When the first trial with a final value >= target (the task's) ended (inf: never)."""
        target = TASKS[self.task].target if target is None else target
        hits = [
            t.end
            for t in self.inside()
            if t.state == "complete" and t.value is not None and t.value >= target
        ]
        return min(hits) if hits else math.inf

    def finished(self) -> int:
        return self.count("complete") + self.count("pruned")

    def first_done(self) -> float:
        ends = [t.end for t in self.inside() if t.state in ("complete", "pruned")]
        return min((e for e in ends if e is not None), default=math.inf)

    def first_start(self) -> float:
        """When the first trial was dispatched (inf: none)."""
        starts = [t.start for t in self.trials if t.start is not None]
        return min(starts, default=math.inf)
