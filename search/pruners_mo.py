"""Early stopping for several objectives: ASHA and a median rule on non-dominated sorting.

At a rung, every trial that reached it is placed by non-dominated sorting of its objectives
(the first front is the trials no other trial beats on every objective), ties inside a front
broken by crowding distance (a trial in a sparse part of the front goes first). Multi-objective
ASHA keeps the top 1/reduction_factor of that order; the median rule stops a trial in the worse
half at any epoch. No peer prunes a study of several objectives: Optuna's ``should_prune``
raises NotImplementedError, so the loop asks these pruners itself (:mod:`search.loop.pruning`).

An objective is ranked at an epoch when the trial has it there: a per-epoch metric at that
epoch; the parameter count, counted before the trial trains (:func:`search.constraints.
param_count`), and the latency, which the trial times on its network before its first epoch
(:func:`search.trials.train.limits`), at every epoch. An objective measured only at the end
(the MC-dropout metrics) is left out of the ranking; the reason names the objectives a trial
was ranked on.
"""

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from models.fields import setting
from models.metrics import METRICS
from search.algorithm import FieldError
from search.loop.pruning import EpochPruner, Verdict, curve_value
from search.pruners_asha import RungPruner
from search.spec import MAX_EPOCHS, MAX_TRIALS, StudySpec

Point = Sequence[float]
MAX_RANKED = 2000  # a rung ranks at most this many trials (the latest): bounded time and memory


def dominates(a: Point, b: Point) -> bool:
    """Whether ``a`` is at least as good as ``b`` on every objective and better on one (all
    minimised)."""
    return all(x <= y for x, y in zip(a, b, strict=True)) and any(
        x < y for x, y in zip(a, b, strict=True)
    )


def fronts(points: Sequence[Point]) -> list[list[int]]:
    """Non-dominated sorting (Deb et al. 2002): the indices of ``points`` front by front, the
    first front being the points no other dominates. Every objective is minimised. One
    n-by-n dominance matrix (NumPy): at :data:`MAX_RANKED` points, a few megabytes."""
    if not points:
        return []
    p = np.asarray(points, dtype=float)
    at_most = np.ones((len(p), len(p)), dtype=bool)
    below = np.zeros((len(p), len(p)), dtype=bool)
    for column in p.T:  # objective by objective: no n-by-n-by-m temporary
        at_most &= column[:, None] <= column[None, :]
        below |= column[:, None] < column[None, :]
    beats = at_most & below  # beats[i, j]: i dominates j
    beaten_by = beats.sum(axis=0)
    left = np.ones(len(p), dtype=bool)
    result: list[list[int]] = []
    while left.any():
        front = np.flatnonzero(left & (beaten_by == 0))
        result.append(front.tolist())
        left[front] = False
        beaten_by -= beats[front].sum(axis=0)
    return result


def crowding(points: Sequence[Point], front: Sequence[int]) -> dict[int, float]:
    """Crowding distance of each point of ``front``: the ends of each objective get infinity,
    the others the normalised gap between their neighbours, summed over objectives."""
    distance = {i: 0.0 for i in front}
    if len(front) <= 2:
        return {i: math.inf for i in front}
    for k in range(len(points[front[0]])):
        ordered = sorted(front, key=lambda i: points[i][k])
        low, high = points[ordered[0]][k], points[ordered[-1]][k]
        distance[ordered[0]] = distance[ordered[-1]] = math.inf
        if high == low:
            continue
        for before, i, after in zip(ordered, ordered[1:], ordered[2:], strict=False):
            distance[i] += (points[after][k] - points[before][k]) / (high - low)
    return distance


def ranking(points: Sequence[Point]) -> list[tuple[int, int]]:
    """``(index, front)`` of every point, best first: by front, then by crowding distance
    (larger first), then by index (earlier trials first)."""
    order: list[tuple[int, int]] = []
    for f, front in enumerate(fronts(points)):
        gaps = crowding(points, front)
        order += [(i, f) for i in sorted(front, key=lambda i: (-gaps[i], i))]
    return order


class _RankingPruner(EpochPruner):
    """What both rules share: the ranking of the trials that reached an epoch."""

    def _rank_at(
        self, number: int, epoch: int
    ) -> tuple[list[int], list[tuple[int, int]], list[str]] | None:
        """The trials ranked at ``epoch`` (numbers), their ranking and the objectives ranked
        on; None when the trial has none of its objectives at that epoch."""
        own, known = self.curves[number], self.known.get(number)
        used = [o for o in self.objectives if curve_value(own, epoch, o.metric, known) is not None]
        if not used:
            return None
        numbers: list[int] = []
        points: list[list[float]] = []
        others = 0
        for other, curve in sorted(self.curves.items(), reverse=True):  # the latest first
            if other != number and others >= MAX_RANKED - 1:
                continue
            values = [curve_value(curve, epoch, o.metric, self.known.get(other)) for o in used]
            if None in values:
                continue  # it did not reach the epoch
            others += other != number
            numbers.append(other)
            points.append([_minimised(v, o.direction) for v, o in zip(values, used, strict=True)])
        numbers.reverse()
        points.reverse()
        names = [f"{o.metric} ({o.direction[:3]})" for o in used]
        return numbers, ranking(points), names


def _minimised(value: float | None, direction: str) -> float:
    assert value is not None
    if math.isnan(value):
        return math.inf  # a NaN is worse than anything
    return -value if direction == "maximize" else value


@dataclass(frozen=True)
class MoAshaSettings:
    min_resource: int = setting(1, "Epochs before the first rung.", low=1, high=MAX_EPOCHS)
    reduction_factor: int = setting(3, "Keep 1 in this many at each rung.", low=2, high=100)
    min_early_stopping_rate: int = setting(0, "Skip this many rungs.", low=0, high=100)


class MoAshaPruner(_RankingPruner, RungPruner):
    """Asynchronous successive halving on non-dominated sorting: at rung ``k`` (after
    ``min_resource * reduction_factor ** (min_early_stopping_rate + k)`` epochs) a trial goes on
    when it is in the top ``n // reduction_factor`` of the ``n`` trials that reached the rung
    (while fewer than ``reduction_factor`` did, when it is on their first front)."""

    def judge(self, number: int, epochs: int | None) -> Verdict | None:
        epoch = len(self.curves.get(number, []))
        rung = self.rung_of(epoch)
        if rung is None or (epochs is not None and epoch >= epochs):
            return None  # not at a rung, or at the trial's last epoch: nothing to save
        ranked = self._rank_at(number, epoch)
        if ranked is None:
            return None
        numbers, order, names = ranked
        n = len(numbers)
        keep = n // self.eta
        position = next(p for p, (i, _) in enumerate(order) if numbers[i] == number)
        front = order[position][1]
        if (keep == 0 and front == 0) or (keep > 0 and position < keep):
            return None
        by = ", ".join(names)
        if keep == 0:
            why = f"not on the first front of the {n} trials there"
        else:
            why = f"ranked {position + 1} of {n} (front {front + 1}); only the top {keep} go on"
        return Verdict(rung, f"mo_asha rung {rung} (epoch {epoch}) on {by}: {why}")


@dataclass(frozen=True)
class MoMedianSettings:
    n_startup_trials: int = setting(
        5, "Trials that finish before pruning starts.", low=0, high=MAX_TRIALS
    )
    n_warmup_steps: int = setting(
        0, "Epochs of every trial that are never pruned.", low=0, high=MAX_EPOCHS
    )
    interval_steps: int = setting(1, "Epochs between pruning checks.", low=1, high=MAX_EPOCHS)


class MoMedianPruner(_RankingPruner):
    """Stop a trial ranked in the worse half of the trials that reached its epoch (a trial on
    their first front always goes on), once ``n_startup_trials`` trials have finished."""

    def __init__(
        self, n_startup_trials: int = 5, n_warmup_steps: int = 0, interval_steps: int = 1
    ) -> None:
        super().__init__()
        self.startup = n_startup_trials
        self.warmup = n_warmup_steps
        self.interval = interval_steps

    def judge(self, number: int, epochs: int | None) -> Verdict | None:
        epoch = len(self.curves.get(number, []))
        if epoch <= self.warmup or (epoch - self.warmup - 1) % self.interval:
            return None
        if len(self.finals) < self.startup or (epochs is not None and epoch >= epochs):
            return None
        ranked = self._rank_at(number, epoch)
        if ranked is None:
            return None
        numbers, order, names = ranked
        n = len(numbers)
        position = next(p for p, (i, _) in enumerate(order) if numbers[i] == number)
        front = order[position][1]
        if front == 0 or n < 2 or position < (n + 1) // 2:
            return None
        why = f"ranked {position + 1} of {n} (front {front + 1}), in the worse half"
        return Verdict(epoch, f"mo_median at epoch {epoch} on {', '.join(names)}: {why}")


def objective_problems(name: str, spec: StudySpec) -> list[FieldError]:
    """Why ``spec``'s objectives cannot be pruned by the multi-objective pruner ``name``:
    fewer than two, or none measured every epoch."""
    if len(spec.objectives) < 2:
        single = name.removeprefix("mo_")
        msg = f"{name} needs several objectives; for one objective use {single}"
        return [FieldError(("pruner", "name"), msg)]
    per_epoch = [
        o.metric for o in spec.objectives if o.metric not in METRICS or METRICS[o.metric].per_epoch
    ]
    if not per_epoch:
        measured = ", ".join(o.metric for o in spec.objectives)
        msg = f"{name} needs an objective measured every epoch; {measured} are measured at the end"
        return [FieldError(("pruner", "name"), msg)]
    return []
