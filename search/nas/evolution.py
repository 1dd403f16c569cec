"""Regularized (aging) evolution as an Optuna sampler, and what both NAS samplers share.

Regularized evolution (Real et al., "Regularized Evolution for Image Classifier Architecture
Search", AAAI 2019) keeps a population of the most recent architectures. Each new architecture
is a copy of a tournament winner with exactly one choice mutated, and the oldest member dies
when a new one joins, whatever its value: good architectures must keep being re-discovered,
which regularizes against lucky evaluations.

How it maps onto Optuna:

- *Finished* trials are COMPLETE trials and PRUNED trials that have a value (Optuna stores the
  last intermediate value of a pruned trial as its value; a pruned trial without one is
  skipped), so architectures stopped early by ASHA take part with their last reported value.
  FAIL trials are ignored; RUNNING trials (parallel workers) are not in the population yet.
- Until ``population_size`` trials have finished, trials are sampled at random. Afterwards the
  population is the ``population_size`` finished trials with the highest trial numbers (the
  oldest die); ``sample_size`` of them are drawn uniformly without replacement and the best
  (``study.direction``) is the parent.
- The child copies every categorical and integer parameter of the parent and mutates exactly
  one of them, picked uniformly among the parent's parameters that have more than one value:
  a categorical takes another of its choices, an integer another value of its range (with its
  step; log-scaled integers are treated as the plain set of their values), uniformly in both
  cases, never the parent's value. A uniform jump rather than a neighbour: architectural
  integers (depth, number of cells) are as often non-monotone in their effect as not.
- Parameters common to every finished trial (Optuna's intersection search space) are sampled
  in ``sample_relative``; conditional parameters (only in some trials) go through
  ``sample_independent``, which copies the parent's value when the parent had the parameter
  with the same distribution (mutating it when it is the one picked) and samples at random
  otherwise. If the mutated parameter is conditional and the child never suggests it, the child
  repeats its parent's architecture.
- Float parameters are not architectural choices: they are always sampled at random (by an
  internal :class:`~optuna.samplers.RandomSampler`), never inherited.
- Single objective only: a study with several objectives is refused with a ValueError at its
  first sampled parameter.
- The child's lineage is stored in the trial's system attributes ``evolution:parent`` (the
  parent's trial number) and ``evolution:mutated`` (the parameter mutated).

Seeded, the sampler proposes the same architectures for the same sequence of tells (one trial
at a time; with parallel trials, the order in which they finish decides the population).
"""

from __future__ import annotations

import math
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from optuna.distributions import BaseDistribution, CategoricalDistribution, IntDistribution
from optuna.samplers import BaseSampler, RandomSampler
from optuna.search_space import IntersectionSearchSpace
from optuna.study import Study, StudyDirection
from optuna.trial import FrozenTrial, TrialState

from search import optuna_compat

PARENT_ATTR = "evolution:parent"
MUTATED_ATTR = "evolution:mutated"

# -- shared by the NAS samplers ----------------------------------------------------------------


def n_values(distribution: BaseDistribution) -> int | None:
    """How many values a categorical or integer distribution has (None for floats).

    Integers count the values of their range with their step; a log-scaled integer (step 1)
    counts every integer of its range.
    """
    if isinstance(distribution, CategoricalDistribution):
        return len(distribution.choices)
    if isinstance(distribution, IntDistribution):
        step = 1 if distribution.log else distribution.step
        return (distribution.high - distribution.low) // step + 1
    return None


def value_at(distribution: BaseDistribution, index: int) -> Any:
    """The ``index``-th value of a categorical or integer distribution.

    Raises:
        TypeError: ``distribution`` is neither categorical nor integer.
    """
    if isinstance(distribution, CategoricalDistribution):
        return distribution.choices[index]
    if isinstance(distribution, IntDistribution):
        step = 1 if distribution.log else distribution.step
        return distribution.low + index * step
    raise TypeError(f"{distribution!r} has no enumerated values")


def index_of(distribution: BaseDistribution, value: Any) -> int:
    """The position of ``value`` among the values of a categorical or integer distribution.

    Raises:
        TypeError: ``distribution`` is neither categorical nor integer.
        ValueError: ``value`` is not one of its values.
    """
    if isinstance(distribution, CategoricalDistribution):
        return int(distribution.to_internal_repr(value))
    if isinstance(distribution, IntDistribution):
        step = 1 if distribution.log else distribution.step
        index, rest = divmod(int(value) - distribution.low, step)
        if rest or not distribution.low <= int(value) <= distribution.high:
            raise ValueError(f"{value!r} is not a value of {distribution!r}")
        return index
    raise TypeError(f"{distribution!r} has no enumerated values")


def trial_value(trial: FrozenTrial) -> float | None:
    """The value a NAS sampler learns from: a COMPLETE trial's value, a PRUNED trial's value or
    last intermediate value; None for anything else (FAIL, running, pruned before any report,
    NaN)."""
    if trial.state == TrialState.COMPLETE:
        value = trial.value
    elif trial.state == TrialState.PRUNED:
        value = trial.value
        if value is None and trial.intermediate_values:
            value = trial.intermediate_values[max(trial.intermediate_values)]
    else:
        return None
    if value is None or math.isnan(value):
        return None
    return float(value)


def scored_trials(study: Study) -> list[tuple[FrozenTrial, float]]:
    """Every finished trial with a value, by trial number, and its score: the value, negated
    when the study minimizes, so a higher score is always better."""
    sign = -1.0 if study.direction == StudyDirection.MINIMIZE else 1.0
    trials = optuna_compat.cached_trials(study, (TrialState.COMPLETE, TrialState.PRUNED))
    out = []
    for trial in sorted(trials, key=lambda t: t.number):
        value = trial_value(trial)
        if value is not None:
            out.append((trial, sign * value))
    return out


def require_single_objective(sampler: BaseSampler, study: Study) -> None:
    """Refuse a study with several objectives.

    Raises:
        ValueError: the study has more than one objective.
    """
    if len(study.directions) > 1:
        raise ValueError(
            f"{type(sampler).__name__} optimizes a single objective; this study has "
            f"{len(study.directions)} objectives (use nsga2 or tpe)"
        )


class StudySpace:
    """Optuna's intersection search space (pruned trials included), cached across trials and
    recomputed from scratch when the sampler is handed another study."""

    def __init__(self) -> None:
        self._key: tuple[int, int] | None = None
        self._space = IntersectionSearchSpace(include_pruned=True)

    def calculate(self, study: Study) -> dict[str, BaseDistribution]:
        """The parameters every finished trial of ``study`` has, with the same distribution."""
        key = optuna_compat.storage_key(study)
        if key != self._key:
            self._key, self._space = key, IntersectionSearchSpace(include_pruned=True)
        return self._space.calculate(study, use_cache=True)


def _check_int(name: str, value: Any, minimum: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"{name} must be an int, got {value!r}")
    if value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value}")


# -- the sampler ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Child:
    """What the sampler decided for one trial: its parent and the parameter it mutates."""

    parent: FrozenTrial
    mutated: str


class RegularizedEvolutionSampler(BaseSampler):
    """Regularized (aging) evolution over categorical and integer parameters.

    See the module's documentation for how trials, conditional parameters, floats and pruned
    trials are handled.

    Args:
        population_size: finished trials in the population (>= 2); also the number of random
            trials before evolution starts.
        sample_size: population members drawn for each tournament (1 … population_size).
        seed: seeds the tournaments, the mutations and the random trials.

    Raises:
        ValueError: a setting out of range.
    """

    def __init__(
        self, population_size: int = 20, sample_size: int = 5, seed: int | None = None
    ) -> None:
        _check_int("population_size", population_size, 2)
        _check_int("sample_size", sample_size, 1)
        if sample_size > population_size:
            raise ValueError(
                f"sample_size ({sample_size}) must be <= population_size ({population_size})"
            )
        if seed is not None:
            _check_int("seed", seed, 0)
        self._population_size = population_size
        self._sample_size = sample_size
        self._rng = np.random.RandomState(seed)
        random_seed = None if seed is None else int(self._rng.randint(0, 2**31 - 1))
        self._random = RandomSampler(seed=random_seed)
        self._space = StudySpace()
        self._children: dict[int, _Child] = {}
        self._lock = threading.Lock()

    @property
    def population_size(self) -> int:
        """Finished trials in the population."""
        return self._population_size

    @property
    def sample_size(self) -> int:
        """Population members drawn for each tournament."""
        return self._sample_size

    def reseed_rng(self) -> None:
        """Reseed from fresh entropy (Optuna calls this for ``n_jobs > 1``)."""
        self._rng.seed()
        self._random.reseed_rng()

    def infer_relative_search_space(
        self, study: Study, trial: FrozenTrial
    ) -> dict[str, BaseDistribution]:
        """The categorical and integer parameters that every finished trial has.

        Raises:
            ValueError: the study has several objectives.
        """
        require_single_objective(self, study)
        with self._lock:
            space = self._space.calculate(study)
        return {name: dist for name, dist in space.items() if (n_values(dist) or 0) > 1}

    def population(self, study: Study) -> list[FrozenTrial]:
        """The current population: the ``population_size`` most recent finished trials (by
        trial number), oldest first; fewer while fewer have finished."""
        return [t for t, _ in scored_trials(study)[-self._population_size :]]

    def sample_relative(
        self, study: Study, trial: FrozenTrial, search_space: dict[str, BaseDistribution]
    ) -> dict[str, Any]:
        """Pick a parent by tournament and return its relative parameters, one mutated.

        Returns an empty dict (random sampling) while fewer than ``population_size`` trials
        have finished.
        """
        require_single_objective(self, study)
        scored = scored_trials(study)
        if len(scored) < self._population_size:
            return {}
        population = scored[-self._population_size :]
        with self._lock:
            drawn = self._rng.choice(len(population), size=self._sample_size, replace=False)
            parent = max((population[int(i)] for i in drawn), key=lambda ts: ts[1])[0]
            mutable = sorted(
                name for name, dist in parent.distributions.items() if (n_values(dist) or 0) > 1
            )
            if not mutable:
                return {}
            mutated = mutable[int(self._rng.randint(len(mutable)))]
            child: dict[str, Any] = {}
            for name, dist in search_space.items():
                if parent.distributions.get(name) != dist:
                    continue
                value = parent.params[name]
                child[name] = self._mutate(dist, value) if name == mutated else value
            self._children[optuna_compat.trial_id_of(trial)] = _Child(parent, mutated)
        trial_id = optuna_compat.trial_id_of(trial)
        optuna_compat.set_system_attr(study, trial_id, PARENT_ATTR, parent.number)
        optuna_compat.set_system_attr(study, trial_id, MUTATED_ATTR, mutated)
        return child

    def _mutate(self, distribution: BaseDistribution, value: Any) -> Any:
        """Another value of ``distribution`` than ``value``, uniformly (caller holds the lock)."""
        count = n_values(distribution)
        assert count is not None and count > 1
        current = index_of(distribution, value)
        other = int(self._rng.randint(count - 1))
        return value_at(distribution, other + 1 if other >= current else other)

    def sample_independent(
        self,
        study: Study,
        trial: FrozenTrial,
        param_name: str,
        param_distribution: BaseDistribution,
    ) -> Any:
        """A conditional parameter: the parent's value (mutated if it is the one picked), or a
        random value (floats, random trials, a parameter the parent did not have)."""
        with self._lock:
            child = self._children.get(optuna_compat.trial_id_of(trial))
            if (
                child is not None
                and n_values(param_distribution) is not None
                and child.parent.distributions.get(param_name) == param_distribution
            ):
                value = child.parent.params[param_name]
                if param_name == child.mutated:
                    value = self._mutate(param_distribution, value)
                return value
            return self._random.sample_independent(study, trial, param_name, param_distribution)

    def after_trial(
        self,
        study: Study,
        trial: FrozenTrial,
        state: TrialState,
        values: Sequence[float] | None,
    ) -> None:
        """Forget the finished trial's parent."""
        with self._lock:
            self._children.pop(optuna_compat.trial_id_of(trial), None)
