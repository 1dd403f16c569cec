"""Asynchronous successive halving (ASHA) kept in memory by the loop.

The rule is Optuna's ``SuccessiveHalvingPruner``'s, decision for decision: at rung ``k``, after
``min_resource * reduction_factor ** (min_early_stopping_rate + k)`` epochs, a trial goes on when
its value is among the top ``n // reduction_factor`` of the ``n`` trials that reached the rung
(while fewer than ``reduction_factor`` did: when it is the best of them); a NaN stops it.
Optuna's pruner reads every trial of the study from the database and writes a system attribute
at each rung of each trial; this one is an :class:`~search.loop.pruning.EpochPruner`: it reads
the study once (a resumed study's curves) and keeps each trial's value at each rung in memory,
so a decision costs the scheduler no database round trip and the loop needs no per-epoch report
to Optuna. Unlike Optuna's, it never stops a trial at its last epoch (the epochs are spent; the
result is kept).
"""

import bisect
import math
from collections.abc import Sequence

import optuna

from search.loop.pruning import EpochPruner, Verdict, curve_value
from search.spec import Objective


class RungPruner(EpochPruner):
    """What ASHA-style pruners share: rung ``k`` decides after ``min_resource *
    reduction_factor ** (min_early_stopping_rate + k)`` epochs."""

    def __init__(
        self, min_resource: int = 1, reduction_factor: int = 3, min_early_stopping_rate: int = 0
    ) -> None:
        super().__init__()
        self.min_resource = min_resource
        self.eta = reduction_factor
        self.rate = min_early_stopping_rate

    def step(self, rung: int) -> int:
        """The epoch after which rung ``rung`` decides."""
        return int(self.min_resource * self.eta ** (self.rate + rung))

    def decides(self, epochs: int) -> frozenset[int]:
        return frozenset(e for e in range(1, epochs + 1) if self.rung_of(e) is not None)

    def rung_of(self, epoch: int) -> int | None:
        """The rung that decides after ``epoch``, or None."""
        k = 0
        while (step := self.step(k)) <= epoch:
            if step == epoch:
                return k
            k += 1
        return None


class AshaPruner(RungPruner):
    """ASHA on the study's single objective (see the module docstring)."""

    def __init__(
        self, min_resource: int = 1, reduction_factor: int = 3, min_early_stopping_rate: int = 0
    ) -> None:
        super().__init__(min_resource, reduction_factor, min_early_stopping_rate)
        # rung -> the values of the trials that reached it, higher is better, sorted; and which
        # trials those are (a trial is recorded at a rung once).
        self._sorted: dict[int, list[float]] = {}
        self._seen: dict[int, set[int]] = {}

    def load(self, study: optuna.Study, objectives: Sequence[Objective]) -> None:
        """Read the study once (see :class:`EpochPruner`), then place every earlier trial at the
        rungs its curve reached, as Optuna's pruner recorded it there."""
        first = not self._loaded
        super().load(study, objectives)
        if first:
            for number in list(self.curves):
                for k in range(self._top_rung(len(self.curves[number])) + 1):
                    self._record(number, k)

    def _top_rung(self, epochs: int) -> int:
        k = -1
        while self.step(k + 1) <= epochs:
            k += 1
        return k

    def _value(self, number: int, rung: int) -> float | None:
        metric = self.objectives[0].metric
        value = curve_value(self.curves[number], self.step(rung), metric)
        if value is None or math.isnan(value):
            return value
        return -value if self.objectives[0].direction == "minimize" else value

    def _record(self, number: int, rung: int) -> None:
        seen = self._seen.setdefault(rung, set())
        value = self._value(number, rung)
        if number in seen or value is None or math.isnan(value):
            return
        seen.add(number)
        bisect.insort(self._sorted.setdefault(rung, []), value)

    def judge(self, number: int, epochs: int | None) -> Verdict | None:
        epoch = len(self.curves.get(number, []))
        rung = self.rung_of(epoch)
        if rung is None:
            return None
        value = self._value(number, rung)
        if value is None:
            return None
        self._record(number, rung)
        if epochs is not None and epoch >= epochs:
            return None  # its last epoch: nothing left to save
        metric = self.objectives[0].metric
        where = f"asha rung {rung} (epoch {epoch})"
        if math.isnan(value):
            return Verdict(rung, f"{where}: {metric} is NaN")
        competing = self._sorted[rung]
        n = len(competing)
        keep = max(1, n // self.eta)
        threshold = competing[-keep]
        if value >= threshold:
            return None
        sign = -1.0 if self.objectives[0].direction == "minimize" else 1.0
        return Verdict(
            rung,
            f"{where}: {metric} {sign * value:.4g} is not in the top {keep} of the {n} trials "
            f"there (needs {sign * threshold:.4g})",
        )
