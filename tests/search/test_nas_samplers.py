"""The NAS samplers (regularized evolution, REINFORCE) on real in-memory Optuna studies.

The search-quality tests run each strategy on :class:`search.nas.synthetic.SyntheticNAS`, a
fixed random table of 5**6 architectures with a known optimum, and compare its mean final
regret with random search's at the same budget over the same 10 seeds.
"""

import math
import statistics
import warnings
from collections.abc import Callable
from dataclasses import replace
from typing import Any, Literal

import numpy as np
import optuna
import pytest
from optuna.distributions import (
    BaseDistribution,
    CategoricalDistribution,
    FloatDistribution,
    IntDistribution,
)
from optuna.pruners import HyperbandPruner, SuccessiveHalvingPruner
from optuna.samplers import BaseSampler, NSGAIISampler, RandomSampler, TPESampler
from optuna.trial import TrialState, create_trial

from models.fields import as_dict
from search.nas import RegularizedEvolutionSampler, ReinforceSampler
from search.nas.evolution import MUTATED_ATTR, PARENT_ATTR, trial_value
from search.nas.synthetic import SyntheticNAS
from search.registry import study_algorithm
from search.samplers.base import SamplerAlgorithm
from search.spec import AlgorithmSpec, Objective, ParamSpec
from tests.search.conftest import digits_spec

optuna.logging.set_verbosity(optuna.logging.WARNING)

SEEDS = range(10)
BUDGET = 150
OPS = tuple(f"op{k}" for k in range(5))
SAMPLERS: dict[str, Callable[[int], BaseSampler]] = {
    "evolution": lambda seed: RegularizedEvolutionSampler(seed=seed),
    "reinforce": lambda seed: ReinforceSampler(seed=seed),
}


def _final_regret(make: Callable[[int], BaseSampler], seed: int, budget: int = BUDGET) -> float:
    nas = SyntheticNAS(seed=seed)
    study = optuna.create_study(direction="maximize", sampler=make(seed))
    study.optimize(nas.objective, n_trials=budget)
    return nas.regret(study.best_value)


@pytest.fixture(scope="module")
def random_regret() -> float:
    return statistics.mean(_final_regret(lambda s: RandomSampler(seed=s), s) for s in SEEDS)


# -- the synthetic objective ------------------------------------------------------------------


def test_synthetic_optimum_is_the_best_of_every_architecture() -> None:
    nas = SyntheticNAS(n_decisions=3, n_choices=3, seed=4)
    space = nas.space()
    values = []
    for combo in np.ndindex(3, 3, 3):
        params = {
            name: (16 * (k + 1) if isinstance(space[name], IntDistribution) else OPS[k])
            for name, k in zip(nas.names, combo, strict=True)
        }
        values.append(nas.value(params))

    assert nas.optimum() == max(values)
    assert nas.value(nas.best_params()) == pytest.approx(nas.optimum())
    assert min(values) == pytest.approx(0.45) and max(values) == pytest.approx(0.95)
    assert nas.regret(nas.optimum()) == 0.0
    assert isinstance(space["edge2"], IntDistribution)
    assert space["edge0"] == CategoricalDistribution(OPS[:3])
    assert SyntheticNAS(seed=4).optimum() == SyntheticNAS(seed=4).optimum()
    with pytest.raises(ValueError, match="takes one of"):
        nas.value({"edge0": "op9", "edge1": "op0", "edge2": 16})


# -- search quality: each strategy against random search --------------------------------------


# Measured (10 seeds, 150 trials, this machine): mean final regret random 0.0598,
# evolution 0.0134, reinforce 0.0108 (learning_rate 0.3, the default), tpe (multivariate)
# 0.0187, nsga2 (population 10) 0.0026.
@pytest.mark.parametrize(
    "make",
    [
        SAMPLERS["evolution"],
        SAMPLERS["reinforce"],
        lambda seed: TPESampler(seed=seed, multivariate=True),
        # NSGA-II (the multi-objective NAS strategy) searches one objective as well.
        lambda seed: NSGAIISampler(population_size=10, seed=seed),
    ],
    ids=["evolution", "reinforce", "tpe", "nsga2"],
)
@pytest.mark.slow  # 10 seeds x 150 trials of each strategy
def test_strategy_has_lower_mean_regret_than_random_search(
    make: Callable[[int], BaseSampler], random_regret: float
) -> None:
    regret = statistics.mean(_final_regret(make, seed) for seed in SEEDS)

    assert regret < 0.8 * random_regret, (regret, random_regret)


# -- regularized evolution --------------------------------------------------------------------


def _differences(a: dict[str, Any], b: dict[str, Any]) -> set[str]:
    return {k for k in a.keys() | b.keys() if a.get(k, object()) != b.get(k, object())}


def test_evolution_samples_randomly_then_mutates_one_choice_of_a_recent_trial() -> None:
    nas = SyntheticNAS(seed=1)
    sampler = RegularizedEvolutionSampler(population_size=10, sample_size=3, seed=0)
    study = optuna.create_study(direction="maximize", sampler=sampler)

    study.optimize(nas.objective, n_trials=60)

    trials = study.trials
    for trial in trials[:10]:
        assert PARENT_ATTR not in trial.system_attrs
    for trial in trials[10:]:
        # Sequential trials: the population was the 10 trials just before this one.
        population = trials[trial.number - 10 : trial.number]
        distances = [len(_differences(trial.params, p.params)) for p in population]
        parent = trials[trial.system_attrs[PARENT_ATTR]]
        assert parent in population
        assert _differences(trial.params, parent.params) == {trial.system_attrs[MUTATED_ATTR]}
        assert min(d for d in distances if d > 0) == 1
        assert trial.params.keys() == parent.params.keys()
    assert [t.number for t in sampler.population(study)] == list(range(50, 60))


def test_evolution_parent_is_the_best_of_the_population_and_the_oldest_die() -> None:
    # A tournament over the whole population picks its best, so the parents are predictable.
    nas = SyntheticNAS(seed=2)
    sampler = RegularizedEvolutionSampler(population_size=5, sample_size=5, seed=0)
    study = optuna.create_study(direction="maximize", sampler=sampler)
    study.enqueue_trial(nas.best_params())  # trial 0 is the optimum: a parent until it dies

    study.optimize(nas.objective, n_trials=30)

    trials = study.trials
    for trial in trials[5:]:
        window = trials[trial.number - 5 : trial.number]
        best = max(window, key=lambda t: (t.value, -t.number))
        assert trial.system_attrs[PARENT_ATTR] == best.number
    assert trials[5].system_attrs[PARENT_ATTR] == 0
    assert all(t.system_attrs[PARENT_ATTR] != 0 for t in trials[6:])


def test_evolution_minimizes_when_the_study_does() -> None:
    nas = SyntheticNAS(seed=2)
    sampler = RegularizedEvolutionSampler(population_size=5, sample_size=5, seed=1)
    study = optuna.create_study(direction="minimize", sampler=sampler)

    study.optimize(nas.objective, n_trials=20)

    for trial in study.trials[5:]:
        window = study.trials[trial.number - 5 : trial.number]
        best = min(window, key=lambda t: (t.value, t.number))
        assert trial.system_attrs[PARENT_ATTR] == best.number


def test_evolution_mutates_integers_within_their_range_and_step() -> None:
    space: dict[str, BaseDistribution] = {
        "depth": IntDistribution(1, 4),
        "width": IntDistribution(16, 128, step=16),
        "heads": IntDistribution(1, 64, log=True),
    }
    sampler = RegularizedEvolutionSampler(population_size=4, sample_size=2, seed=0)
    study = optuna.create_study(sampler=sampler)
    for _ in range(60):
        trial = study.ask(space)
        study.tell(
            trial, trial.params["depth"] * 0.1 + trial.params["width"] / trial.params["heads"]
        )

    mutated = [t.system_attrs[MUTATED_ATTR] for t in study.trials[4:]]
    assert set(mutated) == set(space)
    for t in study.trials:
        assert 1 <= t.params["depth"] <= 4
        assert t.params["width"] % 16 == 0 and 16 <= t.params["width"] <= 128
        assert 1 <= t.params["heads"] <= 64


# -- REINFORCE --------------------------------------------------------------------------------


@pytest.mark.parametrize("direction", ["maximize", "minimize"])
def test_reinforce_learns_a_trivially_learnable_choice(
    direction: Literal["maximize", "minimize"],
) -> None:
    good, bad = (1.0, 0.0) if direction == "maximize" else (0.0, 1.0)
    sampler = ReinforceSampler(seed=0)
    study = optuna.create_study(direction=direction, sampler=sampler)

    study.optimize(
        lambda t: good if t.suggest_categorical("op", OPS) == "op3" else bad, n_trials=100
    )

    p = sampler.probabilities("op", study)
    assert set(p) == set(OPS) and sum(p.values()) == pytest.approx(1.0)
    assert p["op3"] > 0.6  # uniform is 0.2; measured 0.72-0.77 over seeds 0-4
    late = [t.params["op"] for t in study.trials[-20:]]
    assert late.count("op3") > 20 * 0.2


def _complete(params: dict[str, Any], value: float, **dists: BaseDistribution) -> Any:
    return create_trial(params=params, distributions=dists, value=value)


def test_reinforce_update_is_the_policy_gradient_with_a_rank_reward() -> None:
    # Trial 0's reward is 0 (the only trial): no step. Trial 1 beats it: centred rank
    # 2 * 1.5 / 2 - 1 = 0.5, advantage 0.5 - 0, logits += lr * 0.5 * (onehot(b) - [.5, .5]).
    dist = CategoricalDistribution(("a", "b"))
    study = optuna.create_study(direction="maximize")
    study.add_trial(_complete({"c": "a"}, 1.0, c=dist))
    study.add_trial(_complete({"c": "b"}, 2.0, c=dist))
    sampler = ReinforceSampler(learning_rate=0.5, baseline_decay=0.9, seed=0)

    p = sampler.probabilities("c", study)

    logits = np.array([-0.125, 0.125])
    expected = np.exp(logits) / np.exp(logits).sum()
    assert p == pytest.approx({"a": expected[0], "b": expected[1]})


def test_reinforce_entropy_bonus_keeps_the_policy_flatter() -> None:
    def p_op3(entropy_weight: float) -> float:
        study = optuna.create_study(direction="maximize")
        dist = CategoricalDistribution(OPS)
        for k in range(60):
            study.add_trial(_complete({"op": OPS[k % 5]}, float(k % 5 == 3), op=dist))
        sampler = ReinforceSampler(learning_rate=0.5, entropy_weight=entropy_weight, seed=0)
        return sampler.probabilities("op", study)["op3"]

    assert 0.2 < p_op3(2.0) < p_op3(0.0)


def test_reinforce_rebuilds_the_same_policy_from_stored_trials() -> None:
    # A restarted service re-creates the sampler: replaying the stored trials gives the same
    # policy, whatever order the trials finished in.
    nas = SyntheticNAS(seed=5)
    space = nas.space()
    first = ReinforceSampler(seed=0)
    study = optuna.create_study(direction="maximize", sampler=first)
    straggler = study.ask(space)  # runs while later trials finish
    for _ in range(20):
        trial = study.ask(space)
        study.tell(trial, nas.value(trial.params))
    for name in space:
        fresh = ReinforceSampler(seed=123).probabilities(name, study)
        assert fresh == pytest.approx(first.probabilities(name, study))
    study.tell(straggler, nas.value(straggler.params))
    for _ in range(5):
        trial = study.ask(space)
        study.tell(trial, nas.value(trial.params))

    for name in space:
        fresh = ReinforceSampler(seed=123).probabilities(name, study)
        assert fresh == pytest.approx(first.probabilities(name, study))


def test_reinforce_samples_big_integer_ranges_at_random_with_a_warning() -> None:
    space: dict[str, BaseDistribution] = {
        "units": IntDistribution(1, 1000),
        "depth": IntDistribution(1, 8),
    }
    sampler = ReinforceSampler(seed=0)
    study = optuna.create_study(sampler=sampler)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for _ in range(10):
            trial = study.ask(space)
            study.tell(trial, trial.params["depth"])

    assert any("units" in str(w.message) and "1000 values" in str(w.message) for w in caught)
    assert sum("units" in str(w.message) for w in caught) == 1
    assert set(sampler.probabilities("depth", study)) == set(range(1, 9))
    with pytest.raises(KeyError, match="units"):
        sampler.probabilities("units", study)


# -- both samplers ----------------------------------------------------------------------------


def _proposals(make: Callable[[int], BaseSampler], seed: int, n: int = 40) -> list[dict[str, Any]]:
    nas = SyntheticNAS(seed=7)
    study = optuna.create_study(direction="maximize", sampler=make(seed))
    out = []
    for _ in range(n):
        trial = study.ask(nas.space())
        out.append(trial.params)
        study.tell(trial, nas.value(trial.params))
    return out


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


# -- registry ---------------------------------------------------------------------------------

ARCH_SPACE = (
    ParamSpec("model.block", "categorical", choices=("conv", "mlp")),
    ParamSpec("model.depth", "int", low=1, high=8),
)


def algorithm(name: str) -> SamplerAlgorithm:
    found = study_algorithm(name)
    assert isinstance(found, SamplerAlgorithm)
    return found


def create_sampler(name: str, given: dict[str, Any], space: Any, study_seed: int) -> Any:
    return algorithm(name).sampler(given, space, study_seed)


def check_settings(name: str, given: dict[str, Any]) -> tuple[dict[str, Any] | None, Any]:
    checked, errors = algorithm(name).read_settings(given)
    return (None if checked is None else as_dict(checked)), errors


def problems(name: str, given: dict[str, Any], space: Any, n_objectives: int = 1) -> list[str]:
    """What the algorithm says of a study of ``space`` with ``n_objectives`` (its checks)."""
    objectives = tuple(Objective(f"m{i}", "maximize") for i in range(n_objectives))
    spec = replace(
        digits_spec("nas", 0, 4, 1, 1),
        algorithm=AlgorithmSpec(name, given),
        search_space=space,
        objectives=objectives,
    )
    return [e.msg for e in algorithm(name).check(spec, None)]


@pytest.mark.parametrize(
    ("name", "cls"), [("evolution", RegularizedEvolutionSampler), ("reinforce", ReinforceSampler)]
)
def test_registered_with_the_study_seed(name: str, cls: type[BaseSampler]) -> None:
    sampler = create_sampler(name, {}, ARCH_SPACE, study_seed=3)

    assert isinstance(sampler, cls)
    assert algorithm(name).multi_objective is False
    assert check_settings(name, {})[0]["seed"] is None  # type: ignore[index]
    assert problems(name, {}, ARCH_SPACE) == []
    assert "single objective" in problems(name, {}, ARCH_SPACE, 2)[0]
    same_seed = {"evolution": SAMPLERS["evolution"], "reinforce": SAMPLERS["reinforce"]}[name]
    assert _proposals(lambda _: create_sampler(name, {}, ARCH_SPACE, 3), 0) == _proposals(
        same_seed, 3
    )


def test_evolution_settings_are_checked() -> None:
    assert check_settings("evolution", {"population_size": 10, "seed": 1})[0] == {
        "seed": 1,
        "population_size": 10,
        "sample_size": 5,
    }
    _, errors = check_settings("evolution", {"population_size": 1})
    assert errors[0].loc[-1] == "population_size"
    _, errors = check_settings("evolution", {"mutation_rate": 0.5})
    assert errors[0].msg.startswith("unknown setting 'mutation_rate'")
    found = problems("evolution", {"population_size": 4, "sample_size": 6}, ARCH_SPACE)
    assert found == ["sample_size (6) must be <= population_size (4)"]
    sampler = create_sampler("evolution", {"population_size": 8, "sample_size": 2}, (), 0)
    assert isinstance(sampler, RegularizedEvolutionSampler)
    assert (sampler.population_size, sampler.sample_size) == (8, 2)


def test_reinforce_settings_are_checked() -> None:
    assert check_settings("reinforce", {"learning_rate": 1})[0] == {
        "seed": None,
        "learning_rate": 1,
        "baseline_decay": 0.9,
        "n_startup_trials": 0,
        "entropy_weight": 0.0,
    }
    _, errors = check_settings("reinforce", {"baseline_decay": "high"})
    assert errors[0].loc[-1] == "baseline_decay"
    assert problems("reinforce", {"baseline_decay": 1.0, "learning_rate": 0}, ARCH_SPACE) == [
        "baseline_decay must be < 1, got 1.0",
        "learning_rate must be > 0, got 0",
    ]


@pytest.mark.parametrize("name", SAMPLERS)
def test_check_names_a_float_parameter(name: str) -> None:
    space = (*ARCH_SPACE, ParamSpec("training.lr", "float", low=1e-4, high=0.1, log=True))

    found = problems(name, {}, space)

    assert len(found) == 1
    assert "training.lr is a float" in found[0]
    assert found[0].startswith(name)
    assert "use tpe, or make it categorical" in found[0]


def test_reinforce_check_names_an_integer_with_too_many_values() -> None:
    space = (
        ParamSpec("model.width", "int", low=16, high=1024),
        ParamSpec("model.heads", "int", low=16, high=1024, step=16),
    )

    assert problems("reinforce", {}, space) == [
        "reinforce learns a policy over at most 256 values; model.width has 1,009: give it "
        "a step, or make it categorical"
    ]
    assert problems("evolution", {}, space) == []


def test_samplers_accept_a_float_space_all_the_same() -> None:
    # The check is for validation; the factory builds with any space (floats sampled randomly).
    space = (ParamSpec("x", "float", low=0.0, high=1.0), *ARCH_SPACE)
    for name in SAMPLERS:
        sampler = create_sampler(name, {"seed": 0}, space, 0)
        study = optuna.create_study(sampler=sampler)
        dists: dict[str, BaseDistribution] = {
            "x": FloatDistribution(0.0, 1.0),
            "model.block": CategoricalDistribution(("conv", "mlp")),
            "model.depth": IntDistribution(1, 8),
        }
        for _ in range(25):
            trial = study.ask(dists)
            study.tell(trial, trial.params["x"])
        assert len({t.params["x"] for t in study.trials}) == 25
