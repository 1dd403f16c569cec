"""``bohb``: the density model's proposals, the fidelity it models, asynchronous Hyperband's
rungs and brackets, and the study checks (each refusal at its path)."""

import math
from collections import Counter
from dataclasses import replace

import numpy as np
import optuna
import pytest
from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution
from optuna.trial import TrialState

from search.checks import check_study
from search.loop.inflight import InFlight
from search.loop.pruning import should_stop
from search.registry import study_algorithm
from search.samplers import bohb_kde as kde
from search.samplers.bohb import BohbSampler, study_epochs
from search.samplers.bohb_rungs import BohbPruner, bracket_schedule, promotable, rungs_below
from search.spec import AlgorithmSpec, Objective, ParamSpec, StudySpec
from tests.search.conftest import digits_spec

optuna.logging.set_verbosity(optuna.logging.WARNING)

X = FloatDistribution(0.0, 1.0)
C = CategoricalDistribution(("a", "b", "c"))
GOOD = np.array([0.8, 1.0])  # x = 0.8, c = "b"


def loss(x: float, c: str) -> float:
    return (x - 0.8) ** 2 + (0.0 if c == "b" else 0.3)


# -- the density model ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("dist", "value"),
    [
        (FloatDistribution(1e-4, 1e-1, log=True), 3e-3),
        (FloatDistribution(0.005, 0.05, step=0.015), 0.035),
        (IntDistribution(8, 128, log=True), 32),
        (IntDistribution(8, 16, step=8), 16),
        (CategoricalDistribution(("relu", "tanh")), "tanh"),
    ],
)
def test_a_value_survives_encoding(dist: object, value: object) -> None:
    x = kde.encode(dist, value)  # type: ignore[arg-type]
    assert 0.0 <= x <= max(1, kde.n_choices(dist) - 1)  # type: ignore[arg-type]
    back = kde.decode(dist, x)  # type: ignore[arg-type]
    assert back == pytest.approx(value) and type(back) is type(value)


def test_decoding_lands_on_the_step_grid_within_the_bounds() -> None:
    stepped = FloatDistribution(0.005, 0.05, step=0.015)
    values = {round(kde.decode(stepped, x), 9) for x in np.linspace(-0.2, 1.2, 57)}
    assert values == {0.005, 0.02, 0.035, 0.05}
    assert {kde.decode(IntDistribution(1, 5), x) for x in np.linspace(0, 1, 41)} == {1, 2, 3, 4, 5}


def test_the_good_density_scores_the_good_region_above_the_bad() -> None:
    rng = np.random.RandomState(0)
    points = np.column_stack([rng.random_sample(60), rng.randint(3, size=60)]).astype(float)
    losses = np.array([loss(x, "abc"[int(c)]) for x, c in points])
    good, bad = kde.split(points, losses, 0.15)
    assert len(good) == math.ceil(0.15 * 60) and len(good) + len(bad) == 60
    good_losses = [loss(x, "abc"[int(c)]) for x, c in good]
    assert max(good_losses) <= min(loss(x, "abc"[int(c)]) for x, c in bad)
    choices = [0, 3]
    ratio = kde.log_pdf(kde.fit(good, choices), np.array([GOOD, [0.1, 0.0]]))
    ratio -= kde.log_pdf(kde.fit(bad, choices), np.array([GOOD, [0.1, 0.0]]))
    assert ratio[0] > ratio[1] + 1.0


def test_proposals_prefer_the_good_region() -> None:
    rng = np.random.RandomState(1)
    points = np.column_stack([rng.random_sample(40), rng.randint(3, size=40)]).astype(float)
    losses = np.array([loss(x, "abc"[int(c)]) for x, c in points])
    good, bad = kde.split(points, losses, 0.15)
    proposed = np.array([kde.propose(good, bad, [0, 3], rng, 3.0) for _ in range(50)])
    proposed_loss = np.mean([loss(x, "abc"[int(c)]) for x, c in proposed])
    assert proposed_loss < 0.5 * losses.mean(), (proposed_loss, losses.mean())
    assert np.mean(proposed[:, 1] == 1) > 0.8  # the good choice, against 1/3 at random
    assert np.all((proposed[:, 0] >= 0) & (proposed[:, 0] <= 1))


# -- the sampler on a study (no Ray) ----------------------------------------------------------


def run_study(sampler: optuna.samplers.BaseSampler, n: int) -> optuna.Study:
    study = optuna.create_study(sampler=sampler)
    run_study_more(study, n)
    return study


def test_the_sampler_is_random_before_n_startup_observations() -> None:
    sampler = BohbSampler([9], n_startup=8, random_fraction=0.0, seed=0)
    study = run_study(sampler, 8)
    assert sampler.last_fidelity is None  # the 8th trial saw 7 observations
    run_study_more(study, 1)
    assert sampler.last_fidelity == 9


def run_study_more(study: optuna.Study, n: int) -> None:
    for _ in range(n):
        trial = study.ask()
        study.tell(
            trial, loss(trial.suggest_float("x", 0, 1), trial.suggest_categorical("c", "abc"))
        )


def test_the_sampler_beats_random_on_a_synthetic_objective() -> None:
    def late_mean(sampler: optuna.samplers.BaseSampler) -> float:
        values = [t.value for t in run_study(sampler, 60).trials[30:]]
        return float(np.mean([v for v in values if v is not None]))

    bohb = [late_mean(BohbSampler([9], seed=s)) for s in range(3)]
    random = [late_mean(optuna.samplers.RandomSampler(seed=s)) for s in range(3)]
    assert np.median(bohb) < 0.5 * np.median(random), (bohb, random)


def test_the_sampler_models_the_highest_fidelity_with_enough_observations() -> None:
    sampler = BohbSampler([1, 3, 9], n_startup=5, random_fraction=0.0, seed=0)
    study = optuna.create_study(sampler=sampler)

    def stopped(epochs: tuple[int, ...]) -> None:
        trial = study.ask()
        value = loss(trial.suggest_float("x", 0, 1), trial.suggest_categorical("c", "abc"))
        for epoch in epochs:
            trial.report(value + 1 / epoch, epoch)
        study.tell(trial, state=TrialState.PRUNED)

    def next_fidelity() -> int | None:
        study.ask().suggest_float("x", 0, 1)  # the sampler models when a trial suggests
        return sampler.last_fidelity

    for _ in range(4):
        stopped((1,))
    assert next_fidelity() is None  # 4 observations at epoch 1: random
    for _ in range(3):
        stopped((1, 3))
    assert next_fidelity() == 1  # 7 at epoch 1, 3 at epoch 3
    for _ in range(2):
        stopped((1, 3))
    assert next_fidelity() == 3  # 5 at epoch 3
    run_study_more(study, 5)  # complete trials count at the full training (9 epochs)
    assert next_fidelity() == 9


def test_random_fraction_one_never_models() -> None:
    sampler = BohbSampler([9], n_startup=2, random_fraction=1.0, seed=0)
    run_study(sampler, 20)
    assert sampler.last_fidelity is None


# -- rungs and brackets -----------------------------------------------------------------------


def test_rungs_are_geometric_below_the_full_training() -> None:
    assert rungs_below(1, 9, 3) == [1, 3]
    assert rungs_below(1, 27, 3) == [1, 3, 9]
    assert rungs_below(2, 10, 2) == [2, 4, 8]
    assert rungs_below(5, 5, 3) == []


def test_brackets_come_in_hyperbands_proportions_interleaved() -> None:
    schedule = bracket_schedule(2, 3)
    assert Counter(schedule) == {0: 9, 1: 5, 2: 3}  # ceil(3/3*9), ceil(3/2*3), ceil(3/1*1)
    assert schedule[:3] == [0, 1, 0]  # interleaved, not 9 of bracket 0 first
    assert Counter(bracket_schedule(0, 3)) == {0: 1}


def test_promotion_keeps_the_top_fraction() -> None:
    assert promotable(0.9, [0.9], 3, maximize=True)  # alone: the best so far
    assert not promotable(0.5, [0.9, 0.5], 3, maximize=True)
    six = [0.1, 0.2, 0.3, 0.4, 0.5, 0.6]
    assert promotable(0.5, six, 3, maximize=True) and not promotable(0.4, six, 3, maximize=True)
    assert promotable(0.2, six, 3, maximize=False) and not promotable(0.3, six, 3, maximize=False)
    assert not promotable(float("nan"), [0.1], 3, maximize=False)


def report(study: optuna.Study, pruner: BohbPruner, bracket: int, curve: list[float]) -> bool:
    """A trial of ``bracket`` reports ``curve``; whether it was stopped (at which epoch is the
    length of its intermediate values)."""
    while pruner.bracket(len(study.trials)) != bracket:
        study.tell(study.ask(), state=TrialState.FAIL)  # a trial of another bracket
    trial = study.ask()
    for epoch, value in enumerate(curve, start=1):
        trial.report(value, epoch)
        if trial.should_prune():
            study.tell(trial, state=TrialState.PRUNED)
            return True
    study.tell(trial, curve[-1])
    return False


def test_the_pruner_stops_at_the_rungs_of_the_trials_bracket() -> None:
    pruner = BohbPruner(1, 9, 3)
    study = optuna.create_study(direction="maximize", pruner=pruner)
    assert not report(study, pruner, 0, [0.5] * 9)  # alone at each rung: the best
    assert report(study, pruner, 0, [0.4] * 9)  # worse at rung 1 (epoch 1)
    assert len(study.trials[-1].intermediate_values) == 1
    assert not report(study, pruner, 0, [0.6] * 9)
    # bracket 1's first rung is epoch 3: a poor first epoch is not judged
    assert not report(study, pruner, 1, [0.1, 0.2, 0.9] + [0.9] * 6)
    assert report(study, pruner, 1, [0.1, 0.2, 0.3] + [0.9] * 6)
    assert len(study.trials[-1].intermediate_values) == 3
    # the last bracket trains every trial in full
    assert not report(study, pruner, 2, [0.0] * 9)
    assert not report(study, pruner, 2, [-1.0] * 9)


def test_a_promotion_is_not_taken_back() -> None:
    pruner = BohbPruner(1, 9, 3)
    study = optuna.create_study(direction="minimize", pruner=pruner)
    while pruner.bracket(len(study.trials)) != 0:
        study.tell(study.ask(), state=TrialState.FAIL)
    early = study.ask()
    early.report(0.5, 1)
    assert not early.should_prune()  # alone at rung 1
    for _ in range(6):  # better trials reach rung 1 since
        report(study, pruner, 0, [0.1] * 9)
    early.report(0.5, 2)  # between rungs: the rung 1 decision stands
    assert not early.should_prune()
    # ... for a restarted service's pruner too (the trial's system attributes keep it)
    again = optuna.load_study(
        study_name=study.study_name, storage=study._storage, pruner=BohbPruner(1, 9, 3)
    )
    resumed = optuna.Trial(again, early._trial_id)
    assert not resumed.should_prune()
    resumed.report(0.5, 3)  # rung 3: judged, against the better trials there
    assert resumed.should_prune()


# -- the study checks -------------------------------------------------------------------------


def bohb_study(epochs: int = 9, **settings: object) -> StudySpec:
    spec = digits_spec("bohb", 0, 12, 2, epochs)
    return replace(spec, algorithm=AlgorithmSpec("bohb", dict(settings)))


def locs(spec: StudySpec) -> list[tuple[str | int, ...]]:
    return [e.loc for e in check_study(spec, None)]


def test_a_bohb_study_is_accepted() -> None:
    assert check_study(bohb_study(), None) == []
    assert check_study(bohb_study(27, min_resource=3, max_resource=27, n_startup=4), None) == []
    assert study_epochs(bohb_study(7)) == 7


@pytest.mark.parametrize(
    ("settings", "loc"),
    [
        ({"reduction_factor": 1}, ("algorithm", "settings", "reduction_factor")),
        ({"top_fraction": 1.0}, ("algorithm", "settings", "top_fraction")),
        ({"top_fraction": 0.0}, ("algorithm", "settings", "top_fraction")),
        ({"bandwidth_factor": 0.0}, ("algorithm", "settings", "bandwidth_factor")),
        ({"random_fraction": 1.5}, ("algorithm", "settings", "random_fraction")),
        ({"n_startup": 1}, ("algorithm", "settings", "n_startup")),
        ({"min_resource": 9}, ("algorithm", "settings", "min_resource")),
        ({"max_resource": 10}, ("algorithm", "settings", "max_resource")),
        ({"brackets": 3}, ("algorithm", "settings", "brackets")),
    ],
)
def test_bad_settings_are_refused_at_their_path(
    settings: dict[str, object], loc: tuple[str]
) -> None:
    assert locs(replace(bohb_study(), algorithm=AlgorithmSpec("bohb", settings))) == [loc]


def test_bohb_takes_no_other_pruner() -> None:
    spec = replace(bohb_study(), pruner=AlgorithmSpec("asha", {}))
    errors = check_study(spec, None)
    assert [e.loc for e in errors] == [("pruner",)]
    assert "drop the pruner" in errors[0].msg


def test_bohb_refuses_several_objectives() -> None:
    spec = replace(
        bohb_study(),
        objectives=(Objective("val_accuracy", "maximize"), Objective("param_count", "minimize")),
    )
    assert ("algorithm",) in locs(spec)


def test_searched_epochs_set_the_full_training() -> None:
    spec = replace(
        bohb_study(),
        search_space=(
            *bohb_study().search_space,
            ParamSpec("training.epochs", "int", low=3, high=27),
        ),
    )
    assert study_epochs(spec) == 27
    assert (
        check_study(replace(spec, algorithm=AlgorithmSpec("bohb", {"max_resource": 27})), None)
        == []
    )
    assert study_algorithm("bohb").multi_objective is False


def test_the_loop_records_why_bohb_stopped_a_trial() -> None:
    pruner = BohbPruner(1, 9, 3)
    study = optuna.create_study(direction="maximize", pruner=pruner)
    spec = digits_spec("bohb-why", seed=0, max_trials=4, parallelism=1, epochs=9)
    numbers = {}
    for value in (0.5, 0.4):  # both in bracket 0 (trial numbers 0 and 3: see the schedule)
        trial = study.ask()
        while pruner.bracket(trial.number) != 0:
            study.tell(trial, state=TrialState.FAIL)
            trial = study.ask()
        running = InFlight(trial, curve=[{"epoch": 1, "val_accuracy": value}])
        numbers[value] = should_stop(study, spec, running, None)
    assert numbers[0.5] is None
    stop = numbers[0.4]
    assert stop is not None and stop["pruned_at_rung"] == 0
    assert stop["pruned_reason"] == (
        "bohb bracket 0 rung 0 (epoch 1): 0.4 is not in the top 1 of the 2 trials of its "
        "bracket there"
    )
