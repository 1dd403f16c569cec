"""What a study's finished trials amount to: counts by state, the best trial, the Pareto front."""

from collections.abc import Sequence

from optuna.trial import FrozenTrial, TrialState

from search.constraints import is_feasible


def trial_counts(trials: Sequence[FrozenTrial]) -> dict[str, int]:
    """Trials by state, every state present."""
    counts = {s.name: 0 for s in TrialState}
    for t in trials:
        counts[t.state.name] += 1
    return counts


def best_trial(trials: Sequence[FrozenTrial], direction: str) -> FrozenTrial | None:
    """The feasible completed trial with the best value (ties: the earliest, as in Optuna)."""
    done = [(t.value, t) for t in trials if _done(t) and t.value is not None]
    if not done:
        return None
    sign = 1.0 if direction == "maximize" else -1.0
    # max() keeps the first maximum it meets.
    return max(done, key=lambda vt: sign * vt[0])[1]


def pareto_front(trials: Sequence[FrozenTrial], directions: Sequence[str]) -> list[FrozenTrial]:
    """Feasible completed trials that no other one beats in every objective."""
    signs = [1.0 if d == "maximize" else -1.0 for d in directions]
    done = [t for t in trials if _done(t) and t.values is not None]
    scored = [(t, [s * v for s, v in zip(signs, t.values, strict=True)]) for t in done]

    def dominated(a: list[float]) -> bool:
        return any(all(x >= y for x, y in zip(b, a, strict=True)) and b != a for _, b in scored)

    return [t for t, score in scored if not dominated(score)]


def _done(trial: FrozenTrial) -> bool:
    """Completed and within its study's constraints (:mod:`search.constraints`)."""
    return trial.state == TrialState.COMPLETE and is_feasible(trial)
