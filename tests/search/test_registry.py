"""The algorithm registry: names to lazily imported modules, each algorithm's settings and
checks, and the Optuna samplers and pruners they build."""

import importlib
import subprocess
import sys
from dataclasses import dataclass, replace
from typing import Any

import optuna
import pytest
from optuna.pruners import BasePruner
from optuna.samplers import BaseSampler, RandomSampler, TPESampler

from models.fields import build, declared, setting
from search import registry
from search.algorithm import STUDY_KINDS, Algorithm, FieldError, PrunerAlgorithm, StudyAlgorithm
from search.functions import BraninArguments
from search.registry import get_algorithm, list_algorithms, names, pruner, study_algorithm
from search.samplers.base import SamplerAlgorithm
from search.space import to_distribution
from search.spec import AlgorithmSpec, ParamSpec, StudySpec
from tests.search.conftest import digits_spec

ALGORITHM_NAMES = names("sampler")
PRUNER_NAMES = names("pruner")
# A space every sampler (grid included: floats need a step) can search.
SPACE = (
    ParamSpec("x", "float", low=0.0, high=1.0, step=0.1),
    ParamSpec("n", "int", low=1, high=100),
    ParamSpec("c", "categorical", choices=("a", "b", "c")),
)


def sampler_of(name: str) -> SamplerAlgorithm:
    algorithm = study_algorithm(name)
    assert isinstance(algorithm, SamplerAlgorithm)
    return algorithm


def create_sampler(name: str, settings: dict[str, Any], study_seed: int = 0) -> BaseSampler:
    return sampler_of(name).sampler(settings, SPACE, study_seed)


def settings_of(name: str, given: dict[str, Any]) -> tuple[dict[str, Any] | None, list[FieldError]]:
    """An algorithm's settings read as a study's are: defaults filled in, or the errors."""
    algorithm = get_algorithm(name, ("sampler", "pruner", "population", "oneshot"))
    checked, errors = algorithm.read_settings(given)
    if checked is None:
        return None, errors
    return {name: getattr(checked, name) for name in declared(algorithm.settings)}, errors


# -- registry ---------------------------------------------------------------------------------


def test_list_algorithms_names_random_and_tpe_sorted() -> None:
    assert {"random", "tpe"} <= set(ALGORITHM_NAMES)
    assert sorted(ALGORITHM_NAMES) == ALGORITHM_NAMES
    assert len(ALGORITHM_NAMES) == len(set(ALGORITHM_NAMES))


@pytest.mark.parametrize("algorithm", list_algorithms(), ids=lambda a: a.name)
def test_every_algorithm_is_described(algorithm: Algorithm) -> None:
    assert get_algorithm(algorithm.name, algorithm.kind) is algorithm
    assert algorithm.kind in ("sampler", "pruner", "population", "oneshot")
    assert isinstance(algorithm, PrunerAlgorithm if algorithm.kind == "pruner" else StudyAlgorithm)
    assert algorithm.description
    settings = declared(algorithm.settings)
    for d in settings.values():
        assert d.rules.doc
    # Every default passes the algorithm's own check.
    checked, errors = algorithm.read_settings({})
    assert errors == []
    for name, d in settings.items():
        assert getattr(checked, name) == d.default


def test_the_table_names_each_module_and_kind_right() -> None:
    # Every name in the table is its module's, of the kind the table says, and every
    # algorithm a module defines is in the table: names are unique and none is lost.
    for kind in ("sampler", "pruner", "population", "oneshot"):
        for name in names(kind):  # type: ignore[arg-type]
            assert get_algorithm(name, kind).kind == kind  # type: ignore[arg-type]
    modules = {module for _, module in registry._TABLE.values()}
    defined = [n for m in modules for n in importlib.import_module(m).ALGORITHMS]
    assert sorted(defined) == sorted(registry._TABLE)


def test_checking_a_name_imports_nothing() -> None:
    # The table answers without importing an algorithm's module (torch, Ray Tune).
    code = (
        "import sys; from search.registry import check_name, names; "
        "check_name('pbt'); check_name('asha', 'pruner'); names(); "
        "print(sorted(m for m in sys.modules if m.startswith(('search.pbt', 'search.samplers', "
        "'search.nas', 'search.darts', 'search.pruners', 'torch', 'ray'))))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_unknown_algorithm_lists_the_valid_names() -> None:
    with pytest.raises(ValueError, match="unknown sampler 'annealing'") as info:
        get_algorithm("annealing", "sampler")
    for name in ALGORITHM_NAMES:
        assert name in str(info.value)
    with pytest.raises(ValueError, match=r"unknown pruner 'tpe' \('tpe' is a sampler\)"):
        pruner("tpe")


def test_population_methods_are_a_kind_of_their_own() -> None:
    assert [a.name for a in list_algorithms("population")] == ["pb2", "pbt"]
    assert get_algorithm("pbt", STUDY_KINDS).kind == "population"
    assert get_algorithm("tpe", STUDY_KINDS).kind == "sampler"
    with pytest.raises(ValueError, match=r"unknown sampler 'pbt' \('pbt' is a population\)"):
        get_algorithm("pbt", "sampler")
    with pytest.raises(ValueError, match=r"unknown algorithm 'asha'.*valid: .*pbt") as info:
        get_algorithm("asha", STUDY_KINDS)
    assert "tpe" in str(info.value)


@pytest.mark.parametrize("method", ["pbt", "pb2"])
def test_population_settings_listed_are_the_ones_the_driver_takes(method: str) -> None:
    listed, _ = settings_of(method, {})
    assert listed is not None
    checked, _ = study_algorithm(method).read_settings({})
    for name, default in listed.items():
        assert getattr(checked, name) == default
    assert ("resample_probability" in listed) == (method == "pbt")
    # What the driver reads: PB2 never resamples, PBT with its probability.
    assert checked.resample == (0.25 if method == "pbt" else 0.0)


def test_settings_are_filled_with_defaults() -> None:
    defaults = {
        "seed": None,
        "n_startup_trials": 10,
        "multivariate": True,
        "group": True,
        "constant_liar": True,
    }
    assert settings_of("tpe", {})[0] == defaults
    assert settings_of("tpe", {"seed": 3, "multivariate": False})[0] == {
        **defaults,
        "seed": 3,
        "multivariate": False,
    }
    assert settings_of("random", {"seed": 7})[0] == {"seed": 7}


def test_reading_settings_does_not_change_its_input() -> None:
    given = {"seed": 1}

    settings_of("tpe", given)

    assert given == {"seed": 1}


def test_unknown_setting_is_named() -> None:
    checked, errors = settings_of("tpe", {"seed": 1, "sigma": 0.5})

    assert checked is None
    (error,) = errors
    assert error.loc == ("algorithm", "settings", "sigma")
    assert error.msg.startswith("unknown setting 'sigma'")
    for valid in ("seed", "n_startup_trials", "multivariate"):
        assert valid in error.msg


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("n_startup_trials", True),  # bool is an int subclass, but not an int setting
        ("n_startup_trials", 2.0),
        ("n_startup_trials", "10"),
        ("seed", 1.5),
        ("seed", False),
        ("multivariate", 1),
        ("multivariate", "true"),
    ],
)
def test_wrong_setting_type_is_named(name: str, value: Any) -> None:
    _, errors = settings_of("tpe", {name: value})

    (error,) = errors
    assert error.loc == ("algorithm", "settings", name)
    assert error.msg.startswith(f"setting '{name}' must be")


@dataclass(frozen=True)
class _Sigma:
    sigma: float = setting(1.0, "step size")


@dataclass(frozen=True)
class _Nothing:
    pass


def _toy(settings: type) -> SamplerAlgorithm:
    # Not registered: the registry stays as the service sees it.
    return SamplerAlgorithm("toy", "test only", settings, lambda **_: RandomSampler())


@pytest.mark.parametrize(("value", "ok"), [(1, True), (0.5, True), (True, False), ("1", False)])
def test_float_setting_takes_ints_but_not_bools(value: Any, ok: bool) -> None:
    checked, errors = _toy(_Sigma).read_settings({"sigma": value})

    if ok:
        assert checked == _Sigma(sigma=value)
    else:
        assert checked is None and errors[0].loc[-1] == "sigma"


def test_algorithm_without_settings_says_so() -> None:
    _, errors = _toy(_Nothing).read_settings({"seed": 1})
    assert "valid: none" in errors[0].msg


@pytest.mark.parametrize("name", ALGORITHM_NAMES)
def test_every_sampler_builds_an_optuna_sampler(name: str) -> None:
    assert isinstance(create_sampler(name, {}), BaseSampler)


@pytest.mark.parametrize("name", PRUNER_NAMES)
def test_every_pruner_builds_an_optuna_pruner(name: str) -> None:
    given = {"lower": 0.5} if name == "threshold" else {}
    algorithm = pruner(name)
    checked, errors = algorithm.read_settings(given, ("pruner", "settings"))
    assert errors == []
    assert isinstance(algorithm.create(checked), BasePruner)


@pytest.mark.parametrize("name", ALGORITHM_NAMES)
def test_seeded_sampler_repeats_its_proposals(name: str) -> None:
    dists = {p.name: to_distribution(p) for p in SPACE}

    def proposals(seed: int) -> list[dict[str, Any]]:
        study = optuna.create_study(sampler=create_sampler(name, {"seed": seed}))
        out = []
        for _ in range(3):
            trial = study.ask(dists)
            out.append(trial.params)
            study.tell(trial, trial.params["x"])
        return out

    assert proposals(11) == proposals(11)
    assert proposals(11) != proposals(12)


def test_a_sampler_gets_its_settings() -> None:
    tpe = create_sampler("tpe", {"seed": 0, "n_startup_trials": 3, "multivariate": True})
    random = create_sampler("random", {"seed": 0})

    assert isinstance(tpe, TPESampler)
    assert tpe._n_startup_trials == 3
    assert tpe._multivariate is True
    assert isinstance(random, RandomSampler)


def test_a_sampler_refuses_bad_settings() -> None:
    with pytest.raises(ValueError, match="unknown setting 'n_startup_trials'"):
        create_sampler("random", {"n_startup_trials": 3})

    with pytest.raises(ValueError, match="unknown sampler"):
        get_algorithm("annealing", "sampler")


def test_study_seed_is_the_default_sampler_seed() -> None:
    def first(sampler_settings: dict[str, Any], study_seed: int) -> Any:
        study = optuna.create_study(sampler=create_sampler("random", sampler_settings, study_seed))
        return study.ask({"x": to_distribution(SPACE[0])}).params["x"]

    assert first({}, 5) == first({"seed": 5}, 0) != first({}, 6)


def test_an_algorithm_checks_the_study_at_its_paths() -> None:
    spec: StudySpec = digits_spec("check", 0, 4, 1, 2)
    grid = replace(
        spec,
        algorithm=AlgorithmSpec("grid"),
        search_space=(*SPACE[:1], ParamSpec("y", "float", low=0.0, high=1.0)),
    )
    assert study_algorithm("grid").check(grid, None) == [
        FieldError(("algorithm",), "grid needs a step (or categorical choices) for y")
    ]
    bad = replace(spec, algorithm=AlgorithmSpec("tpe", {"seed": -1}))
    (error,) = study_algorithm("tpe").check(bad, None)
    assert error.loc == ("algorithm", "settings", "seed") and ">= 0" in error.msg


def test_a_stored_studys_settings_are_read_leniently() -> None:
    # Submission is strict; a stored study runs as it was accepted, even past a bound a later
    # release tightened, and a setting a later release dropped is ignored.
    tpe = get_algorithm("tpe", "sampler")
    stored = {"n_startup_trials": 10**12, "retired_setting": 1}
    _, errors = tpe.read_settings(stored)
    assert [e.loc[-1] for e in errors] == ["retired_setting", "n_startup_trials"]
    settings = tpe.stored_settings(stored)
    assert settings.n_startup_trials == 10**12
    assert settings.multivariate is declared(tpe.settings)["multivariate"].default
    with pytest.raises(ValueError, match="setting 'x1' is required"):
        build(BraninArguments, {"x2": 1.0})
