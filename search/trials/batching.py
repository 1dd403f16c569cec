"""A trial's events in batches: several epochs ride in one Ray object.

Every object a trial's streaming task yields costs the scheduler's process a Ray wait, a get and
a pass of its loop; on a small network that trains an epoch in a few milliseconds, a trial's
epochs cost the scheduler more than they cost the worker. An epoch that nothing decides on (no
pruner looks at it) is held back and sent with the next event, as long as it is not held longer
than ``FLUSH_S``. Anything else goes at once, with the epochs held before it: where the trial
runs, what it measures before training, an epoch at which a pruner decides (a rung of ``asha``:
the pruning decision is never late), a checkpoint (restart safety is unchanged), the result.
"""

import time
from collections.abc import Callable, Iterator
from typing import Any

from search.trials.events import EpochEnd, Event

FLUSH_S = 0.5  # the longest an epoch's metrics wait in the worker (live curves lag this much)


def run_batched(
    trial_fn: Callable[..., Iterator[Event]], decisions: frozenset[int] | None, *args: Any
) -> Iterator[list[Event]]:
    """The Ray task of every trial: ``trial_fn(*args)``'s events, in :func:`batches`."""
    yield from batches(trial_fn(*args), decisions)


def batches(
    events: Iterator[Event],
    decisions: frozenset[int] | None,
    flush_s: float = FLUSH_S,
    clock: Callable[[], float] = time.monotonic,
) -> Iterator[list[Event]]:
    """``events`` in order, grouped: a batch ends with an event the loop must see at once
    (anything but an :class:`EpochEnd`, or the end of an epoch in ``decisions``; None: every
    epoch), or when waiting for one more epoch (as long as the last one took) would hold its
    first event longer than ``flush_s``."""
    held: list[Event] = []
    oldest = last = clock()
    try:
        for event in events:
            now = clock()
            took, last = now - last, now
            if not held:
                oldest = now
            held.append(event)
            if _urgent(event, decisions) or now - oldest + took >= flush_s:
                yield held
                held = []
    except Exception:
        if held:  # the epochs before a failure still reach the trial's curve
            yield held
        raise
    if held:
        yield held


def _urgent(event: Event, decisions: frozenset[int] | None) -> bool:
    if not isinstance(event, EpochEnd):
        return True
    return decisions is None or event.epoch in decisions
