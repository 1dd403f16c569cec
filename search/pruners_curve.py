"""Learning-curve extrapolation: stop a trial whose predicted final value loses to the best.

After ``min_epochs`` epochs the partial curve of the objective is fitted by three parametric
families (least squares, :func:`scipy.optimize.curve_fit`, a bounded number of evaluations):

- ``pow3``: ``c - a * x ** -alpha`` (a power law towards an asymptote ``c``),
- ``exp``: ``c - a * exp(-b * x)`` (an exponential approach),
- ``loglinear``: ``a + b * log(x)`` (no asymptote: the most optimistic of the three).

Each fit predicts the value at the trial's last epoch; their mean weighted by how well each
fits (Akaike weights) is the prediction, and the weighted spread of the predictions plus the
fits' residuals (scaled by how far the prediction reaches) is its uncertainty (a normal). A
family is fitted only to more points than it has parameters. A trial stops when the
probability that its final value is worse than the incumbent (the best finished trial) exceeds
``confidence``. The value a trial keeps is never below its best so far (the trainer can
restore the best epoch), so a trial already past the incumbent never stops.
(Domhan et al. 2015 fit eleven families with MCMC; three least-squares fits keep the scheduler
light while telling a flat curve from a rising one.)
"""

import math
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
from scipy.optimize import OptimizeWarning, curve_fit
from scipy.stats import norm

from models.fields import setting
from search.loop.pruning import EpochPruner, Verdict
from search.spec import MAX_EPOCHS

_MAX_EVALS = 100  # function evaluations per fit: bounds the scheduler's time per decision
_MAX_POINTS = 200  # the latest points of a long curve that are fitted
Model = Callable[..., np.ndarray]


def _pow3(x: np.ndarray, c: float, a: float, alpha: float) -> np.ndarray:
    return np.asarray(c - a * np.power(x, -alpha))


def _exp(x: np.ndarray, c: float, a: float, b: float) -> np.ndarray:
    return np.asarray(c - a * np.exp(-b * x))


def _loglinear(x: np.ndarray, a: float, b: float) -> np.ndarray:
    return np.asarray(a + b * np.log(x))


def _start(y: np.ndarray, name: str) -> tuple[list[float], tuple[list[float], list[float]]]:
    """A starting point and bounds for a family, from the curve's last value and range: the
    asymptote within a few ranges of the values seen, so a fit that wants none converges at
    a bound instead of running off."""
    span = float(np.ptp(y)) or max(abs(float(y[-1])), 1.0) * 1e-3
    low, high, last = float(np.min(y)), float(np.max(y)), float(y[-1])
    if name == "loglinear":
        return [float(y[0]), span], ([-math.inf, -math.inf], [math.inf, math.inf])
    c = ([low - 5 * span, -20 * span, 1e-3], [high + 5 * span, 20 * span, 3.0])
    return [min(max(last, c[0][0]), c[1][0]), span, 0.5], c


FAMILIES: dict[str, Model] = {"pow3": _pow3, "exp": _exp, "loglinear": _loglinear}


@dataclass(frozen=True)
class Forecast:
    """The value predicted at an epoch: each family's prediction, their mean and spread."""

    predictions: dict[str, float]
    mean: float
    std: float


def forecast(values: Sequence[float], at: int) -> Forecast | None:
    """Fit each family to ``values`` (epochs 1, 2, ...) and predict the value at epoch ``at``.

    Returns None when no family fits (fewer than three finite points, every fit failing).
    """
    y = np.asarray(values[-_MAX_POINTS:], dtype=float)
    x = np.arange(len(values) - len(y) + 1, len(values) + 1, dtype=float)
    keep = np.isfinite(y)
    x, y = x[keep], y[keep]
    if len(y) < 3:
        return None
    predictions: dict[str, float] = {}
    residuals: list[float] = []
    sizes: list[int] = []
    for name, model in FAMILIES.items():
        p0, bounds = _start(y, name)
        if len(p0) >= len(y):
            continue  # it would pass through every point: no residual to judge it by
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", OptimizeWarning)
                warnings.simplefilter("ignore", RuntimeWarning)
                params, _ = curve_fit(
                    model, x, y, p0=p0, bounds=bounds, method="trf", max_nfev=_MAX_EVALS
                )
        except (RuntimeError, ValueError):
            continue  # no convergence within the evaluations allowed
        predicted = float(model(np.asarray([float(at)]), *params)[0])
        fitted = model(x, *params)
        if not math.isfinite(predicted) or not np.all(np.isfinite(fitted)):
            continue
        predictions[name] = predicted
        residuals.append(float(np.sum((fitted - y) ** 2)) / (len(y) - len(p0)))
        sizes.append(len(params))
    if not predictions:
        return None
    # Akaike weights: the family that fits the points best carries the prediction.
    guesses = np.asarray(list(predictions.values()))
    mse = np.maximum(np.asarray(residuals), 1e-12)
    aic = len(y) * np.log(mse) + 2 * np.asarray(sizes)
    weights = np.exp(-0.5 * (aic - aic.min()))
    weights /= weights.sum()
    mean = float(weights @ guesses)
    # The fits' residuals grow with how far the prediction reaches past the points.
    reach = at / float(x[-1])
    spread = float(weights @ (guesses - mean) ** 2) + reach * float(weights @ mse)
    return Forecast(predictions, mean, math.sqrt(spread))


def worse_probability(predicted: Forecast, incumbent: float) -> float:
    """The probability that the value ``predicted`` (higher is better) ends below
    ``incumbent``."""
    if predicted.std <= 1e-12:
        return 1.0 if predicted.mean < incumbent else 0.0
    return float(norm.cdf((incumbent - predicted.mean) / predicted.std))


@dataclass(frozen=True)
class CurveSettings:
    min_epochs: int = setting(
        3, "Epochs before the first prediction (at least 3 points).", low=3, high=MAX_EPOCHS
    )
    confidence: float = setting(
        0.95,
        "Stop when the final value is worse than the best's with this probability.",
        low=0.5,
        high=1.0,
    )


class CurvePruner(EpochPruner):
    """The extrapolation rule of the module docstring, on the study's first objective."""

    def __init__(self, min_epochs: int = 3, confidence: float = 0.95) -> None:
        super().__init__()
        self.min_epochs = min_epochs
        self.confidence = confidence

    def incumbent(self) -> float | None:
        """The best feasible finished trial's value, higher is better (None before any)."""
        sign = self._sign()
        feasible = [v[0] for n, v in self.finals.items() if n not in self.infeasible]
        return max((sign * value for value in feasible), default=None)

    def _sign(self) -> float:
        return -1.0 if self.objectives[0].direction == "minimize" else 1.0

    def judge(self, number: int, epochs: int | None) -> Verdict | None:
        curve = self.curves.get(number, [])
        epoch = len(curve)
        if epochs is None or epoch < self.min_epochs or epoch >= epochs:
            return None
        incumbent = self.incumbent()
        metric = self.objectives[0].metric
        if incumbent is None or any(metric not in point for point in curve):
            return None
        values = [self._sign() * float(point[metric]) for point in curve]
        if max(values) >= incumbent:
            return None  # it already reached the incumbent: the best epoch is kept
        predicted = forecast(values, epochs)
        if predicted is None:
            return None
        p_worse = worse_probability(predicted, incumbent)
        if p_worse <= self.confidence:
            return None
        mean, best = self._sign() * predicted.mean, self._sign() * incumbent
        reason = (
            f"curve at epoch {epoch}: {metric} predicted {mean:.4g} at epoch {epochs}, worse "
            f"than the best {best:.4g} with probability {p_worse:.3f} > {self.confidence:g}"
        )
        return Verdict(epoch, reason)
