"""A trial's events in batches (search/trials/batching.py): epochs nothing decides on ride with
the next event, within the flush bound; everything else goes at once, in order."""

from collections.abc import Iterator

import pytest
from optuna.pruners import MedianPruner, NopPruner

from search.loop.pruning import decision_epochs
from search.pruners_asha import AshaPruner
from search.pruners_curve import CurvePruner
from search.pruners_mo import MoAshaPruner
from search.trials.batching import FLUSH_S, batches
from search.trials.events import CheckpointSaved, EpochEnd, Event, Finished, Started

WHERE = Started("node", 1, "cpu")


class Clock:
    """A clock each epoch advances by ``step`` seconds."""

    def __init__(self, step: float) -> None:
        self.now, self.step = 0.0, step

    def __call__(self) -> float:
        return self.now


def training(clock: Clock, epochs: int = 20, checkpoint_every: int = 5) -> Iterator[Event]:
    yield WHERE
    for epoch in range(1, epochs + 1):
        clock.now += clock.step
        yield EpochEnd(epoch, {"val_accuracy": epoch / 100})
        if epoch % checkpoint_every == 0 and epoch < epochs:
            yield CheckpointSaved(epoch, b"state")
    yield Finished({"val_accuracy": 0.2})


def last_of(batch: list[Event]) -> str:
    event = batch[-1]
    return type(event).__name__ + (f"@{event.epoch}" if hasattr(event, "epoch") else "")


def test_fast_epochs_ride_with_the_next_decision_checkpoint_or_result() -> None:
    clock = Clock(0.001)
    found = list(batches(training(clock), frozenset({1, 3, 9}), clock=clock))
    assert [last_of(b) for b in found] == [
        "Started",
        "EpochEnd@1",
        "EpochEnd@3",
        "CheckpointSaved@5",
        "EpochEnd@9",
        "CheckpointSaved@10",
        "CheckpointSaved@15",
        "Finished",
    ]
    assert [e for b in found for e in b] == list(training(Clock(0.001)))  # all, in order
    assert sum(len(b) for b in found) == 25  # 25 events in 8 Ray objects


def test_every_epoch_goes_at_once_when_a_pruner_may_decide_after_any() -> None:
    clock = Clock(0.001)
    found = list(batches(training(clock), None, clock=clock))
    assert all(len(b) == 1 for b in found) and len(found) == 25


def test_slow_epochs_are_never_held() -> None:
    clock = Clock(FLUSH_S)  # an epoch as long as the bound: waiting for the next is too long
    found = list(batches(training(clock), frozenset(), clock=clock))
    assert all(len(b) == 1 for b in found)


@pytest.mark.parametrize("step", [0.01, 0.07, 0.2])
def test_no_epoch_is_held_past_the_bound(step: float) -> None:
    clock = Clock(step)
    times: dict[int, float] = {}

    def timed() -> Iterator[Event]:
        for event in training(clock, epochs=60, checkpoint_every=1000):
            if isinstance(event, EpochEnd):
                times[event.epoch] = clock.now
            yield event

    for batch in batches(timed(), frozenset(), clock=clock):
        epochs = [e.epoch for e in batch if isinstance(e, EpochEnd)]
        if epochs and not isinstance(batch[-1], Finished):
            assert times[epochs[-1]] - times[epochs[0]] < FLUSH_S
            assert len(epochs) > 1 or step * 2 >= FLUSH_S  # fast epochs do ride together


def test_the_epochs_held_before_a_failure_still_go_then_the_failure() -> None:
    clock = Clock(0.001)

    def failing() -> Iterator[Event]:
        yield WHERE
        for epoch in (1, 2, 3):
            yield EpochEnd(epoch, {"loss": 1.0})
        raise RuntimeError("out of memory")

    found = batches(failing(), frozenset(), clock=clock)
    assert [type(e).__name__ for e in next(found)] == ["Started"]
    assert [e.epoch for e in next(found) if isinstance(e, EpochEnd)] == [1, 2, 3]
    with pytest.raises(RuntimeError, match="out of memory"):
        next(found)


def test_the_decision_epochs_of_each_pruner() -> None:
    assert decision_epochs(NopPruner(), 20) == frozenset()
    assert decision_epochs(AshaPruner(1, 3), 20) == frozenset({1, 3, 9})
    assert decision_epochs(AshaPruner(2, 2, 1), 20) == frozenset({4, 8, 16})
    assert decision_epochs(MoAshaPruner(1, 3), 30) == frozenset({1, 3, 9, 27})
    assert decision_epochs(MedianPruner(), 20) is None  # Optuna's: after any epoch
    assert decision_epochs(CurvePruner(), 20) is None
    assert decision_epochs(AshaPruner(1, 3), None) is None  # no training length known
