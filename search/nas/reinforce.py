"""A REINFORCE controller as an Optuna sampler (Zoph & Le, "Neural Architecture Search with
Reinforcement Learning", ICLR 2017), simplified to independent categorical decisions.

The policy is one vector of logits per parameter, a softmax over its values (categorical
choices, or every value of an integer range with its step; log-scaled integers are the plain
set of their values). Each decision of a new trial is sampled from its softmax. The policy
learns from every finished trial in trial-number order:

- reward: the trial's *centred rank*, ``2 * (rank - 0.5) / n - 1`` in (-1, 1], where ``n``
  counts the finished trials up to and including it (by number) and ``rank`` is its mid-rank
  among them (ties share the middle), with the value negated when the study minimizes. Ranks
  make the update scale-free (accuracy or loss, any units) and robust to outliers, such as a
  diverged training's huge loss; the first trial's reward is 0.
- advantage = reward - baseline; for each decision the trial made,
  ``logits += learning_rate * advantage * (onehot(choice) - softmax(logits))`` (the gradient
  of ``log pi(choice)``), plus ``learning_rate * entropy_weight`` times the gradient of the
  policy's entropy, ``-p * (log p + H)``, which keeps it from collapsing early.
- baseline ← ``baseline_decay * baseline + (1 - baseline_decay) * reward`` (starting at 0,
  the expected centred rank).

Finished trials are COMPLETE trials and PRUNED trials with a value (their last intermediate
value), so an architecture stopped early by ASHA counts with what it reached; FAIL trials are
ignored, and so are trials that are still running (parallel workers) until they finish. Trials
that were not sampled by the policy (start-up trials, enqueued ones) are learned from the same
way. Logits are keyed by parameter name and distribution, so a conditional parameter has its
own policy, trained by the trials that had it, and sampled in ``sample_independent``.

The policy is a pure function of the study's finished trials: it is rebuilt by replaying them
in trial-number order, and what is replayed is cached up to the first trial still running, so
a service that re-creates the sampler after a restart learns exactly the same policy from the
stored trials. With parallel trials, a finished trial numbered after a running one is replayed
again (from the cached prefix) at each proposal until the running one finishes.

Not learned (sampled at random by an internal :class:`~optuna.samplers.RandomSampler`, with a
one-time warning for integers): float parameters, and integer parameters with more than 256
values (give them a step, or make them categorical). Single objective only: a study with
several objectives is refused with a ValueError at its first sampled parameter.
"""

from __future__ import annotations

import bisect
import threading
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from optuna.distributions import BaseDistribution, distribution_to_json, json_to_distribution
from optuna.samplers import BaseSampler, RandomSampler
from optuna.study import Study, StudyDirection
from optuna.trial import FrozenTrial, TrialState

from search import optuna_compat
from search.nas.evolution import (
    StudySpace,
    index_of,
    n_values,
    require_single_objective,
    trial_value,
    value_at,
)

MAX_VALUES = 256  # the most values one learned decision may have

_Key = tuple[str, str]  # (parameter name, its distribution as JSON)


def _softmax(logits: np.ndarray) -> np.ndarray:
    shifted = np.exp(logits - logits.max())
    out: np.ndarray = shifted / shifted.sum()
    return out


@dataclass
class _Policy:
    """The controller after replaying some trials: logits, baseline and the scores seen."""

    logits: dict[_Key, np.ndarray] = field(default_factory=dict)
    latest: dict[str, _Key] = field(default_factory=dict)  # name → key last learned
    baseline: float = 0.0
    scores: list[float] = field(default_factory=list)  # sorted
    numbers: list[int] = field(default_factory=list)  # trials replayed (or skipped), in order

    def copy(self) -> _Policy:
        return _Policy(
            {k: v.copy() for k, v in self.logits.items()},
            dict(self.latest),
            self.baseline,
            list(self.scores),
            list(self.numbers),
        )


class ReinforceSampler(BaseSampler):
    """A softmax policy per categorical or integer parameter, trained with REINFORCE.

    See the module's documentation for the reward, the update and how trials are replayed.

    Args:
        learning_rate: step size of the policy-gradient update (> 0).
        baseline_decay: weight of the old baseline in its moving average, in [0, 1).
        n_startup_trials: finished trials sampled at random before the policy is used (>= 0);
            they are learned from all the same.
        seed: seeds the policy's draws and the random trials.
        entropy_weight: weight of the entropy bonus in the update (>= 0).

    Raises:
        ValueError: a setting out of range.
    """

    def __init__(
        self,
        learning_rate: float = 0.3,
        baseline_decay: float = 0.9,
        n_startup_trials: int = 0,
        seed: int | None = None,
        entropy_weight: float = 0.0,
    ) -> None:
        if not _is_number(learning_rate) or not learning_rate > 0:
            raise ValueError(f"learning_rate must be > 0, got {learning_rate!r}")
        if not _is_number(baseline_decay) or not 0 <= baseline_decay < 1:
            raise ValueError(f"baseline_decay must be in [0, 1), got {baseline_decay!r}")
        if not _is_number(entropy_weight) or not entropy_weight >= 0:
            raise ValueError(f"entropy_weight must be >= 0, got {entropy_weight!r}")
        if isinstance(n_startup_trials, bool) or not isinstance(n_startup_trials, int):
            raise ValueError(f"n_startup_trials must be an int, got {n_startup_trials!r}")
        if n_startup_trials < 0:
            raise ValueError(f"n_startup_trials must be >= 0, got {n_startup_trials}")
        if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int) or seed < 0):
            raise ValueError(f"seed must be an int >= 0, got {seed!r}")
        self._lr = float(learning_rate)
        self._decay = float(baseline_decay)
        self._entropy_weight = float(entropy_weight)
        self._n_startup_trials = n_startup_trials
        self._rng = np.random.RandomState(seed)
        random_seed = None if seed is None else int(self._rng.randint(0, 2**31 - 1))
        self._random = RandomSampler(seed=random_seed)
        self._space = StudySpace()
        self._lock = threading.Lock()
        self._committed = _Policy()  # every trial up to the first one still running
        self._committed_key: tuple[int, int] | None = None
        self._current = _Policy()  # the committed prefix plus the finished trials after it
        self._trial_policy: dict[int, _Policy | None] = {}  # None: a random start-up trial
        self._warned: set[str] = set()

    def reseed_rng(self) -> None:
        """Reseed from fresh entropy (Optuna calls this for ``n_jobs > 1``)."""
        self._rng.seed()
        self._random.reseed_rng()

    # -- learning ---------------------------------------------------------------------------

    def _learnable(self, name: str, distribution: BaseDistribution) -> bool:
        """Whether the policy models this parameter (warning once about big integer ranges)."""
        count = n_values(distribution)
        if count is None:
            return False
        if count > MAX_VALUES:
            if name not in self._warned:
                self._warned.add(name)
                warnings.warn(
                    f"{type(self).__name__} samples {name} at random: it has {count} values, "
                    f"more than the {MAX_VALUES} a policy learns (give it a step or make it "
                    f"categorical)",
                    UserWarning,
                    stacklevel=3,
                )
            return False
        return count > 1

    def _learn(self, policy: _Policy, trial: FrozenTrial, score: float) -> None:
        """One REINFORCE step on ``policy`` (in place) from one finished trial."""
        less = bisect.bisect_left(policy.scores, score)
        equal = bisect.bisect_right(policy.scores, score) - less
        n = len(policy.scores) + 1
        reward = 2.0 * (less + 0.5 * (equal + 1)) / n - 1.0
        advantage = reward - policy.baseline
        for name in sorted(trial.params):
            dist = trial.distributions[name]
            if not self._learnable(name, dist):
                continue
            key = (name, distribution_to_json(dist))
            count = n_values(dist)
            assert count is not None
            logits = policy.logits.setdefault(key, np.zeros(count))
            p = _softmax(logits)
            grad = -p
            grad[index_of(dist, trial.params[name])] += 1.0
            logits += self._lr * advantage * grad
            if self._entropy_weight:
                log_p = np.log(np.maximum(p, 1e-300))
                entropy = -float(np.dot(p, log_p))
                logits += self._lr * self._entropy_weight * (-p * (log_p + entropy))
            policy.latest[name] = key
        policy.baseline = self._decay * policy.baseline + (1.0 - self._decay) * reward
        bisect.insort(policy.scores, score)

    def _sync(self, study: Study) -> _Policy:
        """Replay the study's finished trials into the policy; return it (caller holds the
        lock)."""
        key = optuna_compat.storage_key(study)
        trials = sorted(optuna_compat.cached_trials(study), key=lambda t: t.number)
        done = self._committed.numbers
        if key != self._committed_key or [t.number for t in trials[: len(done)]] != done:
            # Another study, or a view of it (Hyperband's brackets) that the cache is no prefix
            # of: replay from the start.
            self._committed, self._committed_key = _Policy(), key
        sign = -1.0 if study.direction == StudyDirection.MINIMIZE else 1.0
        policy = self._committed
        for trial in trials[len(policy.numbers) :]:
            if policy is self._committed and not trial.state.is_finished():
                policy = self._committed.copy()  # the tail after a running trial: not cached
            value = trial_value(trial)
            if value is not None:
                self._learn(policy, trial, sign * value)
            policy.numbers.append(trial.number)
        self._current = policy
        return policy

    # -- sampling ---------------------------------------------------------------------------

    def infer_relative_search_space(
        self, study: Study, trial: FrozenTrial
    ) -> dict[str, BaseDistribution]:
        """The learned (categorical and integer) parameters that every finished trial has.

        Raises:
            ValueError: the study has several objectives.
        """
        require_single_objective(self, study)
        with self._lock:
            space = self._space.calculate(study)
            return {name: dist for name, dist in space.items() if self._learnable(name, dist)}

    def sample_relative(
        self, study: Study, trial: FrozenTrial, search_space: dict[str, BaseDistribution]
    ) -> dict[str, Any]:
        """Learn from the trials finished since the last proposal, then sample each decision
        from the policy (nothing, hence random, during the start-up trials)."""
        require_single_objective(self, study)
        with self._lock:
            policy = self._sync(study)
            if len(policy.scores) < self._n_startup_trials:
                self._trial_policy[optuna_compat.trial_id_of(trial)] = None
                return {}
            self._trial_policy[optuna_compat.trial_id_of(trial)] = policy
            return {name: self._draw(policy, name, dist) for name, dist in search_space.items()}

    def _draw(self, policy: _Policy, name: str, distribution: BaseDistribution) -> Any:
        """One value of ``name`` from ``policy`` (uniform if it never learned this parameter)."""
        count = n_values(distribution)
        assert count is not None
        logits = policy.logits.get((name, distribution_to_json(distribution)))
        p = np.full(count, 1.0 / count) if logits is None else _softmax(logits)
        return value_at(distribution, int(self._rng.choice(count, p=p)))

    def sample_independent(
        self,
        study: Study,
        trial: FrozenTrial,
        param_name: str,
        param_distribution: BaseDistribution,
    ) -> Any:
        """A conditional decision from its own policy; floats, big integer ranges and start-up
        trials at random."""
        with self._lock:
            policy = self._trial_policy.get(optuna_compat.trial_id_of(trial))
            if policy is not None and self._learnable(param_name, param_distribution):
                return self._draw(policy, param_name, param_distribution)
            return self._random.sample_independent(study, trial, param_name, param_distribution)

    def after_trial(
        self,
        study: Study,
        trial: FrozenTrial,
        state: TrialState,
        values: Sequence[float] | None,
    ) -> None:
        """Forget the policy the trial was sampled from."""
        with self._lock:
            self._trial_policy.pop(optuna_compat.trial_id_of(trial), None)

    # -- inspection -------------------------------------------------------------------------

    def probabilities(self, name: str, study: Study | None = None) -> dict[Any, float]:
        """The policy's probability of each value of parameter ``name``.

        Args:
            name: a parameter the policy has learned from.
            study: when given, first learn from its finished trials; otherwise the policy as
                of the last proposal.

        Raises:
            KeyError: no finished trial has had ``name`` yet (or it is not learned: a float,
                or an integer with more than 256 values).
        """
        with self._lock:
            policy = self._sync(study) if study is not None else self._current
            key = policy.latest.get(name)
            if key is None:
                raise KeyError(f"the policy has not learned {name!r}")
            p = _softmax(policy.logits[key])
            distribution = json_to_distribution(key[1])
            return {value_at(distribution, i): float(p[i]) for i in range(len(p))}


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)
