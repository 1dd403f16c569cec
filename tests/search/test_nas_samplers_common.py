"""What both NAS samplers (regularized evolution, REINFORCE) do, on real in-memory Optuna
studies: seeded proposals repeat, conditional spaces with integers and a float, pruned trials
count with their last value and failed ones not at all, early stopping, running trials,
several objectives and bad settings refused, REINFORCE's random start-up trials.
"""

import math
from collections.abc import Callable
from typing import Any

import optuna
import pytest
from optuna.distributions import BaseDistribution, CategoricalDistribution
from optuna.pruners import HyperbandPruner, SuccessiveHalvingPruner
from optuna.samplers import BaseSampler
from optuna.trial import TrialState, create_trial

from search.nas import RegularizedEvolutionSampler, ReinforceSampler
from search.nas.evolution import MUTATED_ATTR, PARENT_ATTR, trial_value
from search.nas.synthetic import SyntheticNAS
from tests.search._nas_samplers import OPS, SAMPLERS, _complete, _differences, _proposals


@pytest.mark.parametrize("name", SAMPLERS)
def test_seeded_sampler_repeats_its_proposals(name: str) -> None:
    make = SAMPLERS[name]

    assert _proposals(make, 3) == _proposals(make, 3)
    assert _proposals(make, 3) != _proposals(make, 4)


def _conditional(trial: optuna.Trial) -> float:
    kind = trial.suggest_categorical("kind", ["conv", "mlp"])
    depth = trial.suggest_int("depth", 1, 4)
    value = 0.1 * depth
    if kind == "conv":
        value += {3: 0.3, 5: 0.5, 7: 0.2}[trial.suggest_categorical("kernel", [3, 5, 7])]
    else:
        value += trial.suggest_int("width", 16, 128, step=16) / 256
        if trial.suggest_categorical("norm", ["batch", "layer", None]) is None:
            value -= 0.1
    lr = trial.suggest_float("lr", 1e-3, 1e-1, log=True)  # floats: random
    return value - abs(math.log10(lr) + 2) * 0.01


@pytest.mark.parametrize("name", SAMPLERS)
def test_conditional_spaces_with_ints_and_a_float(name: str) -> None:
    study = optuna.create_study(direction="maximize", sampler=SAMPLERS[name](0))

    study.optimize(_conditional, n_trials=80)

    assert all(t.state == TrialState.COMPLETE for t in study.trials)
    for t in study.trials:
        expected = {"kind", "depth", "lr"} | (
            {"kernel"} if t.params["kind"] == "conv" else {"width", "norm"}
        )
        assert set(t.params) == expected
    assert {t.params["kind"] for t in study.trials} == {"conv", "mlp"}
    if name == "evolution":
        # A child keeps its parent's conditional choices, except the one it mutates.
        for t in study.trials[20:]:
            parent = study.trials[t.system_attrs[PARENT_ATTR]]
            changed = _differences(t.params, parent.params) - {"lr"}
            mutated = t.system_attrs[MUTATED_ATTR]
            assert changed <= {mutated, "kernel", "width", "norm"}
            if mutated != "kind":
                assert changed <= {mutated}
    else:
        sampler = study.sampler
        assert isinstance(sampler, ReinforceSampler)
        assert set(sampler.probabilities("norm", study)) == {"batch", "layer", None}
        with pytest.raises(KeyError):
            sampler.probabilities("lr", study)


def _pruned(params: dict[str, Any], steps: dict[int, float], **dists: BaseDistribution) -> Any:
    return create_trial(
        state=TrialState.PRUNED, params=params, distributions=dists, intermediate_values=steps
    )


def test_a_pruned_trial_counts_with_its_last_intermediate_value() -> None:
    dist = CategoricalDistribution(OPS)
    trial = _pruned({"op": "op1"}, {3: 0.7, 1: 0.2, 2: 0.5}, op=dist)

    assert trial_value(trial) == 0.7
    assert trial_value(_pruned({"op": "op1"}, {}, op=dist)) is None
    failed = create_trial(state=TrialState.FAIL, params={"op": "op1"}, distributions={"op": dist})
    assert trial_value(failed) is None


def test_evolution_population_takes_pruned_trials_and_ignores_failed_ones() -> None:
    dist = CategoricalDistribution(OPS)
    sampler = RegularizedEvolutionSampler(population_size=4, sample_size=4, seed=0)
    study = optuna.create_study(direction="maximize", sampler=sampler)
    for k in range(3):
        study.add_trial(_complete({"op": OPS[k]}, 0.1 * k, op=dist))
    for _ in range(5):
        study.add_trial(
            create_trial(state=TrialState.FAIL, params={"op": "op4"}, distributions={"op": dist})
        )
    study.add_trial(_pruned({"op": "op1"}, {}, op=dist))  # pruned before any report: no value

    trial = study.ask({"op": dist})  # 3 finished trials: still random
    assert PARENT_ATTR not in study.trials[trial.number].system_attrs
    study.tell(trial, state=TrialState.FAIL)

    study.add_trial(_pruned({"op": "op3"}, {0: 0.1, 5: 0.9}, op=dist))
    trial = study.ask({"op": dist})

    parent = study.trials[trial.number].system_attrs[PARENT_ATTR]
    assert study.trials[parent].state == TrialState.PRUNED
    assert study.trials[parent].params == {"op": "op3"}
    assert trial.params["op"] != "op3"
    assert [t.state for t in sampler.population(study)] == [TrialState.COMPLETE] * 3 + [
        TrialState.PRUNED
    ]


def test_reinforce_learns_from_pruned_trials_and_ignores_failed_ones() -> None:
    dist = CategoricalDistribution(OPS)

    def p_op3(extra: list[Any]) -> float:
        study = optuna.create_study(direction="maximize")
        for k in range(10):
            study.add_trial(_complete({"op": OPS[k % 5]}, 0.0, op=dist))
        for t in extra:
            study.add_trial(t)
        return ReinforceSampler(learning_rate=0.5, seed=0).probabilities("op", study)["op3"]

    good_failures = [
        create_trial(state=TrialState.FAIL, params={"op": "op3"}, distributions={"op": dist})
    ] * 5
    good_pruned = [_pruned({"op": "op3"}, {0: 0.5, 1: 1.0}, op=dist)] * 5

    assert p_op3(good_failures) == pytest.approx(p_op3([]))
    assert p_op3(good_pruned) > p_op3([]) + 0.1


@pytest.mark.parametrize("name", SAMPLERS)
@pytest.mark.parametrize(
    "pruner",
    [SuccessiveHalvingPruner(min_resource=1, reduction_factor=3), HyperbandPruner(1, 9)],
    ids=["asha", "hyperband"],
)
def test_samplers_run_under_early_stopping(name: str, pruner: optuna.pruners.BasePruner) -> None:
    nas = SyntheticNAS(seed=3)

    def objective(trial: optuna.Trial) -> float:
        final = nas.objective(trial)
        for epoch in range(1, 10):
            trial.report(final * epoch / 9, epoch)
            if trial.should_prune():
                raise optuna.TrialPruned
        return final

    study = optuna.create_study(direction="maximize", sampler=SAMPLERS[name](0), pruner=pruner)
    study.optimize(objective, n_trials=60)

    states = [t.state for t in study.trials]
    assert TrialState.PRUNED in states and TrialState.FAIL not in states
    if name == "evolution":
        sampler = study.sampler
        assert isinstance(sampler, RegularizedEvolutionSampler)
        assert any(t.state == TrialState.PRUNED for t in sampler.population(study))


@pytest.mark.parametrize("name", SAMPLERS)
def test_running_trials_are_not_learned_from_until_they_finish(name: str) -> None:
    nas = SyntheticNAS(seed=6)
    study = optuna.create_study(direction="maximize", sampler=SAMPLERS[name](0))
    running = [study.ask(nas.space()) for _ in range(25)]  # parallel workers
    for trial in running[:22]:
        study.tell(trial, nas.value(trial.params))

    trial = study.ask(nas.space())  # 3 trials still running
    study.tell(trial, nas.value(trial.params))
    for trial in running[22:]:
        study.tell(trial, nas.value(trial.params))

    if name == "evolution":
        parent = study.trials[25].system_attrs[PARENT_ATTR]
        assert 2 <= parent <= 21  # the 20 most recent finished trials: 2 … 21
    assert all(t.state == TrialState.COMPLETE for t in study.trials)


@pytest.mark.parametrize("name", SAMPLERS)
def test_several_objectives_are_refused(name: str) -> None:
    study = optuna.create_study(directions=["maximize", "minimize"], sampler=SAMPLERS[name](0))

    with pytest.raises(ValueError, match="single objective; this study has 2 objectives"):
        study.ask({"op": CategoricalDistribution(OPS)})


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda: RegularizedEvolutionSampler(population_size=1), "population_size must be >= 2"),
        (lambda: RegularizedEvolutionSampler(sample_size=0), "sample_size must be >= 1"),
        (lambda: RegularizedEvolutionSampler(10, 11), r"sample_size \(11\) must be <="),
        (
            lambda: RegularizedEvolutionSampler(population_size=2.5),  # type: ignore[arg-type]
            "must be an int",
        ),
        (lambda: RegularizedEvolutionSampler(seed=-1), "seed must be >= 0"),
        (lambda: ReinforceSampler(learning_rate=0), "learning_rate must be > 0"),
        (lambda: ReinforceSampler(baseline_decay=1.0), r"baseline_decay must be in \[0, 1\)"),
        (lambda: ReinforceSampler(baseline_decay=-0.1), "baseline_decay must be in"),
        (lambda: ReinforceSampler(n_startup_trials=-1), "n_startup_trials must be >= 0"),
        (lambda: ReinforceSampler(entropy_weight=-1.0), "entropy_weight must be >= 0"),
        (lambda: ReinforceSampler(seed=True), "seed must be an int"),
    ],
)
def test_bad_settings_are_refused(make: Callable[[], BaseSampler], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        make()


def test_reinforce_startup_trials_are_random_then_the_policy_takes_over() -> None:
    # A huge learning rate makes the policy all but deterministic after a few trials.
    sampler = ReinforceSampler(learning_rate=50.0, n_startup_trials=10, seed=0)
    study = optuna.create_study(direction="maximize", sampler=sampler)

    study.optimize(lambda t: float(t.suggest_categorical("op", OPS) == "op3"), n_trials=20)

    ops = [t.params["op"] for t in study.trials]
    assert len(set(ops[:10])) >= 3 and "op3" in ops[:10]
    assert ops[10:] == ["op3"] * 10
