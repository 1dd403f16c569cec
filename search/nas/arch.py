"""What the architecture-aware samplers (``local_search``, ``predictor``) share: an architecture
as a tuple of choice indices, the set of architectures already seen, one-edit neighbourhoods,
and the registry entry that refuses spaces they cannot search.

An *architecture* is one value per searched parameter, each as its index among the values of a
categorical or integer distribution (:func:`search.nas.evolution.index_of`), in the sorted
order of the parameter names. Such samplers never propose an architecture twice: every trial of
the study whose parameters make an architecture counts as seen (finished, failed, running or
waiting), and so does every architecture the sampler proposed itself and whose trial has not
reported its parameters yet. With parallel workers, proposals in flight are therefore never
repeated. Only when every architecture of the space has been seen does a sampler repeat one,
or when it repeats one on purpose (:meth:`ArchSampler.repeat`: ``predictor`` with
``replicate_every``, for noisy objectives).

The searched parameters are the study's (its search-space entries without conditions) when the
sampler is built with them, as the registry does; built without, they are the categorical and
integer parameters common to every finished trial (Optuna's intersection search space), and
the first trials are sampled at random. Conditional parameters and floats are sampled at random
by an internal :class:`~optuna.samplers.RandomSampler`.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from functools import cached_property
from typing import Any

import numpy as np
from optuna.distributions import BaseDistribution
from optuna.samplers import BaseSampler, RandomSampler
from optuna.study import Study
from optuna.trial import FrozenTrial, TrialState

from models.data import DatasetInfo
from search import optuna_compat
from search.algorithm import FieldError
from search.nas.evolution import (
    StudySpace,
    index_of,
    n_values,
    require_single_objective,
    scored_trials,
    value_at,
)
from search.samplers.base import SamplerAlgorithm, Space
from search.space import to_distribution
from search.spec import ParamSpec, StudySpec

MAX_CHOICES = 64  # the most values an integer may have to be searched as a choice
RANDOM_TRIES = 2_000  # rejection-sampling draws for an unseen architecture before enumerating
ENUMERATE_UP_TO = 200_000  # spaces this small are enumerated when rejection sampling fails

Arch = tuple[int, ...]
_FINISHED = (TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL)


def _int_values(p: ParamSpec) -> int:
    assert p.low is not None and p.high is not None
    step = 1 if p.log else int(p.step or 1)
    return int(p.high - p.low) // step + 1


def space_problems(name: str, space: Space) -> list[str]:
    """Why ``name`` cannot search ``space``: a float, or an integer with too many values."""
    problems = []
    for p in space:
        if p.kind == "float":
            problems.append(
                f"{name} searches categorical choices; {p.name} is a float: make it "
                f"categorical (a list of values), or use tpe"
            )
        elif p.kind == "int" and _int_values(p) > MAX_CHOICES:
            problems.append(
                f"{name} treats integers as categorical choices, at most {MAX_CHOICES} values; "
                f"{p.name} has {_int_values(p):,}: list its values as a categorical, give it a "
                f"step, or use tpe"
            )
    return problems


@dataclass(frozen=True)
class ArchSamplerAlgorithm(SamplerAlgorithm):
    """A sampler of categorical architectures: a space it cannot search is refused at
    ``algorithm.name`` (the algorithm is the wrong choice for it), settings at their own path."""

    def check(self, spec: StudySpec, data: DatasetInfo | None) -> list[FieldError]:
        errors = super().check(spec, data)
        return [
            FieldError(("algorithm", "name"), e.msg) if e.loc == ("algorithm",) else e
            for e in errors
        ]


def fixed_space(space: Space) -> dict[str, BaseDistribution]:
    """The unconditional categorical and integer parameters of a study's space that have more
    than one value, as Optuna distributions."""
    out: dict[str, BaseDistribution] = {}
    for p in space:
        if p.when or p.kind == "float":
            continue
        dist = to_distribution(p)
        if (n_values(dist) or 0) > 1:
            out[p.name] = dist
    return out


@dataclass(frozen=True)
class History:
    """The study as an architecture sampler sees it at one ask.

    ``scores``: each finished architecture's best score (higher is better); ``finished``: every
    architecture of a finished trial (failed included); ``seen``: ``finished``, running and
    waiting trials, and the sampler's own proposals.
    """

    names: tuple[str, ...]
    sizes: tuple[int, ...]
    samples: dict[Arch, list[tuple[int, float]]]  # every scored trial's (number, score)
    finished: set[Arch]
    seen: set[Arch]
    trials: dict[Arch, int]  # trials of each architecture, whatever their state

    @cached_property
    def scores(self) -> dict[Arch, float]:
        """Each scored architecture's best score."""
        return {arch: max(score for _, score in got) for arch, got in self.samples.items()}

    @cached_property
    def first(self) -> dict[Arch, int]:
        """The number of each scored architecture's first scored trial."""
        return {arch: got[0][0] for arch, got in self.samples.items()}

    def mean(self, arch: Arch) -> float:
        """The mean score of the architecture's scored trials."""
        got = self.samples[arch]
        return sum(score for _, score in got) / len(got)

    @property
    def total(self) -> int:
        return math.prod(self.sizes)

    def best(self, archs: Iterable[Arch]) -> Arch | None:
        """The highest-scoring of ``archs`` (the earliest on ties), None if none is scored."""
        scored = [a for a in archs if a in self.scores]
        return max(scored, key=lambda a: (self.scores[a], -self.first[a]), default=None)

    def neighbours(self, arch: Arch) -> list[Arch]:
        """Every architecture one edit away (one parameter takes another value)."""
        out = []
        for i, size in enumerate(self.sizes):
            for v in range(size):
                if v != arch[i]:
                    out.append((*arch[:i], v, *arch[i + 1 :]))
        return out

    def unseen_neighbours(self, arch: Arch) -> list[Arch]:
        return [a for a in self.neighbours(arch) if a not in self.seen]

    def random_unseen(self, rng: np.random.RandomState) -> Arch | None:
        """A uniformly random architecture not seen yet (None when every one has been)."""
        if len(self.seen) >= self.total:
            return None
        for _ in range(RANDOM_TRIES):
            arch = tuple(int(rng.randint(s)) for s in self.sizes)
            if arch not in self.seen:
                return arch
        if self.total > ENUMERATE_UP_TO:
            return None
        left = [a for a in np.ndindex(*self.sizes) if tuple(a) not in self.seen]
        return tuple(int(v) for v in left[int(rng.randint(len(left)))]) if left else None


def arch_of(trial: FrozenTrial, space: Mapping[str, BaseDistribution]) -> Arch | None:
    """The trial's architecture, or None when it lacks a parameter or has another distribution."""
    out = []
    for name, dist in space.items():
        if name not in trial.params or trial.distributions.get(name) != dist:
            return None
        try:
            out.append(index_of(dist, trial.params[name]))
        except ValueError:
            return None
    return tuple(out)


class ArchSampler(BaseSampler):
    """Base of the samplers that propose whole architectures, never one seen before.

    Subclasses implement :meth:`propose`; this class keeps the seen set, the random trials and
    the conditional parameters.

    Args:
        space: the searched distributions (None: inferred from the finished trials).
        n_init: random architectures before :meth:`propose` is asked.
        seed: seeds every random choice.
    """

    def __init__(
        self,
        space: Mapping[str, BaseDistribution] | None = None,
        n_init: int = 10,
        seed: int | None = None,
    ) -> None:
        if isinstance(n_init, bool) or not isinstance(n_init, int) or n_init < 1:
            raise ValueError(f"n_init must be an int >= 1, got {n_init!r}")
        if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int) or seed < 0):
            raise ValueError(f"seed must be an int >= 0, got {seed!r}")
        self._fixed = (
            None
            if space is None
            else {k: space[k] for k in sorted(space) if (n_values(space[k]) or 0) > 1}
        )
        self._n_init = n_init
        self._rng = np.random.RandomState(seed)
        self._random = RandomSampler(
            seed=None if seed is None else int(self._rng.randint(2**31 - 1))
        )
        self._study_space = StudySpace()
        self._proposed: set[tuple[tuple[str, ...], Arch]] = set()  # kept: a trial may fail
        self._lock = threading.Lock()

    @property
    def n_init(self) -> int:
        """Random architectures before the strategy is used."""
        return self._n_init

    def reseed_rng(self) -> None:
        """Reseed from fresh entropy (Optuna calls this for ``n_jobs > 1``)."""
        self._rng.seed()
        self._random.reseed_rng()

    def infer_relative_search_space(
        self, study: Study, trial: FrozenTrial
    ) -> dict[str, BaseDistribution]:
        """The searched parameters, sorted by name.

        Raises:
            ValueError: the study has several objectives.
        """
        require_single_objective(self, study)
        if self._fixed is not None:
            return dict(self._fixed)
        with self._lock:
            space = self._study_space.calculate(study)
        return {k: space[k] for k in sorted(space) if (n_values(space[k]) or 0) > 1}

    def history(self, study: Study, space: Mapping[str, BaseDistribution]) -> History:
        """Scores, finished and seen architectures of ``study`` over ``space``."""
        names = tuple(space)
        sizes = tuple(int(n_values(d) or 0) for d in space.values())
        samples: dict[Arch, list[tuple[int, float]]] = {}
        for trial, score in scored_trials(study):  # by trial number
            arch = arch_of(trial, space)
            if arch is not None:
                samples.setdefault(arch, []).append((trial.number, score))
        finished: set[Arch] = set()
        seen: set[Arch] = set()
        trials: dict[Arch, int] = {}
        for trial in optuna_compat.cached_trials(study):
            arch = arch_of(trial, space)
            if arch is not None:
                seen.add(arch)
                trials[arch] = trials.get(arch, 0) + 1
                if trial.state in _FINISHED:
                    finished.add(arch)
        seen.update(a for (n, a) in self._proposed if n == names)
        return History(names, sizes, samples, finished, seen, trials)

    def propose(self, history: History, trial: FrozenTrial) -> Arch | None:
        """The next architecture (unseen), or None to sample one at random.

        Called with the lock held, once at least ``n_init`` architectures have a score.
        """
        raise NotImplementedError

    def recommended(self, history: History) -> dict[str, Any] | None:
        """What the sampler recommends now, recorded in the trial's user attribute
        ``recommended`` (None: nothing beyond the best trial)."""
        return None

    def repeat(self, history: History, trial: FrozenTrial) -> Arch | None:
        """An architecture to evaluate once more (seen before), or None to :meth:`propose`.

        Called with the lock held before :meth:`propose`; none repeats by default."""
        return None

    def sample_relative(
        self, study: Study, trial: FrozenTrial, search_space: dict[str, BaseDistribution]
    ) -> dict[str, Any]:
        """The trial's architecture: random for the first ``n_init``, then the strategy's;
        never one seen before while an unseen one is left."""
        require_single_objective(self, study)
        if not search_space:
            return {}
        with self._lock:
            history = self.history(study, search_space)
            ready = len(history.scores) >= self._n_init
            arch = self.repeat(history, trial) if ready else None
            if arch is None:  # a new one, unless repeated on purpose (a noisy objective)
                arch = self.propose(history, trial) if ready else None
                if arch is None or arch in history.seen:
                    arch = history.random_unseen(self._rng)
                if arch is None:  # every architecture seen: repeat one at random
                    arch = tuple(int(self._rng.randint(s)) for s in history.sizes)
                self._proposed.add((history.names, arch))
            recommended = self.recommended(history) if ready else None
            if recommended is not None:
                study._storage.set_trial_user_attr(trial._trial_id, "recommended", recommended)
        return {
            name: value_at(dist, i)
            for (name, dist), i in zip(search_space.items(), arch, strict=True)
        }

    def sample_independent(
        self,
        study: Study,
        trial: FrozenTrial,
        param_name: str,
        param_distribution: BaseDistribution,
    ) -> Any:
        """A parameter outside the architecture (conditional, float): at random."""
        return self._random.sample_independent(study, trial, param_name, param_distribution)
