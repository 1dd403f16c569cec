"""The NAS samplers (regularized evolution, REINFORCE) on real in-memory Optuna studies: what
each one does of its own (evolution's parents, mutations and ageing; REINFORCE's policy
gradient, entropy bonus, replay from stored trials and wide integer ranges).
"""

import warnings
from typing import Literal

import numpy as np
import optuna
import pytest
from optuna.distributions import BaseDistribution, CategoricalDistribution, IntDistribution

from search.nas import RegularizedEvolutionSampler, ReinforceSampler
from search.nas.evolution import MUTATED_ATTR, PARENT_ATTR
from search.nas.synthetic import SyntheticNAS
from tests.search._nas_samplers import OPS, _complete, _differences

# -- regularized evolution --------------------------------------------------------------------


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
