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

    def set(self, **attrs: Any) -> None:
        """Attributes of the trial, written with its next :meth:`save` (each where
        :mod:`search.attrs` keeps it)."""
        self.pending.update(attrs)

    def save(self, force: bool = True) -> None:
        """Write the pending attributes and the learning curve (rewritten whole) in one
        transaction: at the trial's end, and while it runs at most every ``CURVE_EVERY_S``,
        so a short trial's attributes and short epochs do not turn into one write each."""
        now = time.monotonic()
        if not force and now - self.saved_at < CURVE_EVERY_S:
            return
        attrs = dict(self.pending)
        if len(self.curve) != self.curve_saved:
            attrs["curve"] = self.curve
        if attrs:
            trial_attrs.write(self.trial, attrs)
        self.pending.clear()
        self.curve_saved, self.saved_at = len(self.curve), now
