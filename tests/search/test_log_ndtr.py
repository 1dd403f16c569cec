"""TPE's log normal CDF from SciPy (search/samplers/log_ndtr.py): the same values as Optuna's
own port, and the same proposals."""

import numpy as np
import optuna
import pytest
from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution
from optuna.samplers._tpe import _truncnorm

import search.samplers  # noqa: F401  (applies the replacement)
from search.samplers import log_ndtr


def optunas_own(a: np.ndarray) -> np.ndarray:
    """Optuna's ``_log_ndtr`` as it ships: its scalar function over the array."""
    return np.frompyfunc(_truncnorm._log_ndtr_single, 1, 1)(a).astype(float)


def test_tpe_uses_scipys_log_ndtr_once_tuneforge_s_samplers_are_imported() -> None:
    assert _truncnorm._log_ndtr is log_ndtr._log_ndtr


def test_the_values_are_optunas_own_in_the_body_and_both_tails() -> None:
    a = np.concatenate([np.linspace(-60.0, 60.0, 24_001), [-1e3, -38.5, 6.0, 6.0001, 1e3]])
    ours, theirs = log_ndtr._log_ndtr(a), optunas_own(a)
    assert ours.dtype == np.float64 and ours.shape == a.shape
    np.testing.assert_allclose(ours, theirs, rtol=1e-7, atol=1e-300)  # (subnormals: -0.0)
    assert np.all(np.diff(ours[:24_001]) >= 0)  # increasing, as a log CDF
    # A 2-D array, as TPE passes for candidates x kernels.
    grid = a[:24_000].reshape(40, 600)
    np.testing.assert_allclose(log_ndtr._log_ndtr(grid), optunas_own(grid), rtol=1e-7, atol=1e-300)


SPACE = {
    "layers": IntDistribution(1, 3),
    "width": IntDistribution(32, 256, log=True),
    "dropout": FloatDistribution(0.0, 0.4),
    "lr": FloatDistribution(3e-4, 3e-2, log=True),
    "batch": CategoricalDistribution([32, 64, 128]),
    "stepped": FloatDistribution(0.0, 1.0, step=0.05),
}


def proposals(seed: int) -> list[dict[str, object]]:
    """TPE's next 5 proposals after a fixed history of 60 trials."""
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    rng = np.random.default_rng(0)
    study = optuna.create_study(
        direction="maximize",
        sampler=optuna.samplers.TPESampler(seed=seed, multivariate=True, n_startup_trials=5),
    )
    for _ in range(60):
        params = {
            "layers": int(rng.integers(1, 4)),
            "width": int(rng.integers(32, 257)),
            "dropout": float(rng.uniform(0, 0.4)),
            "lr": float(np.exp(rng.uniform(np.log(3e-4), np.log(3e-2)))),
            "batch": [32, 64, 128][int(rng.integers(0, 3))],
            "stepped": round(float(rng.integers(0, 21)) * 0.05, 2),
        }
        value = -abs(params["width"] - 120) / 100 - params["dropout"] + params["layers"] / 10
        study.add_trial(optuna.trial.create_trial(params=params, distributions=SPACE, value=value))
    found = []
    for _ in range(5):
        trial = study.ask(SPACE)
        found.append(trial.params)
        study.tell(trial, 0.0)
    return found


@pytest.mark.parametrize("seed", range(10))
def test_tpe_proposes_what_it_proposes_with_optunas_own(
    seed: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The same integers and choices; floats (drawn through the inverse CDF) equal up to the
    last bits."""
    ours = proposals(seed)
    monkeypatch.setattr(_truncnorm, "_log_ndtr", optunas_own)
    theirs = proposals(seed)
    for mine, other in zip(ours, theirs, strict=True):
        assert mine.keys() == other.keys()
        for name, value in mine.items():
            if isinstance(value, float):
                assert value == pytest.approx(other[name], rel=1e-9, abs=1e-12)
            else:
                assert value == other[name]


def test_an_optuna_without_the_function_is_left_as_it_is(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delattr(_truncnorm, "_log_ndtr")
    assert log_ndtr.use_scipy() is False
    assert not hasattr(_truncnorm, "_log_ndtr")
