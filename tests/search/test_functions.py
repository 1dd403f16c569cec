"""Synthetic objectives: each reaches its documented optimum where the literature puts it."""

import math
import time

import pytest

from search.functions import FUNCTIONS, get_function

# Where each function's global minimum lies (Surjanovic & Bingham's library of test functions).
MINIMIZERS = {
    "branin": [
        {"x1": -math.pi, "x2": 12.275},
        {"x1": math.pi, "x2": 2.275},
        {"x1": 9.42478, "x2": 2.475},
    ],
    "hartmann6": [
        {
            "x1": 0.20169,
            "x2": 0.150011,
            "x3": 0.476874,
            "x4": 0.275332,
            "x5": 0.311652,
            "x6": 0.6573,
        }
    ],
    "rosenbrock": [{"x1": 1.0, "x2": 1.0}],
    "sphere": [{"x1": 0.0, "x2": 0.0}],
    "noop": [{}],
    "sleep": [{"seconds": 0.0}],
}


def test_every_function_has_its_minimizer_listed() -> None:
    assert set(MINIMIZERS) == set(FUNCTIONS)


@pytest.mark.parametrize("name", sorted(FUNCTIONS))
def test_the_optimum_is_reached_at_the_minimizers(name: str) -> None:
    f = get_function(name)
    assert f.optimum is not None
    for point in MINIMIZERS[name]:
        assert f(point) == pytest.approx(f.optimum, abs=1e-5)


@pytest.mark.parametrize("name", ["branin", "hartmann6", "rosenbrock", "sphere"])
def test_no_point_of_the_domain_beats_the_optimum(name: str) -> None:
    import random

    f = get_function(name)
    rng = random.Random(0)
    for _ in range(2000):
        point = {p: rng.uniform(low, high) for p, (low, high) in f.domain.items()}
        assert f(point) >= f.optimum - 1e-6  # type: ignore[operator]


def test_sleep_takes_its_time_and_functions_name_missing_parameters() -> None:
    started = time.perf_counter()
    assert get_function("sleep")({"seconds": 0.05}) == 0.0
    assert time.perf_counter() - started >= 0.05
    with pytest.raises(ValueError, match="branin needs the parameters x2"):
        get_function("branin")({"x1": 0.0})
    with pytest.raises(ValueError, match="unknown function 'nope'; valid: branin, hartmann6"):
        get_function("nope")
