"""``predictor``: predictor-guided evolution on the synthetic NAS table: the ensemble learns,
seeded determinism, no architecture twice (in flight included), mutations of the best, the
registry's checks, and a lower mean regret than random search."""

from typing import Any

import numpy as np
import optuna
import pytest

from search.nas import PredictorSampler
from search.nas.predictor import Ensemble, expected_improvement, one_hot
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
