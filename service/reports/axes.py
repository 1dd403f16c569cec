"""Axis fixes for the report's figures: whole-number ticks where only whole numbers mean
anything (epochs, trial numbers, integer parameters), and a readable range for a constant line.
"""

import math
from collections.abc import Sequence
from typing import Any

from optuna.distributions import IntDistribution
from optuna.trial import FrozenTrial

_MISSING_LABEL = "None"  # Optuna's tick for the trials without a parameter


def integer_step(low: float, high: float, ticks: int = 8) -> int:
    """A tick step of 1, 2 or 5 times a power of ten that gives at most about ``ticks`` ticks
    from ``low`` to ``high``; never below 1."""
    raw = (high - low) / ticks
    if raw <= 1:
        return 1
    power = int(10 ** math.floor(math.log10(raw)))
    return next(m * power for m in (1, 2, 5, 10) if m * power >= raw)


def integer_axis(values: Sequence[float]) -> dict[str, Any]:
    """Plotly axis settings that tick only whole numbers over ``values`` (plotly's own ticks
    would put epoch 1.5 between epochs 1 and 2)."""
    low, high = (min(values), max(values)) if values else (0, 1)
    return {"tickmode": "linear", "tick0": 0, "dtick": integer_step(low, high)}


def constant_value(values: Sequence[float | None]) -> float | None:
    """The one finite value of a series that never changes; ``None`` for one that does."""
    finite = {v for v in values if v is not None and math.isfinite(v)}
    return next(iter(finite)) if len(finite) == 1 else None


def constant_range(value: float) -> list[float]:
    """A y-range around a constant series: plotly draws one on -1..1, whatever its value (a
    learning rate of 0.001 would look like 0)."""
    half = abs(value) / 2 or 1.0
    return [value - half, value + half]


def _integer_params(trials: Sequence[FrozenTrial]) -> set[str]:
    """The parameters every trial drew from a linear integer range (log ranges tick at powers
    of ten already)."""
    names = {p for t in trials for p in t.params}
    return {
        p
        for p in names
        if all(
            isinstance(d, IntDistribution) and not d.log
            for t in trials
            if (d := t.distributions.get(p)) is not None
        )
    }


def parallel_integer_ticks(fig: Any, trials: Sequence[FrozenTrial]) -> Any:
    """``fig`` (Optuna's parallel coordinates of ``trials``) with whole-number ticks on the
    axes of integer parameters.

    Optuna draws each axis' ticks as annotations at ``x`` = the axis' index, five of them evenly
    spaced from the smallest value to the largest (a range of 1 to 3 ticks at 1.5 and 2.5).
    Its axes are the objective's, then the parameters sorted by name; a figure laid out
    otherwise is returned as it is.
    """
    params = sorted({p for t in trials for p in t.params})
    labels = list(fig.layout.xaxis.ticktext or ())
    first = len(labels) - len(params)
    # Optuna shortens a long name to its first 17 characters and "...".
    if first < 1 or any(
        not p.startswith(label.removesuffix("..."))
        for p, label in zip(params, labels[first:], strict=True)
    ):
        return fig
    wanted = _integer_params(trials)
    by_axis = {first + i: p for i, p in enumerate(params) if p in wanted}
    kept: list[Any] = []
    ticks: list[Any] = []
    for note in fig.layout.annotations:
        replaced = note.x in by_axis and note.text != _MISSING_LABEL
        (ticks if replaced else kept).append(note)
    for axis, name in by_axis.items():
        kept += _whole_ticks([n for n in ticks if n.x == axis], trials, name)
    fig.layout.annotations = kept
    return fig


def _whole_ticks(ticks: Sequence[Any], trials: Sequence[FrozenTrial], name: str) -> list[Any]:
    """One axis' ticks, redrawn at whole numbers between its smallest and largest value."""
    values = [int(t.params[name]) for t in trials if name in t.params]
    low, high = min(values), max(values)
    if low == high or len(ticks) < 2:
        return list(ticks)
    ends = sorted(ticks, key=lambda n: n.y)
    y_low, y_high = ends[0].y, ends[-1].y
    step = integer_step(low, high, ticks=4)
    inner = [
        v
        for v in range(math.ceil(low / step) * step, high, step)
        if v - low >= step / 2 and high - v >= step / 2
    ]
    import plotly.graph_objects as go

    return [
        go.layout.Annotation(
            ends[0], y=y_low + (v - low) / (high - low) * (y_high - y_low), text=str(v)
        )
        for v in [low, *inner, high]
    ]
