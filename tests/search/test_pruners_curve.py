"""Learning-curve extrapolation: fits on synthetic curves predict the final value, and the
``curve`` pruner stops a trial only when it is likely worse than the best finished one."""

import math
from dataclasses import replace

import numpy as np
import optuna
import pytest

from models.metrics import Direction
from search.checks import check_study
from search.loop.inflight import InFlight
from search.loop.pruning import should_stop
from search.pruners_curve import CurvePruner, forecast, worse_probability
from search.registry import pruner
from search.spec import AlgorithmSpec, Objective
from tests.search.conftest import digits_spec

EPOCHS = np.arange(1, 31, dtype=float)
SHAPES = {
    "pow3": 0.95 - 0.5 * EPOCHS**-0.8,
    "exp": 0.9 - 0.6 * np.exp(-0.3 * EPOCHS),
    "loglinear": 0.3 + 0.1 * np.log(EPOCHS),
}


@pytest.mark.parametrize("shape", SHAPES)
def test_an_exact_curve_is_extrapolated_by_its_family(shape: str) -> None:
    curve = SHAPES[shape]
    predicted = forecast(list(curve[:8]), 30)
    assert predicted is not None
    assert predicted.predictions[shape] == pytest.approx(curve[-1], abs=1e-3)
    assert predicted.mean == pytest.approx(curve[-1], abs=1e-3)


@pytest.mark.parametrize("seed", range(5))
def test_a_noisy_curve_is_predicted_within_its_uncertainty(seed: int) -> None:
    rng = np.random.default_rng(seed)
    noisy = SHAPES["pow3"] + rng.normal(0.0, 0.01, len(EPOCHS))
    predicted = forecast(list(noisy[:10]), 30)
    assert predicted is not None
    assert abs(predicted.mean - SHAPES["pow3"][-1]) < 0.04
    assert abs(predicted.mean - SHAPES["pow3"][-1]) < 3 * predicted.std + 1e-3


def test_too_short_or_broken_curves_give_no_forecast() -> None:
    assert forecast([0.1, 0.2], 10) is None
    assert forecast([0.1, math.nan, 0.2, math.inf], 10) is None


def test_the_probability_follows_the_gap_to_the_incumbent() -> None:
    predicted = forecast(list(SHAPES["exp"][:8] + 0.001 * np.sin(EPOCHS[:8])), 30)
    assert predicted is not None
    assert worse_probability(predicted, predicted.mean + 0.5) > 0.99
    assert worse_probability(predicted, predicted.mean - 0.5) < 0.01
    assert worse_probability(predicted, predicted.mean) == pytest.approx(0.5)


def pruned(direction: Direction, values: list[float], best: float, epochs: int = 30) -> bool:
    p = CurvePruner(min_epochs=3, confidence=0.95)
    p.objectives = (
        Objective("val_accuracy" if direction == "maximize" else "val_loss", direction),
    )
    metric = p.objectives[0].metric
    p.curves = {0: [{"epoch": e, metric: v} for e, v in enumerate(values, 1)]}
    p.finished(1, [best])
    return p.judge(0, epochs) is not None


def test_a_flat_curve_below_the_best_is_stopped() -> None:
    assert pruned("maximize", [0.5, 0.55, 0.57, 0.58, 0.585, 0.587], best=0.95)


def test_a_curve_rising_past_the_best_goes_on() -> None:
    rising = list(SHAPES["loglinear"][:6])  # 0.3 .. 0.48, reaching 0.64 at epoch 30
    assert not pruned("maximize", rising, best=0.6)
    assert pruned("maximize", rising, best=0.9)


def test_a_curve_past_the_best_already_goes_on() -> None:
    assert not pruned("maximize", [0.5, 0.96, 0.7], best=0.95)


def test_minimised_objectives_are_turned_around() -> None:
    loss = [2.0, 1.2, 1.0, 0.95, 0.93, 0.92]  # flattening near 0.9
    assert pruned("minimize", loss, best=0.2)
    assert not pruned("minimize", loss, best=0.95)


def test_nothing_is_decided_before_min_epochs_at_the_end_or_without_an_incumbent() -> None:
    flat = [0.5, 0.5, 0.5, 0.5]
    assert not pruned("maximize", flat[:2], best=0.9)
    assert not pruned("maximize", flat, best=0.9, epochs=4)
    p = CurvePruner()
    p.objectives = (Objective("val_accuracy", "maximize"),)
    p.curves = {0: [{"epoch": e, "val_accuracy": 0.5} for e in (1, 2, 3, 4)]}
    assert p.judge(0, 30) is None


def test_the_loop_reports_the_value_and_records_the_reason() -> None:
    algorithm = pruner("curve")
    settings, errors = algorithm.read_settings({"min_epochs": 3, "confidence": 0.9})
    assert errors == []
    study = optuna.create_study(direction="maximize", pruner=algorithm.create(settings))
    spec = replace(digits_spec("c", 0, 4, 1, 20), pruner=AlgorithmSpec("curve", {}))
    best = study.ask()
    study.tell(best, 0.97)
    trial = study.ask()
    curve = [{"epoch": e, "val_accuracy": v} for e, v in enumerate([0.4, 0.45, 0.47, 0.48], 1)]
    for epoch in (1, 2):  # fewer than min_epochs
        assert should_stop(study, spec, InFlight(trial, curve[:epoch]), None) is None
    stop = should_stop(study, spec, InFlight(trial, curve[:3]), None)
    assert stop is not None and stop["pruned_at_rung"] == 3
    assert "predicted" in stop["pruned_reason"] and "at epoch 20" in stop["pruned_reason"]
    assert "0.97" in stop["pruned_reason"]
    assert study.trials[1].intermediate_values == {1: 0.4, 2: 0.45, 3: 0.47}
    # a trial's own epochs parameter sets the horizon
    short = study.ask()
    running = InFlight(short, curve, params={"training.epochs": 4})
    assert should_stop(study, spec, running, None) is None


def test_bad_settings_and_several_objectives_are_refused() -> None:
    spec = replace(digits_spec("c", 0, 4, 1, 20), pruner=AlgorithmSpec("curve", {}))
    assert check_study(spec, None) == []
    bad = replace(spec, pruner=AlgorithmSpec("curve", {"min_epochs": 2, "confidence": 1.5}))
    assert {e.loc for e in check_study(bad, None)} == {
        ("pruner", "settings", "min_epochs"),
        ("pruner", "settings", "confidence"),
    }
    two = replace(
        spec, objectives=(Objective("val_accuracy", "maximize"), Objective("val_loss", "minimize"))
    )
    assert [e.loc for e in check_study(two, None)] == [("pruner",)]


def test_an_infeasible_trial_is_no_incumbent() -> None:
    flat = [{"epoch": e, "val_accuracy": v} for e, v in enumerate([0.5, 0.55, 0.57, 0.58], 1)]
    p = CurvePruner(min_epochs=3, confidence=0.95)
    p.objectives = (Objective("val_accuracy", "maximize"),)
    p.curves = {0: flat}
    p.finished(1, [0.95], feasible=False)  # best, but it broke a constraint
    assert p.incumbent() is None and p.judge(0, 30) is None
    p.finished(2, [0.9])
    assert p.incumbent() == pytest.approx(0.9) and p.judge(0, 30) is not None


def test_a_restarted_scheduler_reads_which_trials_were_infeasible() -> None:
    study = optuna.create_study(direction="maximize")
    for value, feasible in ((0.95, False), (0.8, True)):
        trial = study.ask()
        trial.set_user_attr("feasible", feasible)
        study.tell(trial, value)
    p = CurvePruner()
    p.load(study, (Objective("val_accuracy", "maximize"),))
    assert p.infeasible == {0}
    assert p.incumbent() == pytest.approx(0.8)
