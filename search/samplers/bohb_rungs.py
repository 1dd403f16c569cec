"""BOHB's early stopping: asynchronous Hyperband (Li et al. 2020, "A System for Massively
Parallel Hyperparameter Tuning"), the brackets of Hyperband each run as asynchronous successive
halving.

Rungs are at ``min_resource * reduction_factor^k`` epochs below ``max_resource``. Bracket ``s``
stops trials from rung ``s`` on (bracket 0 is the most aggressive; the last one trains every
trial in full). Trials are dealt to brackets by number, in Hyperband's proportions (bracket
with ``h`` halvings gets ``ceil((S + 1) / (h + 1) * eta^h)`` of every cycle), interleaved. At a
rung a trial goes on when it is in the top ``1 / reduction_factor`` of the values its bracket
has reported there (while fewer than ``reduction_factor`` have, when it is the best of them):
no trial waits for others, as in ASHA.
"""

import math
from collections.abc import Sequence

import optuna
from optuna.pruners import BasePruner
from optuna.study import StudyDirection
from optuna.trial import FrozenTrial

from search import optuna_compat
from search.loop.pruning import Verdict

# A trial's system attribute: how many rungs of its bracket it has passed, so a decision is
# never taken back, whichever process (a restarted service) asks next.
PASSED = "tuneforge:bohb_rungs_passed"


def rungs_below(min_resource: int, max_resource: int, reduction_factor: int) -> list[int]:
    """The rung epochs: ``min_resource * reduction_factor^k`` below ``max_resource``."""
    rungs: list[int] = []
    epoch = min_resource
    while epoch < max_resource:
        rungs.append(epoch)
        epoch *= reduction_factor
    return rungs


def bracket_schedule(n_rungs: int, reduction_factor: int) -> list[int]:
    """One cycle of bracket numbers (0 … n_rungs), each as often as Hyperband would start
    trials in it, interleaved by smooth weighted round robin."""
    top = n_rungs
    weights = [
        math.ceil((top + 1) / (top - s + 1) * reduction_factor ** (top - s)) for s in range(top + 1)
    ]
    total = sum(weights)
    current = [0] * len(weights)
    schedule: list[int] = []
    for _ in range(total):
        current = [c + w for c, w in zip(current, weights, strict=True)]
        pick = max(range(len(current)), key=lambda i: (current[i], -i))
        current[pick] -= total
        schedule.append(pick)
    return schedule


def promotable(value: float, competing: Sequence[float], eta: int, maximize: bool) -> bool:
    """Whether ``value`` is in the top ``1/eta`` of ``competing`` (itself among them); while
    there are fewer than ``eta``, whether it is the best of them. NaN never goes on."""
    if math.isnan(value):
        return False
    ranked = sorted((v for v in competing if not math.isnan(v)), reverse=maximize)
    if not ranked:
        return True
    cut = ranked[max(len(ranked) // eta - 1, 0)]
    return value >= cut if maximize else value <= cut


class BohbPruner(BasePruner):
    """Asynchronous Hyperband over epochs (see the module docstring)."""

    def __init__(self, min_resource: int, max_resource: int, reduction_factor: int) -> None:
        self.reduction_factor = reduction_factor
        self.rungs = rungs_below(min_resource, max_resource, reduction_factor)
        self.schedule = bracket_schedule(len(self.rungs), reduction_factor)
        self._decided: dict[int, int] = {}  # trial number → rungs of its bracket it passed
        self.verdicts: dict[int, Verdict] = {}  # why a trial stopped (the loop records it)

    def bracket(self, number: int) -> int:
        """The bracket of trial ``number``: the index of its first rung."""
        return self.schedule[number % len(self.schedule)]

    def rungs_of(self, number: int) -> list[int]:
        """The rung epochs at which trial ``number`` may be stopped."""
        return self.rungs[self.bracket(number) :]

    def prune(self, study: optuna.Study, trial: FrozenTrial) -> bool:
        step = trial.last_step
        if step is None:
            return False
        rungs = [r for r in self.rungs_of(trial.number) if r <= step]
        done = max(self._decided.get(trial.number, 0), int(trial.system_attrs.get(PASSED, 0)))
        if done >= len(rungs):
            return False
        maximize = study.direction == StudyDirection.MAXIMIZE
        mates = [
            t
            for t in study.get_trials(deepcopy=False)
            if self.bracket(t.number) == self.bracket(trial.number)
        ]
        stop = False
        for rung in rungs[done:]:
            value = trial.intermediate_values.get(rung)
            if value is not None:  # a resumed trial may lack the epochs before its cut
                competing = [v for t in mates if (v := t.intermediate_values.get(rung)) is not None]
                if not promotable(value, competing, self.reduction_factor, maximize):
                    stop = True
                    self.verdicts[trial.number] = self._verdict(
                        trial.number, rung, value, competing
                    )
                    break
            done += 1
        if done > self._decided.get(trial.number, 0):
            self._decided[trial.number] = done
            trial_id = optuna_compat.trial_id_of(trial)
            optuna_compat.set_system_attr(study, trial_id, PASSED, done)
        return stop

    def _verdict(self, number: int, rung: int, value: float, competing: Sequence[float]) -> Verdict:
        k = self.rungs.index(rung)
        where = f"bohb bracket {self.bracket(number)} rung {k} (epoch {rung})"
        if math.isnan(value):
            return Verdict(k, f"{where}: the value is NaN")
        n = sum(not math.isnan(v) for v in competing)
        keep = max(n // self.reduction_factor, 1)
        return Verdict(
            k,
            f"{where}: {value:.4g} is not in the top {keep} of the {n} trials of its bracket there",
        )
