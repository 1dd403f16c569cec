"""Optuna's pruners registered as early-stopping algorithms.

A pruner reads every trial's per-epoch objective (its intermediate values) and decides which
running trial to stop; the loop then cancels its Ray task at once, freeing its resources, and
records the trial as PRUNED with the epoch it stopped at. Resources are counted in epochs.
"""

from typing import Any

from optuna.pruners import (
    BasePruner,
    HyperbandPruner,
    MedianPruner,
    NopPruner,
    PatientPruner,
    PercentilePruner,
    SuccessiveHalvingPruner,
    ThresholdPruner,
)

from search.registry import Algorithm, Setting, register

_STARTUP = Setting("n_startup_trials", int, 5, "Trials that finish before pruning starts.", 0)
_WARMUP = Setting("n_warmup_steps", int, 0, "Epochs of every trial that are never pruned.", 0)
_INTERVAL = Setting("interval_steps", int, 1, "Epochs between pruning checks.", 1)

register(
    Algorithm(
        name="asha",
        kind="pruner",
        description="Asynchronous successive halving: at rungs of min_resource * "
        "reduction_factor^k epochs, only the top 1/reduction_factor of trials go on.",
        settings=(
            Setting("min_resource", int, 1, "Epochs before the first rung.", 1),
            Setting("reduction_factor", int, 3, "Keep 1 in this many at each rung.", 2),
            Setting("min_early_stopping_rate", int, 0, "Skip this many rungs.", 0),
        ),
        factory=lambda space, **kw: SuccessiveHalvingPruner(**kw),
    )
)

register(
    Algorithm(
        name="hyperband",
        kind="pruner",
        description="Hyperband: several successive-halving brackets with different "
        "aggressiveness, so a bad choice of min_resource is hedged.",
        settings=(
            Setting("min_resource", int, 1, "Epochs before the first rung.", 1),
            Setting("max_resource", int, None, "Epochs of a full trial (default: learned).", 1),
            Setting("reduction_factor", int, 3, "Keep 1 in this many at each rung.", 2),
        ),
        factory=lambda space, min_resource, max_resource, reduction_factor: HyperbandPruner(
            min_resource=min_resource,
            max_resource="auto" if max_resource is None else max_resource,
            reduction_factor=reduction_factor,
        ),
    )
)

register(
    Algorithm(
        name="median",
        kind="pruner",
        description="Stop a trial whose value is worse than the median of earlier trials at "
        "the same epoch.",
        settings=(_STARTUP, _WARMUP, _INTERVAL),
        factory=lambda space, **kw: MedianPruner(**kw),
    )
)

register(
    Algorithm(
        name="percentile",
        kind="pruner",
        description="Stop a trial outside the best `percentile` of earlier trials at the "
        "same epoch.",
        settings=(
            Setting("percentile", float, 25.0, "Keep trials in the best this-many percent.", 0),
            _STARTUP,
            _WARMUP,
            _INTERVAL,
        ),
        factory=lambda space, **kw: PercentilePruner(**kw),
    )
)


def _patient(space: Any, patience: int, min_delta: float, wrapped: str) -> BasePruner:
    from search.registry import create_pruner

    inner = None if wrapped == "none" else create_pruner(wrapped, {})
    return PatientPruner(inner if not isinstance(inner, NopPruner) else None, patience, min_delta)


register(
    Algorithm(
        name="patient",
        kind="pruner",
        description="Tolerate `patience` epochs without improvement before asking the wrapped "
        "pruner (or, with none, stop after them).",
        settings=(
            Setting("patience", int, 3, "Epochs without improvement to tolerate.", 0),
            Setting("min_delta", float, 0.0, "Smallest change that counts as improvement.", 0),
            Setting(
                "wrapped",
                str,
                "median",
                "Pruner asked after the patience runs out.",
                choices=("none", "asha", "hyperband", "median", "percentile", "threshold"),
            ),
        ),
        factory=_patient,
    )
)

register(
    Algorithm(
        name="threshold",
        kind="pruner",
        description="Stop a trial whose value leaves [lower, upper] (or turns NaN).",
        settings=(
            Setting("lower", float, None, "Stop below this."),
            Setting("upper", float, None, "Stop above this."),
            _WARMUP,
            _INTERVAL,
        ),
        factory=lambda space, **kw: ThresholdPruner(**kw),
        check=lambda settings, space, n: (
            []
            if settings.get("lower") is not None or settings.get("upper") is not None
            else ["threshold needs lower or upper"]
        ),
    )
)
