"""Synthetic objectives: a task that evaluates a known function instead of training a network.

They serve two purposes: measuring what the service itself costs per trial (``noop``,
``sleep``), and trying search algorithms cheaply on test functions whose optimum is known
(``branin``, ``hartmann6``, ``rosenbrock``, ``sphere``). Each names its parameters and their
usual domain, and its optimum, so a benchmark can report regret.
"""

import functools
import math
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, make_dataclass

from models.fields import REQUIRED, declared, setting
from models.plugins import Plugin, entries

_HARTMANN6_ALPHA = (1.0, 1.2, 3.0, 3.2)
_HARTMANN6_A = (
    (10.0, 3.0, 17.0, 3.5, 1.7, 8.0),
    (0.05, 10.0, 17.0, 0.1, 8.0, 14.0),
    (3.0, 3.5, 1.7, 10.0, 17.0, 8.0),
    (17.0, 8.0, 0.05, 10.0, 0.1, 14.0),
)
_HARTMANN6_P = (
    (0.1312, 0.1696, 0.5569, 0.0124, 0.8283, 0.5886),
    (0.2329, 0.4135, 0.8307, 0.3736, 0.1004, 0.9991),
    (0.2348, 0.1451, 0.3522, 0.2883, 0.3047, 0.6650),
    (0.4047, 0.8828, 0.8732, 0.5743, 0.1091, 0.0381),
)


def _noop(x: Mapping[str, float]) -> float:
    return 0.0


def _sleep(x: Mapping[str, float]) -> float:
    time.sleep(max(0.0, float(x.get("seconds", 0.1))))
    return 0.0


def _branin(x: Mapping[str, float]) -> float:
    x1, x2 = x["x1"], x["x2"]
    b, c = 5.1 / (4 * math.pi**2), 5 / math.pi
    r, s, t = 6.0, 10.0, 1 / (8 * math.pi)
    return (x2 - b * x1**2 + c * x1 - r) ** 2 + s * (1 - t) * math.cos(x1) + s


def _hartmann6(x: Mapping[str, float]) -> float:
    xs = [x[f"x{i}"] for i in range(1, 7)]
    total = 0.0
    for alpha, a_row, p_row in zip(_HARTMANN6_ALPHA, _HARTMANN6_A, _HARTMANN6_P, strict=True):
        inner = sum(a * (xi - p) ** 2 for a, xi, p in zip(a_row, xs, p_row, strict=True))
        total += alpha * math.exp(-inner)
    return -total


def _rosenbrock(x: Mapping[str, float]) -> float:
    x1, x2 = x["x1"], x["x2"]
    return 100.0 * (x2 - x1**2) ** 2 + (1 - x1) ** 2


def _sphere(x: Mapping[str, float]) -> float:
    return sum(v * v for v in x.values())


_X = "Coordinate {}."


@dataclass(frozen=True)
class NoArguments:
    """Any parameters (noop ignores them)."""


@dataclass(frozen=True)
class SleepArguments:
    seconds: float = setting(0.1, "How long the trial sleeps.", low=0.0, high=3600.0)


@dataclass(frozen=True)
class BraninArguments:
    x1: float = setting(REQUIRED, _X.format(1), low=-5.0, high=10.0)
    x2: float = setting(REQUIRED, _X.format(2), low=0.0, high=15.0)


Hartmann6Arguments = make_dataclass(
    "Hartmann6Arguments",
    [(f"x{i}", float, setting(REQUIRED, _X.format(i), low=0.0, high=1.0)) for i in range(1, 7)],
    frozen=True,
)


@dataclass(frozen=True)
class RosenbrockArguments:
    x1: float = setting(REQUIRED, _X.format(1), low=-2.0, high=2.0)
    x2: float = setting(REQUIRED, _X.format(2), low=-1.0, high=3.0)


@dataclass(frozen=True)
class SphereArguments:
    """Any parameters; x1 and x2 are the usual ones."""

    x1: float = setting(0.0, _X.format(1), low=-5.0, high=5.0)
    x2: float = setting(0.0, _X.format(2), low=-5.0, high=5.0)


@dataclass(frozen=True)
class SyntheticFunction:
    """A synthetic objective, to be minimized.

    ``arguments`` declares its parameters (:func:`models.fields.setting`) with their usual
    domain as bounds: a study may search any subset, or other bounds, of those it does not
    require. ``free_form`` functions take parameters of any name. ``optimum`` is the known
    minimum (None where there is none to speak of).
    """

    name: str
    description: str
    fn: Callable[[Mapping[str, float]], float]
    arguments: type
    optimum: float | None
    free_form: bool = False

    @property
    def domain(self) -> dict[str, tuple[float, float]]:
        """Each declared argument's usual [low, high]."""
        return {
            name: (float(d.rules.low or 0.0), float(d.rules.high or 0.0))
            for name, d in declared(self.arguments).items()
        }

    def unknown_arguments(self, names: Iterable[str]) -> list[str]:
        """The ``names`` this function does not take."""
        if self.free_form:
            return []
        return [n for n in names if n not in declared(self.arguments)]

    def missing_arguments(self, names: Iterable[str]) -> list[str]:
        """The arguments this function needs that ``names`` lacks."""
        given = set(names)
        return [n for n, d in declared(self.arguments).items() if d.required and n not in given]

    def __call__(self, params: Mapping[str, float]) -> float:
        missing = self.missing_arguments(params)
        if missing:
            raise ValueError(f"{self.name} needs the parameters {', '.join(missing)}")
        return float(self.fn(params))


FUNCTIONS: dict[str, SyntheticFunction] = {
    f.name: f
    for f in (
        SyntheticFunction(
            "noop",
            "Returns 0 at once: the service's own cost per trial.",
            _noop,
            NoArguments,
            0.0,
            free_form=True,
        ),
        SyntheticFunction(
            "sleep",
            "Sleeps `seconds` (default 0.1) and returns 0: a trial of known length.",
            _sleep,
            SleepArguments,
            0.0,
        ),
        SyntheticFunction(
            "branin",
            "Branin-Hoo, 2-d, three global minima of 0.397887.",
            _branin,
            BraninArguments,
            0.397887,
        ),
        SyntheticFunction(
            "hartmann6",
            "Hartmann, 6-d on the unit cube, global minimum -3.32237.",
            _hartmann6,
            Hartmann6Arguments,
            -3.32237,
        ),
        SyntheticFunction(
            "rosenbrock",
            "Rosenbrock's valley, 2-d, minimum 0 at (1, 1).",
            _rosenbrock,
            RosenbrockArguments,
            0.0,
        ),
        SyntheticFunction(
            "sphere",
            "The sum of squares of every parameter given; minimum 0 at the origin.",
            _sphere,
            SphereArguments,
            0.0,
            free_form=True,
        ),
    )
}


@functools.cache
def _plugins() -> dict[str, tuple[SyntheticFunction, Plugin]]:
    return entries("functions", SyntheticFunction, FUNCTIONS)


@functools.cache
def all_functions() -> dict[str, SyntheticFunction]:
    """The built-in functions (:data:`FUNCTIONS`) and those installed packages add
    (``tuneforge.functions`` entry points: :mod:`models.plugins`)."""
    return {**FUNCTIONS, **{name: f for name, (f, _) in _plugins().items()}}


def function_plugin(name: str) -> Plugin | None:
    """The installed package that adds function ``name`` (None: a built-in one, or unknown)."""
    found = _plugins().get(name)
    return None if found is None else found[1]


def get_function(name: str) -> SyntheticFunction:
    """The synthetic objective ``name``.

    Raises:
        ValueError: an unknown name, with the valid ones.
    """
    functions = all_functions()
    if name not in functions:
        raise ValueError(f"unknown function {name!r}; valid: {', '.join(sorted(functions))}")
    return functions[name]
