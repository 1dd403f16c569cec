"""BOHB's density model (Falkner et al. 2018): two kernel densities, ``l`` over the good
observations at one fidelity and ``g`` over the bad ones; the next point is the best of a few
candidates drawn from a widened ``l`` by the ratio ``l(x) / g(x)``.

Points live in the unit cube: a numeric parameter is scaled to [0, 1] (in log space when it is
log-scaled), a categorical one is the index of its choice. Numeric dimensions have Gaussian
kernels (Scott's rule bandwidths), categorical ones Aitchison-Aitken kernels, as in
``hpbandster``'s reference implementation.
"""

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from optuna.distributions import (
    BaseDistribution,
    CategoricalDistribution,
    FloatDistribution,
    IntDistribution,
)

MIN_BANDWIDTH = 1e-3
# A numeric dimension of a single observation has no spread: a quarter of its range stands in.
_LONE_STD = 0.25
_RETRIES = 20  # redraws of a candidate outside the unit cube before it is clipped


def n_choices(dist: BaseDistribution) -> int:
    """The number of choices of a categorical parameter; 0 for a numeric one."""
    return len(dist.choices) if isinstance(dist, CategoricalDistribution) else 0


def _bounds(dist: FloatDistribution | IntDistribution) -> tuple[float, float]:
    if dist.log:
        return math.log(dist.low), math.log(dist.high)
    return float(dist.low), float(dist.high)


def encode(dist: BaseDistribution, value: Any) -> float:
    """``value`` of a parameter of ``dist`` as a coordinate in [0, 1] (a choice's index)."""
    if isinstance(dist, CategoricalDistribution):
        return float(dist.to_internal_repr(value))
    assert isinstance(dist, FloatDistribution | IntDistribution)
    low, high = _bounds(dist)
    if high <= low:
        return 0.5
    x = math.log(value) if dist.log else float(value)
    return min(1.0, max(0.0, (x - low) / (high - low)))


def decode(dist: BaseDistribution, x: float) -> Any:
    """The parameter value of coordinate ``x`` (on the step grid, within the bounds)."""
    if isinstance(dist, CategoricalDistribution):
        return dist.choices[min(len(dist.choices) - 1, max(0, round(x)))]
    assert isinstance(dist, FloatDistribution | IntDistribution)
    low, high = _bounds(dist)
    value = low + min(1.0, max(0.0, x)) * (high - low)
    if dist.log:
        value = math.exp(value)
    step = dist.step if not dist.log else (1 if isinstance(dist, IntDistribution) else None)
    if step is not None:
        value = dist.low + round((value - dist.low) / step) * step
    value = min(dist.high, max(dist.low, value))
    return round(value) if isinstance(dist, IntDistribution) else float(value)


@dataclass(frozen=True)
class Kde:
    """A product-kernel density over ``data`` (n points x d dimensions)."""

    data: np.ndarray
    bandwidths: np.ndarray
    choices: tuple[int, ...]  # per dimension: its number of choices, 0 when numeric


def fit(data: np.ndarray, choices: Sequence[int]) -> Kde:
    """The density of ``data`` with normal-reference (Scott's rule) bandwidths; a categorical
    dimension's bandwidth is its kernel's weight on the other choices, at most uniform."""
    n = len(data)
    bandwidths = np.empty(data.shape[1])
    for j, k in enumerate(choices):
        std = float(data[:, j].std(ddof=1)) if n > 1 else _LONE_STD
        bw = max(MIN_BANDWIDTH, 1.06 * std * n ** (-0.2))
        bandwidths[j] = min(bw, (k - 1) / k) if k else bw
    return Kde(data, bandwidths, tuple(choices))


def log_pdf(kde: Kde, points: np.ndarray) -> np.ndarray:
    """The log density of ``kde`` at each of ``points`` (m x d): one value per point."""
    diff = points[:, None, :] - kde.data[None, :, :]  # m x n x d
    log_k = np.empty(diff.shape)
    for j, k in enumerate(kde.choices):
        bw = kde.bandwidths[j]
        if k:
            same = np.abs(diff[:, :, j]) < 0.5
            log_k[:, :, j] = np.where(same, math.log(1 - bw), math.log(bw / (k - 1)))
        else:
            log_k[:, :, j] = -0.5 * (diff[:, :, j] / bw) ** 2 - math.log(
                bw * math.sqrt(2 * math.pi)
            )
    per_point = log_k.sum(axis=2)  # m x n
    top = per_point.max(axis=1, keepdims=True)
    total = top[:, 0] + np.log(np.exp(per_point - top).sum(axis=1))
    result: np.ndarray = total - math.log(len(kde.data))
    return result


def sample(kde: Kde, rng: np.random.RandomState, widen: float, count: int) -> np.ndarray:
    """``count`` points drawn around random observations of ``kde``: numeric coordinates from
    a Gaussian ``widen`` times the bandwidth, truncated to [0, 1]; a categorical one keeps its
    choice with probability 1 - bandwidth, else takes a uniformly random one."""
    centres = kde.data[rng.randint(len(kde.data), size=count)]
    points = centres.copy()
    for j, k in enumerate(kde.choices):
        bw = kde.bandwidths[j]
        if k:
            change = rng.random_sample(count) < bw
            points[change, j] = rng.randint(k, size=int(change.sum()))
            continue
        column = centres[:, j] + rng.normal(0.0, bw * widen, count)
        for _ in range(_RETRIES):
            outside = (column < 0) | (column > 1)
            if not outside.any():
                break
            column[outside] = centres[outside, j] + rng.normal(0.0, bw * widen, outside.sum())
        points[:, j] = np.clip(column, 0.0, 1.0)
    return points


def split(
    points: np.ndarray, losses: np.ndarray, top_fraction: float
) -> tuple[np.ndarray, np.ndarray]:
    """The good points (the lowest losses: ``top_fraction`` of them, and at least d + 1 while
    half the points allow) and the bad ones (the rest)."""
    n, d = points.shape
    order = np.argsort(losses, kind="stable")
    n_good = max(1, math.ceil(top_fraction * n), min(d + 1, n // 2))
    n_good = min(n_good, n - 1)
    return points[order[:n_good]], points[order[n_good:]]


def propose(
    good: np.ndarray,
    bad: np.ndarray,
    choices: Sequence[int],
    rng: np.random.RandomState,
    widen: float,
    n_candidates: int = 64,
) -> np.ndarray:
    """The candidate drawn from the widened good density that maximizes ``l(x) / g(x)``."""
    good_kde, bad_kde = fit(good, choices), fit(bad, choices)
    candidates = sample(good_kde, rng, widen, n_candidates)
    score = log_pdf(good_kde, candidates) - log_pdf(bad_kde, candidates)
    best: np.ndarray = candidates[int(np.argmax(score))]
    return best
