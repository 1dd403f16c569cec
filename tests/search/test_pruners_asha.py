"""tuneforge's in-memory ASHA: Optuna's successive halving decision for decision, without a
database read or write per decision; and the intermediate values it lets the loop batch."""

import random
from dataclasses import replace
from typing import Any

import optuna
import pytest
from optuna.pruners import SuccessiveHalvingPruner
from optuna.trial import TrialState

from search import attrs
from search.loop.inflight import InFlight
from search.loop.pruning import batched_metric, should_stop
from search.pruners_asha import AshaPruner
from search.registry import pruner
from search.spec import AlgorithmSpec, Direction, Objective
from tests.search.conftest import digits_spec

optuna.logging.set_verbosity(optuna.logging.WARNING)


def _simulate(
    direction: Direction, settings: dict[str, int], seed: int, epochs: int = 12, n: int = 60
) -> tuple[list[tuple[int, int, bool]], list[tuple[int, int, bool]]]:
    """Run the same asynchronous schedule of noisy curves past Optuna's pruner (through the
    study, as Optuna's users do) and past AshaPruner (shown the curves); each pruner's
    decisions as (trial, epoch, stopped), the last epoch of a trial left out."""
    rng = random.Random(seed)
    study = optuna.create_study(direction=direction, pruner=SuccessiveHalvingPruner(**settings))
    ours = AshaPruner(**settings)
    ours.load(study, (Objective("val_loss", direction),))
    theirs_said: list[tuple[int, int, bool]] = []
    ours_said: list[tuple[int, int, bool]] = []
    running: dict[int, tuple[optuna.Trial, list[dict[str, Any]], float]] = {}
    started = 0
    while started < n or running:
        if started < n and len(running) < 4:
            trial = study.ask()
            running[trial.number] = (trial, [], rng.random())
            started += 1
        number = rng.choice(list(running))
        trial, curve, quality = running[number]
        epoch = len(curve) + 1
        value = quality + 0.3 * rng.random() / epoch
        value = float("nan") if rng.random() < 0.02 else value
        curve.append({"epoch": epoch, "val_loss": value})
        trial.report(value, epoch)
        theirs = trial.should_prune()
        ours.observe(number, curve)
        mine = ours.judge(number, epochs) is not None
        if epoch < epochs:
            theirs_said.append((number, epoch, theirs))
            ours_said.append((number, epoch, mine))
        if epoch == epochs or theirs:  # Optuna's decision drives the schedule for both
            if theirs:
                study.tell(trial, state=TrialState.PRUNED)
            else:
                study.tell(trial, value)
            del running[number]
    return theirs_said, ours_said


@pytest.mark.parametrize("direction", ["minimize", "maximize"])
@pytest.mark.parametrize(
    "settings",
    [
        {"min_resource": 1, "reduction_factor": 3},
        {"min_resource": 2, "reduction_factor": 2},
        {"min_resource": 1, "reduction_factor": 4, "min_early_stopping_rate": 1},
    ],
)
def test_every_decision_is_optunas(direction: Direction, settings: dict[str, int]) -> None:
    for seed in range(3):
        theirs, ours = _simulate(direction, settings, seed)
        assert sum(stopped for _, _, stopped in theirs) > 5  # the schedule does prune
        assert ours == theirs


def test_the_reason_names_the_rung_the_value_and_the_bar() -> None:
    p = AshaPruner(min_resource=1, reduction_factor=2)
    study = optuna.create_study(direction="maximize")
    p.load(study, (Objective("val_accuracy", "maximize"),))
    for number, value in enumerate([0.9, 0.8, 0.5]):
        p.observe(number, [{"epoch": 1, "val_accuracy": value}])
    assert p.judge(0, 10) is None
    assert p.judge(1, 10) is not None  # 2 trials: only the best goes on
    verdict = p.judge(2, 10)
    assert verdict is not None and verdict.rung == 0
    assert verdict.reason == (
        "asha rung 0 (epoch 1): val_accuracy 0.5 is not in the top 1 of the 3 trials there "
        "(needs 0.9)"
    )
    assert p.judge(2, 1) is None  # a trial's last epoch is never cut


def test_a_restarted_scheduler_places_the_stored_trials_at_their_rungs() -> None:
    storage = optuna.storages.InMemoryStorage()
    study = optuna.create_study(storage=storage, direction="maximize")
    for value in (0.9, 0.8, 0.7):
        attrs.write(study.ask(), {"curve": [{"epoch": 1, "val_accuracy": value}]})
    fresh = AshaPruner(min_resource=1, reduction_factor=3)
    fresh.load(study, (Objective("val_accuracy", "maximize"),))
    fresh.observe(3, [{"epoch": 1, "val_accuracy": 0.85}])
    verdict = fresh.judge(3, 9)  # 4 trials at rung 0: only the top one goes on
    assert verdict is not None and "of the 4 trials" in verdict.reason


def test_asha_batches_the_intermediate_values_and_an_optuna_pruner_does_not() -> None:
    spec = replace(
        digits_spec("batched", seed=0, max_trials=2, parallelism=2, epochs=3),
        pruner=AlgorithmSpec("asha", {"reduction_factor": 2}),
    )
    algorithm = pruner("asha")
    created = algorithm.create(algorithm.read_settings({"reduction_factor": 2})[0])
    study = optuna.create_study(direction="maximize", pruner=created)
    assert batched_metric(study, spec) == "val_accuracy"
    median = optuna.create_study(direction="maximize", pruner=optuna.pruners.MedianPruner())
    assert batched_metric(median, spec) is None

    good, bad = study.ask(), study.ask()
    runs = {}
    for trial, value in ((good, 0.9), (bad, 0.5)):
        running = InFlight(trial, batched="val_accuracy")
        running.curve.append({"epoch": 1, "val_accuracy": value, "val_loss": 1 - value})
        runs[trial.number] = running
        assert study.trials[trial.number].intermediate_values == {}  # not reported per epoch
        stop = should_stop(study, spec, running, None)
        assert (stop is None) == (trial is good)
    assert stop is not None and stop["pruned_at_rung"] == 0
    for running in runs.values():
        running.save()
    assert [t.intermediate_values for t in study.trials] == [{1: 0.9}, {1: 0.5}]
    runs[good.number].curve.append({"epoch": 2, "val_accuracy": 0.95})
    runs[good.number].save()  # only the new epoch is written
    assert study.trials[good.number].intermediate_values == {1: 0.9, 2: 0.95}
    assert good._cached_frozen_trial.intermediate_values == {1: 0.9, 2: 0.95}
