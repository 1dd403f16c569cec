"""What the loop keeps of each trial in flight, and when it writes it to the database."""

import time
from dataclasses import dataclass, field
from typing import Any

import optuna

from search import attrs as trial_attrs

CURVE_EVERY_S = 1.0  # longest a running trial's stored curve lags its last epoch


@dataclass
class InFlight:
    """A trial in flight: its Optuna trial, its learning curve, and attributes to write."""

    trial: optuna.Trial
    curve: list[dict[str, Any]] = field(default_factory=list)
    reported: int = 0  # the last epoch whose value Optuna already holds (a resumed trial's)
    curve_saved: int = 0  # epochs of the curve written to the database
    saved_at: float = field(default_factory=time.monotonic)  # of the last write
    params: dict[str, Any] = field(default_factory=dict)  # set by the kind (a one-shot search)
    notes: dict[str, Any] = field(default_factory=dict)  # the trial kind's own bookkeeping
    pending: dict[str, Any] = field(default_factory=dict)  # attributes not yet written
    # The objective whose per-epoch values reach Optuna with each save (its intermediate
    # values, batched) rather than one write per epoch; None: the loop reports each epoch
    # (an Optuna pruner reads them at once).
    batched: str | None = None

    def set(self, **attrs: Any) -> None:
        """Attributes of the trial, written with its next :meth:`save` (each where
        :mod:`search.attrs` keeps it)."""
        self.pending.update(attrs)

    def save(self, force: bool = True) -> None:
        """Write the pending attributes, the learning curve (rewritten whole) and the batched
        objective's new intermediate values in one transaction: at the trial's end, and while
        it runs at most every ``CURVE_EVERY_S``, so a short trial's attributes and short epochs
        do not turn into one write each."""
        now = time.monotonic()
        if not force and now - self.saved_at < CURVE_EVERY_S:
            return
        attrs = dict(self.pending)
        steps: dict[int, float] = {}
        if len(self.curve) != self.curve_saved:
            attrs["curve"] = self.curve
            steps = self._steps()
        if attrs:
            trial_attrs.write(self.trial, attrs, steps)
        self.pending.clear()
        self.curve_saved, self.saved_at = len(self.curve), now
        self.reported = max(steps, default=self.reported)

    def _steps(self) -> dict[int, float]:
        """The batched objective's values of the epochs not yet written, by epoch."""
        metric = self.batched
        if metric is None:
            return {}
        return {
            int(point["epoch"]): float(point[metric])
            for point in self.curve[self.curve_saved :]
            if metric in point and int(point["epoch"]) > self.reported
        }
