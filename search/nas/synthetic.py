"""A synthetic tabular NAS objective with a known optimum, for tests and benchmarks.

:class:`SyntheticNAS` stands in for a NAS benchmark table (NAS-Bench style): an architecture is
one choice per decision, and its "accuracy" is looked up, not trained. The table is built with
numpy from a seed: every decision ``i`` adds a main effect ``a_i[c_i]`` and a few random pairs of
decisions ``(i, j)`` add an interaction ``b_ij[c_i, c_j]``, so the landscape is mostly additive
(what independent per-decision policies can learn) with epistasis on top (what makes greedy
coordinate search and pure random search miss the optimum). The raw sum is mapped linearly onto
accuracy-like values in [0.45, 0.95] using its exact minimum and maximum, which are found by
enumerating every architecture (5**6 = 15,625 for the defaults). The direction is maximize.

Example::

    nas = SyntheticNAS(seed=3)
    study = optuna.create_study(direction="maximize")
    study.optimize(nas.objective, n_trials=100)
    print(nas.regret(study.best_value))
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping
from typing import Any

import numpy as np
import optuna
from optuna.distributions import BaseDistribution, CategoricalDistribution, IntDistribution

LOW, HIGH = 0.45, 0.95  # the worst and the best architecture's value
MAX_TABLE = 10_000_000  # architectures enumerated at most (the table is float64)
INT_BASE = 16  # integer decisions take the values 16, 32, ... (like a layer width)


class SyntheticNAS:
    """A fixed random table of architectures and their accuracy-like values.

    Decisions are named ``edge0`` … ``edge{n_decisions - 1}``. Categorical decisions choose
    among ``op0`` … ``op{n_choices - 1}``; the last ``n_int`` decisions are integers instead
    (``IntDistribution(16, 16 * n_choices, step=16)``, so choice ``k`` is the value
    ``16 * (k + 1)``), to exercise integer parameters.

    Args:
        n_decisions: how many architectural decisions (>= 1).
        n_choices: options per decision (>= 2).
        seed: seeds the table; the same seed gives the same table.
        n_pairs: interacting pairs of decisions (default: ``n_decisions``, at most every pair).
        n_int: how many of the last decisions are integers (default 1).

    Raises:
        ValueError: a setting out of range, or more than 10,000,000 architectures (the
            optimum is found by enumeration).
    """

    def __init__(
        self,
        n_decisions: int = 6,
        n_choices: int = 5,
        seed: int = 0,
        n_pairs: int | None = None,
        n_int: int = 1,
    ) -> None:
        if n_decisions < 1:
            raise ValueError(f"n_decisions must be >= 1, got {n_decisions}")
        if n_choices < 2:
            raise ValueError(f"n_choices must be >= 2, got {n_choices}")
        if not 0 <= n_int <= n_decisions:
            raise ValueError(f"n_int must be in [0, {n_decisions}], got {n_int}")
        if n_choices**n_decisions > MAX_TABLE:
            raise ValueError(
                f"{n_choices}**{n_decisions} architectures is more than {MAX_TABLE:,} to enumerate"
            )
        self.n_decisions = n_decisions
        self.n_choices = n_choices
        self.seed = seed
        self.names = tuple(f"edge{i}" for i in range(n_decisions))
        self.int_names = self.names[n_decisions - n_int :]
        self.ops = tuple(f"op{k}" for k in range(n_choices))

        rng = np.random.default_rng(seed)
        self._main = rng.normal(0.0, 1.0, size=(n_decisions, n_choices))
        all_pairs = list(itertools.combinations(range(n_decisions), 2))
        wanted = min(len(all_pairs), n_decisions if n_pairs is None else n_pairs)
        picked: list[int] = (
            [int(k) for k in rng.choice(len(all_pairs), size=wanted, replace=False)]
            if wanted
            else []
        )
        self.pairs: tuple[tuple[int, int], ...] = tuple(sorted(all_pairs[k] for k in picked))
        self._pair = rng.normal(0.0, 0.7, size=(len(self.pairs), n_choices, n_choices))

        table = self._raw_table()
        self._raw_min = float(table.min())
        self._raw_max = float(table.max())
        self._optimum = self._scale(self._raw_max)
        best = np.unravel_index(int(np.argmax(table)), table.shape)
        self._best = tuple(int(k) for k in best)

    def _raw_table(self) -> np.ndarray:
        """The raw (unscaled) value of every architecture, one axis per decision."""
        shape = (self.n_choices,) * self.n_decisions
        table = np.zeros(shape)
        for i in range(self.n_decisions):
            axes = [1] * self.n_decisions
            axes[i] = self.n_choices
            table = table + self._main[i].reshape(axes)
        for p, (i, j) in enumerate(self.pairs):
            axes = [1] * self.n_decisions
            axes[i] = axes[j] = self.n_choices
            table = table + self._pair[p].reshape(axes)
        return table

    def _scale(self, raw: float) -> float:
        return LOW + (HIGH - LOW) * (raw - self._raw_min) / (self._raw_max - self._raw_min)

    def space(self) -> dict[str, BaseDistribution]:
        """Every decision's Optuna distribution, in decision order."""
        out: dict[str, BaseDistribution] = {}
        for name in self.names:
            if name in self.int_names:
                high = INT_BASE * self.n_choices
                out[name] = IntDistribution(INT_BASE, high, step=INT_BASE)
            else:
                out[name] = CategoricalDistribution(self.ops)
        return out

    def choice_index(self, name: str, value: Any) -> int:
        """The index (0 … n_choices - 1) of ``value`` for decision ``name``.

        Raises:
            ValueError: ``value`` is not one of the decision's options.
        """
        if name in self.int_names:
            if isinstance(value, bool) or not isinstance(value, int | np.integer):
                raise ValueError(f"{name} takes an integer, got {value!r}")
            index, rest = divmod(int(value) - INT_BASE, INT_BASE)
            if rest or not 0 <= index < self.n_choices:
                raise ValueError(f"{name} takes a multiple of {INT_BASE} up to the last choice")
            return index
        if value not in self.ops:
            raise ValueError(f"{name} takes one of {', '.join(self.ops)}, got {value!r}")
        return self.ops.index(value)

    def value(self, params: Mapping[str, Any]) -> float:
        """The accuracy-like value of the architecture ``params`` (one entry per decision).

        Raises:
            KeyError: a decision is missing.
            ValueError: a decision has a value it cannot take.
        """
        idx = [self.choice_index(name, params[name]) for name in self.names]
        raw = sum(float(self._main[i, c]) for i, c in enumerate(idx))
        raw += sum(float(self._pair[p, idx[i], idx[j]]) for p, (i, j) in enumerate(self.pairs))
        return self._scale(raw)

    def optimum(self) -> float:
        """The best value of any architecture, found by exhaustive enumeration."""
        return self._optimum

    def best_params(self) -> dict[str, Any]:
        """The architecture that reaches :meth:`optimum`."""
        return {
            name: INT_BASE * (k + 1) if name in self.int_names else self.ops[k]
            for name, k in zip(self.names, self._best, strict=True)
        }

    def regret(self, best_value: float) -> float:
        """How far ``best_value`` (the best a search found) is below the optimum (>= 0)."""
        return self._optimum - best_value

    def objective(self, trial: optuna.trial.BaseTrial) -> float:
        """An objective for ``study.optimize`` (direction maximize): suggests every decision."""
        params: dict[str, Any] = {}
        for name in self.names:
            if name in self.int_names:
                high = INT_BASE * self.n_choices
                params[name] = trial.suggest_int(name, INT_BASE, high, step=INT_BASE)
            else:
                params[name] = trial.suggest_categorical(name, self.ops)
        return self.value(params)
