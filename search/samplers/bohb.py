"""``bohb``: model-based multi-fidelity search (Falkner et al. 2018, "BOHB: Robust and Efficient
Hyperparameter Optimization at Scale"), asynchronous.

Two halves, opened together on the sampler loop:

- :class:`BohbSampler` proposes each trial. With probability ``random_fraction`` (and while no
  fidelity has ``n_startup`` observations) at random; else from the density model of
  :mod:`search.samplers.bohb_kde`, fitted at the highest fidelity (rung epoch, or the full
  training) with ``n_startup`` observations: the values trials reported at that epoch, the
  running and stopped ones included.
- :class:`search.samplers.bohb_rungs.BohbPruner` stops trials at rungs of ``min_resource *
  reduction_factor^k`` epochs, asynchronous Hyperband: the trials' brackets hedge how early a
  trial may be judged.

A bohb study takes no ``pruner`` (it has its own) and optimizes one objective measured every
epoch.
"""

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import optuna
from optuna.distributions import BaseDistribution
from optuna.samplers import BaseSampler, RandomSampler
from optuna.search_space import IntersectionSearchSpace
from optuna.study import StudyDirection
from optuna.trial import FrozenTrial, TrialState

from models.data import DatasetInfo
from models.fields import as_dict, setting
from models.metrics import METRICS
from models.training.config import TrainConfig
from search.algorithm import Env, FieldError, Run, StudyRef, at, trains_networks
from search.loop import StudyLoop
from search.samplers import bohb_kde as kde
from search.samplers.base import SamplerAlgorithm, seed_setting
from search.samplers.bohb_rungs import BohbPruner, rungs_below
from search.spec import MAX_EPOCHS, MAX_TRIALS, StudySpec
from search.trials import kind_of

_SETTINGS = ("algorithm", "settings")


@dataclass(frozen=True)
class BohbSettings:
    seed: int | None = seed_setting()
    min_resource: int = setting(1, "Epochs before the first rung.", low=1, high=MAX_EPOCHS)
    max_resource: int | None = setting(
        None, "Epochs of a full trial (default: the study's epochs).", low=1, high=MAX_EPOCHS
    )
    reduction_factor: int = setting(3, "Keep 1 in this many at each rung.", low=2, high=100)
    n_startup: int | None = setting(
        None,
        "Observations at a fidelity before it is modelled (default: twice the number of "
        "parameters plus one); until some fidelity has them, trials are random.",
        low=2,
        high=MAX_TRIALS,
    )
    top_fraction: float = setting(
        0.15, "Fraction of the observations that form the good density.", low=0, high=1
    )
    bandwidth_factor: float = setting(
        3.0, "Widening of the good density's kernels when drawing candidates.", low=0, high=100
    )
    random_fraction: float = setting(
        1 / 3, "Fraction of trials proposed at random whatever the model.", low=0, high=1
    )


def study_epochs(spec: StudySpec) -> int:
    """The epochs of a full trial of ``spec``: its training's (the largest searched value when
    ``training.epochs`` is searched)."""
    for p in spec.search_space:
        if p.name == "training.epochs" and p.high is not None:
            return int(p.high)
        if p.name == "training.epochs" and p.choices:
            return max(int(c) for c in p.choices)
    training = getattr(spec.task, "training", {})
    default = TrainConfig().epochs
    return int(training.get("epochs", default))


class BohbSampler(BaseSampler):
    """BOHB's proposals (see the module docstring); parameters outside the modelled space
    (conditional ones, before they were seen) are random."""

    def __init__(
        self,
        budgets: Sequence[int],
        *,
        n_startup: int | None = None,
        top_fraction: float = 0.15,
        bandwidth_factor: float = 3.0,
        random_fraction: float = 1 / 3,
        seed: int | None = None,
    ) -> None:
        self.budgets = sorted(set(budgets), reverse=True)  # the highest fidelity first
        self.n_startup = n_startup
        self.top_fraction = top_fraction
        self.bandwidth_factor = bandwidth_factor
        self.random_fraction = random_fraction
        self._rng = np.random.RandomState(seed)
        self._random = RandomSampler(seed=seed)
        self._space = IntersectionSearchSpace(include_pruned=True)
        self.last_fidelity: int | None = None  # what the last proposal modelled (None: random)

    def reseed_rng(self) -> None:
        self._rng.seed()
        self._random.reseed_rng()

    def infer_relative_search_space(
        self, study: optuna.Study, trial: FrozenTrial
    ) -> dict[str, BaseDistribution]:
        return {n: d for n, d in self._space.calculate(study).items() if not d.single()}

    def sample_relative(
        self, study: optuna.Study, trial: FrozenTrial, search_space: dict[str, BaseDistribution]
    ) -> dict[str, Any]:
        self.last_fidelity = None
        if not search_space or self._rng.random_sample() < self.random_fraction:
            return {}
        names = sorted(search_space)
        found = self.observations(study, names, [search_space[n] for n in names])
        if found is None:
            return {}
        self.last_fidelity, points, losses = found
        good, bad = kde.split(points, losses, self.top_fraction)
        choices = [kde.n_choices(search_space[n]) for n in names]
        best = kde.propose(good, bad, choices, self._rng, self.bandwidth_factor)
        return {n: kde.decode(search_space[n], float(x)) for n, x in zip(names, best, strict=True)}

    def observations(
        self, study: optuna.Study, names: Sequence[str], dists: Sequence[BaseDistribution]
    ) -> tuple[int, np.ndarray, np.ndarray] | None:
        """The highest fidelity with enough observations: its epoch, the encoded points and
        their losses (lower is better); None when none has enough."""
        wanted = self.n_startup or 2 * len(names) + 1
        sign = -1.0 if study.direction == StudyDirection.MAXIMIZE else 1.0
        states = (TrialState.COMPLETE, TrialState.PRUNED, TrialState.RUNNING)
        trials = [
            t
            for t in study._get_trials(deepcopy=False, states=states, use_cache=True)
            if all(n in t.params for n in names)
        ]
        for budget in self.budgets:
            seen = [
                (t, v) for t in trials if (v := _value_at(t, budget, self.budgets[0])) is not None
            ]
            usable = [(t, v) for t, v in seen if np.isfinite(v)]
            if len(usable) >= max(wanted, 2):
                points = np.array(
                    [
                        [kde.encode(d, t.params[n]) for n, d in zip(names, dists, strict=True)]
                        for t, _ in usable
                    ]
                )
                return budget, points, sign * np.array([v for _, v in usable])
        return None

    def sample_independent(
        self,
        study: optuna.Study,
        trial: FrozenTrial,
        param_name: str,
        param_distribution: BaseDistribution,
    ) -> Any:
        return self._random.sample_independent(study, trial, param_name, param_distribution)


def _value_at(trial: FrozenTrial, budget: int, full: int) -> float | None:
    value = trial.intermediate_values.get(budget)
    if value is None and budget == full and trial.state == TrialState.COMPLETE:
        value = trial.value
    return None if value is None else float(value)


def _problems(settings: Any, spec: StudySpec) -> list[FieldError]:
    errors: list[FieldError] = []
    for name in ("top_fraction", "bandwidth_factor"):
        value = getattr(settings, name)
        if value <= 0 or (name == "top_fraction" and value >= 1):
            bound = "between 0 and 1 (exclusive)" if name == "top_fraction" else "above 0"
            errors += at((*_SETTINGS, name), [f"{name} must be {bound}; got {value}"])
    epochs = study_epochs(spec)
    top = settings.max_resource or epochs
    if settings.max_resource is not None and settings.max_resource > epochs:
        errors += at(
            (*_SETTINGS, "max_resource"),
            [f"max_resource ({top}) is more than the study's {epochs} epochs"],
        )
    elif settings.min_resource >= top:
        errors += at(
            (*_SETTINGS, "min_resource"),
            [
                f"min_resource ({settings.min_resource}) must be below max_resource ({top}): "
                "no rung would stop a trial"
            ],
        )
    return errors


@dataclass(frozen=True)
class Bohb(SamplerAlgorithm):
    """The ``bohb`` algorithm: a sampler and its own pruner on the sampler loop."""

    def check(self, spec: StudySpec, data: DatasetInfo | None) -> list[FieldError]:
        errors = trains_networks(self.name, spec)
        if spec.pruner is not None:
            errors += at(("pruner",), ["bohb stops trials early itself; drop the pruner"])
        n = len(spec.objectives)
        if n > 1:
            errors += at(("algorithm",), [f"bohb optimizes a single objective; this study has {n}"])
        metric = spec.objective.metric
        if metric in METRICS and not METRICS[metric].per_epoch:
            errors += at(
                ("algorithm",),
                [f"bohb needs an objective measured every epoch; {metric} is measured at the end"],
            )
        settings, problems = self.read_settings(spec.algorithm.settings)
        if settings is None:
            return errors + problems
        return errors + _problems(settings, spec)

    def open(self, spec: StudySpec, study: StudyRef, env: Env) -> Run:
        """The sampler loop of ``spec`` with BOHB's sampler and pruner (the sampler's seed
        offset by the trials already made, as every sampler's)."""
        n_existing = len(study.storage.get_all_trials(_study_id(study), deepcopy=False))
        settings = self.stored_settings(spec.algorithm.settings)
        top = settings.max_resource or study_epochs(spec)
        seed = (spec.seed if settings.seed is None else settings.seed) + n_existing
        loaded = optuna.load_study(
            study_name=study.name,
            storage=study.storage,
            sampler=bohb_sampler(settings, top, seed),
            pruner=BohbPruner(settings.min_resource, top, settings.reduction_factor),
        )
        return StudyLoop(spec, loaded, env, kind_of(spec.task), None)


def _study_id(study: StudyRef) -> int:
    return study.storage.get_study_id_from_name(study.name)


def bohb_sampler(settings: Any, max_resource: int, seed: int) -> BohbSampler:
    """BOHB's sampler for checked ``settings``, modelling the rungs below ``max_resource`` and
    the full training."""
    values: Mapping[str, Any] = as_dict(settings)
    rungs = rungs_below(values["min_resource"], max_resource, values["reduction_factor"])
    return BohbSampler(
        [*rungs, max_resource],
        n_startup=values["n_startup"],
        top_fraction=values["top_fraction"],
        bandwidth_factor=values["bandwidth_factor"],
        random_fraction=values["random_fraction"],
        seed=seed,
    )


def _factory(space: Any, **settings: Any) -> BaseSampler:
    """The sampler alone (no study at hand: the rungs from ``max_resource`` or 1 epoch)."""
    seed = settings.pop("seed") or 0
    return bohb_sampler(BohbSettings(**settings), settings["max_resource"] or 1, seed)


BOHB = Bohb(
    name="bohb",
    description="BOHB: a density model per fidelity (good/bad kernel densities, as TPE) "
    "proposes trials; asynchronous Hyperband stops them at rungs of min_resource * "
    "reduction_factor^k epochs. Single objective, no separate pruner.",
    settings=BohbSettings,
    factory=_factory,
    multi_objective=False,
)

ALGORITHMS: dict[str, SamplerAlgorithm] = {"bohb": BOHB}
