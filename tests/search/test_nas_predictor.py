"""``predictor``: predictor-guided evolution on the synthetic NAS table: the ensemble learns,
seeded determinism, no architecture twice (in flight included), mutations of the best, the
registry's checks, and a lower mean regret than random search."""

import json
from typing import Any

import numpy as np
import optuna
import pytest

from search.attrs import MAX_ATTR_JSON
from search.nas import PredictorSampler
from search.nas.predictor import Ensemble, expected_improvement, one_hot, recommend
from search.nas.synthetic import SyntheticNAS
from search.spec import ParamSpec
from tests.search._nas_arch import (
    ARCH_SPACE,
    check,
    in_flight,
    key,
    mean_regret,
    proposals,
    random_mean_regret,
)


def make(nas: SyntheticNAS, seed: int, **kw: Any) -> PredictorSampler:
    return PredictorSampler(nas.space(), n_init=5, seed=seed, **kw)


def test_one_hot_marks_one_value_per_parameter() -> None:
    x = one_hot([(0, 2), (1, 0)], (2, 3))
    assert x.tolist() == [[1, 0, 0, 0, 1], [0, 1, 1, 0, 0]]


def test_the_ensemble_learns_an_additive_table_and_is_unsure_away_from_its_data() -> None:
    rng = np.random.RandomState(0)
    sizes = (5,) * 6
    effects = rng.normal(size=(6, 5))
    archs = [tuple(int(v) for v in rng.randint(5, size=6)) for _ in range(200)]
    y = np.array([sum(effects[i, c] for i, c in enumerate(a)) for a in archs])
    ensemble = Ensemble(30, n_models=5, hidden=16, seed=1)
    assert ensemble.n_weights < 600  # a few hundred weights per member
    ensemble.fit(one_hot(archs[:150], sizes), (y[:150] - y.mean()) / y.std())
    mean, std = ensemble.predict(one_hot(archs[150:], sizes))
    held_out = (y[150:] - y.mean()) / y.std()
    assert np.corrcoef(mean, held_out)[0, 1] > 0.9
    assert (std > 0).all()


def test_expected_improvement_prefers_a_higher_mean_and_then_more_doubt() -> None:
    ei = expected_improvement(np.array([0.0, 1.0, 0.0]), np.array([0.1, 0.1, 1.0]), best=0.5)
    assert ei[1] > ei[2] > ei[0] > 0


def test_same_seed_same_architectures_and_another_seed_others() -> None:
    nas = SyntheticNAS(seed=1)
    first = proposals(make, 3, 20, nas)
    assert first == proposals(make, 3, 20, nas)
    assert first != proposals(make, 4, 20, nas)


def test_never_an_architecture_twice_until_the_space_is_exhausted() -> None:
    nas = SyntheticNAS(n_decisions=3, n_choices=3, seed=2)  # 27 architectures
    seen = proposals(make, 0, 29, nas)
    assert len({key(p) for p in seen[:27]}) == 27


def test_proposals_in_flight_count_as_seen() -> None:
    nas = SyntheticNAS(seed=3)
    seen = in_flight(make, nas, told=8, asked=12)
    assert len({key(p) for p in seen}) == len(seen) == 20


def test_after_the_random_start_it_proposes_mutations_of_the_best() -> None:
    nas = SyntheticNAS(seed=4)
    study = optuna.create_study(direction="maximize", sampler=make(nas, 4, top_k=3))
    study.optimize(nas.objective, n_trials=25)
    trials = [t.params for t in study.trials]
    near = 0
    for i in range(5, 25):
        top = sorted(trials[:i], key=nas.value)[-3:]
        near += min(sum(trials[i][k] != t[k] for k in t) for t in top) == 1
    assert near >= 15  # the rest: random candidates the predictor liked better


@pytest.mark.parametrize("acquisition", ["ei", "ucb"])
def test_predictor_has_a_lower_mean_regret_than_random_search(acquisition: str) -> None:
    # measured (4 seeds, 50 trials): ei 0.027, ucb 0.004, random 0.085
    ours = mean_regret(lambda n, s: make(n, s, acquisition=acquisition), range(4), 50)
    assert ours < random_mean_regret(range(4), 50)


def test_settings_and_space_are_checked() -> None:
    assert check("predictor", ARCH_SPACE, acquisition="ucb", kappa=2.0) == []
    lr = ParamSpec("training.lr", "float", low=0.001, high=0.1)
    (error,) = check("predictor", (*ARCH_SPACE, lr))
    assert error.loc == ("algorithm", "name") and "training.lr is a float" in error.msg
    (bad,) = check("predictor", ARCH_SPACE, acquisition="pi")
    assert bad.loc == ("algorithm", "settings", "acquisition")
    (few,) = check("predictor", ARCH_SPACE, n_init=1)
    assert few.loc == ("algorithm", "settings", "n_init")
    with pytest.raises(ValueError, match="n_models"):
        PredictorSampler(n_models=0)


def noisy(nas: SyntheticNAS, seed: int) -> Any:
    """The table's value plus training-like noise (the same for no two trials)."""
    rng = np.random.RandomState(seed)

    def objective(trial: optuna.trial.BaseTrial) -> float:
        return nas.objective(trial) + float(rng.normal(0, 0.02))

    return objective


def test_replication_evaluates_the_best_rated_again_and_recommends_by_the_ensemble() -> None:
    nas = SyntheticNAS(seed=5)
    sampler = make(nas, 5, replicate_every=2, replicates=2)
    study = optuna.create_study(direction="maximize", sampler=sampler)
    study.optimize(noisy(nas, 5), n_trials=30)
    archs = [key(t.params) for t in study.trials]
    repeats = [i for i in range(30) if archs[i] in archs[:i]]
    # After 5 random trials, every second ask repeats a finished architecture: 12 or 13
    # (none when every candidate already has its three evaluations).
    assert 10 <= len(repeats) <= 13 and min(repeats) >= 5
    assert max(archs.count(a) for a in archs) <= 3  # one evaluation and at most 2 more
    for t in study.trials[5:]:
        recommended = t.user_attrs["recommended"]
        numbers = recommended["trials"]
        assert len({archs[n] for n in numbers}) == 1 and max(numbers) < t.number
        assert recommended["evaluations"] == len(numbers) <= 3
        assert len(json.dumps(recommended)) <= MAX_ATTR_JSON
    assert "recommended" not in study.trials[4].user_attrs
    # Once some are replicated, the recommendation is one of them (a finalist).
    assert len(study.trials[-1].user_attrs["recommended"]["trials"]) >= 2


def test_replicates_are_never_in_flight_twice() -> None:
    nas = SyntheticNAS(seed=6)
    sampler = make(nas, 6, replicate_every=1, replicates=1)
    study = optuna.create_study(direction="maximize", sampler=sampler)
    study.optimize(nas.objective, n_trials=5)
    asked = [study.ask(nas.space()) for _ in range(6)]  # none told: all in flight
    archs = [key(t.params) for t in study.trials]
    # Each of the 5 finished architectures may be evaluated once more, once.
    assert max(archs.count(a) for a in archs) == 2
    assert len(asked) == 6 and len(set(archs)) == 5 + 1  # the sixth ask is a new one


def test_without_replication_the_sampler_is_unchanged() -> None:
    nas = SyntheticNAS(seed=7)
    plain = proposals(make, 7, 20, nas)
    assert plain == proposals(lambda n, s: make(n, s, replicate_every=0), 7, 20, nas)
    assert len({key(p) for p in plain}) == 20


def test_recommend_is_better_than_the_luckiest_under_noise() -> None:
    """On additive tables with noise as large as the effects (20 seeds, 40 evaluations each),
    the ensemble's pick is truly better on average than the best single value."""
    lucky, rated = [], []
    for seed in range(20):
        rng = np.random.RandomState(seed)
        a, b = rng.normal(size=5) * 0.02, rng.normal(size=5) * 0.02
        archs = [(int(i), int(j)) for i, j in rng.randint(5, size=(40, 2))]
        samples = [(x, a[x[0]] + b[x[1]] + rng.normal() * 0.02) for x in archs]
        top = max(a[i] + b[j] for i, j in archs)
        best = max(samples, key=lambda s: s[1])[0]
        pick = recommend(samples, (5, 5), seed=seed)
        lucky.append(top - a[best[0]] - b[best[1]])
        rated.append(top - a[pick[0]] - b[pick[1]])
    assert np.mean(rated) < np.mean(lucky)


def test_replication_settings_are_checked() -> None:
    assert check("predictor", ARCH_SPACE, replicate_every=3, replicates=2) == []
    (bad,) = check("predictor", ARCH_SPACE, replicate_every=-1)
    assert bad.loc == ("algorithm", "settings", "replicate_every")
    (none,) = check("predictor", ARCH_SPACE, replicates=0)
    assert none.loc == ("algorithm", "settings", "replicates")
    with pytest.raises(ValueError, match="replicates"):
        PredictorSampler(replicates=0)
