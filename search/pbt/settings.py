"""PBT's and PB2's settings, and every reason a study cannot run as a population."""

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import torch

from models.data import DatasetInfo
from models.families import build_model
from models.fields import setting
from models.metrics import METRICS
from models.training.config import TrainConfig, n_outputs
from search.spec import MAX_EPOCHS, StudySpec, TrainTask

METHODS = ("pbt", "pb2")
_QUANTILE = (
    "Fraction of the population that clones the top fraction at each step (at most 0.5; 0 "
    "turns exploitation off)."
)
_SYNCH = (
    "Rank and perturb the whole population at once (reproducible with a seed; members pause "
    "at every step) instead of each member as it reaches the interval."
)
_KEEP = "Checkpoints kept per member (default: max(8, 2 * population_size))."


# A population trains side by side, one Ray Tune trial a member: a cluster's worth, not more.
MAX_POPULATION = 256


@dataclass(frozen=True)
class PB2Settings:
    """PB2's settings (and PBT's, but for ``resample_probability``)."""

    population_size: int = setting(4, "Members trained side by side.", low=2, high=MAX_POPULATION)
    perturbation_interval: int = setting(
        2, "Epochs between two exploit/explore steps.", low=1, high=MAX_EPOCHS
    )
    quantile_fraction: float = setting(0.25, _QUANTILE, low=0, high=0.5)
    synch: bool = setting(True, _SYNCH)
    checkpoints_to_keep: int | None = setting(None, _KEEP, low=2, high=1000)

    @property
    def resample(self) -> float:
        """The chance that PBT's explore resamples a parameter (PB2 never does)."""
        return 0.0

    @property
    def keep(self) -> int:
        """Checkpoints kept per member."""
        return self.checkpoints_to_keep or max(8, 2 * self.population_size)


@dataclass(frozen=True)
class PBTSettings(PB2Settings):
    """PBT's settings."""

    resample_probability: float = setting(
        0.25,
        "PBT: chance that explore resamples a parameter instead of scaling it by 0.8 or 1.2.",
        low=0,
        high=1,
    )

    @property
    def resample(self) -> float:
        return self.resample_probability


def epochs(spec: StudySpec) -> int:
    """The epochs every member trains."""
    assert isinstance(spec.task, TrainTask)
    return int(spec.task.training.get("epochs", TrainConfig.epochs))


def _signature(spec: StudySpec, params: Mapping[str, Any], info: DatasetInfo) -> Any:
    """The shapes of the network's weights for ``params``: what a checkpoint must match."""
    task = spec.task.with_params(params)
    assert isinstance(task, TrainTask)
    training = {k: v for k, v in task.training.items() if k != "early_stopping_patience"}
    try:
        out = n_outputs(TrainConfig(**training), info)
        # The meta device builds the modules without allocating or initializing weights.
        with torch.device("meta"):
            net = build_model(dict(task.model), info.input_shape, out)
    except Exception:  # a value that cannot build: the task's own checks report it
        return None
    return sorted((k, tuple(v.shape)) for k, v in net.state_dict().items())


def structural_params(spec: StudySpec, info: DatasetInfo) -> list[str]:
    """The parameters whose value changes the network's shape (width, depth, the loss's output
    units): members inherit them with the weights and never perturb them."""
    found = []
    for p in spec.search_space:
        values = list(p.choices) if p.kind == "categorical" else [p.low, p.high]
        if p.kind == "int":
            values = [int(v) for v in values if v is not None]
        shapes = [_signature(spec, {p.name: v}, info) for v in values]
        if any(s is None or s != shapes[0] for s in shapes):
            found.append(p.name)
    return found


def check_pbt(spec: StudySpec, settings: PB2Settings, info: DatasetInfo | None) -> list[str]:
    """Every reason ``spec`` cannot run as a PBT or PB2 study with ``settings``; empty when
    it can.

    Args:
        spec: the study (a training).
        settings: its checked algorithm settings.
        info: the dataset's metadata (None: not known; the shape check of model parameters
            is skipped).
    """
    method = spec.algorithm.name
    problems: list[str] = []
    n_objectives = len(spec.objectives)
    if n_objectives != 1:
        problems.append(f"{method} optimizes a single objective; this study has {n_objectives}")
    metric = spec.objective.metric
    if metric in METRICS and not METRICS[metric].per_epoch:
        problems.append(
            f"{method} compares members on an objective measured every epoch; "
            f"{metric} is measured at the end"
        )
    assert isinstance(spec.task, TrainTask)
    interval = settings.perturbation_interval
    if epochs(spec) < 2 * interval:
        problems.append(
            f"{method} needs a checkpointable task: members checkpoint every "
            f"perturbation_interval ({interval}) epochs and need two checkpoints, but "
            f"training.epochs is {epochs(spec)}"
        )
    if spec.task.training.get("early_stopping_patience"):
        problems.append(f"{method} trains every member all epochs: turn early stopping off")
    names = {p.name for p in spec.search_space}
    for fixed in ("training.epochs", "training.early_stopping_patience"):
        if fixed in names:
            problems.append(f"{fixed} cannot be searched with {method}")
    conditional = [p.name for p in spec.search_space if p.when]
    if conditional:
        problems.append(
            f"{method} keeps every parameter active during training; conditional parameters "
            f"are not supported: {', '.join(conditional)}"
        )
    categorical = [p.name for p in spec.search_space if p.kind == "categorical"]
    if method == "pb2" and categorical:
        problems.append(
            f"pb2 models float and int parameters only; categorical: {', '.join(categorical)}"
        )
    numeric = [p.name for p in spec.search_space if p.kind != "categorical"]
    if info is not None and numeric:
        structural = set(structural_params(spec, info))
        numeric = [n for n in numeric if n not in structural]
        if not numeric:
            shaping = ", ".join(sorted(structural))
            problems.append(
                f"{method} needs a float or int parameter it can perturb; {shaping} "
                f"{'sets' if len(structural) == 1 else 'set'} the network's shape, which a "
                f"clone's weights must keep"
            )
    elif not numeric:
        problems.append(f"{method} needs a float or int parameter to perturb; the space has none")
    if method == "pb2":
        problems += pb2_unavailable()
    return problems


def pb2_unavailable() -> list[str]:
    """Why PB2's GP bandit cannot run here (empty: it can)."""
    try:
        from ray.tune.schedulers.pb2 import PB2  # noqa: F401
        from ray.tune.schedulers.pb2_utils import UCB  # noqa: F401
    except ImportError as exc:
        return [f"pb2 needs scikit-learn for its GP bandit (Ray Tune 2.60), which fails: {exc}"]
    return []
