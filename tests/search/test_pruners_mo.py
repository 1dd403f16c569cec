"""Multi-objective early stopping: non-dominated sorting, crowding, and the rung decisions of
``mo_asha`` and ``mo_median`` on hand-made curves; the loop's own question to them; the
checks that refuse them for one objective."""

import itertools
import math
import random
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import optuna
import pytest
import yaml
from fastapi.testclient import TestClient

from search import attrs, pruners_mo
from search.checks import check_study
from search.loop.inflight import InFlight
from search.loop.pruning import should_stop
from search.pruners_mo import MoAshaPruner, MoMedianPruner, crowding, dominates, fronts, ranking
from search.registry import pruner
from search.spec import AlgorithmSpec, Objective
from search.trials.train import load_named
from tests.search.conftest import DIGITS, digits_spec
from tests.service.api._inprocess import _client
from tests.service.api._validation import EXAMPLE, STUDIES

ACC_SIZE = (Objective("val_accuracy", "maximize"), Objective("val_loss", "minimize"))


def brute_fronts(points: list[tuple[float, ...]]) -> list[set[int]]:
    """Fronts by the definition: peel off the points no remaining point dominates."""
    left, result = set(range(len(points))), []
    while left:
        front = {i for i in left if not any(dominates(points[j], points[i]) for j in left)}
        result.append(front)
        left -= front
    return result


def test_fronts_of_hand_made_points() -> None:
    points = [(1.0, 5.0), (2.0, 2.0), (5.0, 1.0), (3.0, 3.0), (4.0, 4.0), (2.0, 2.0)]
    assert fronts(points) == [[0, 1, 2, 5], [3], [4]]


@pytest.mark.parametrize("seed", range(5))
def test_fronts_match_the_definition_on_random_points(seed: int) -> None:
    rng = random.Random(seed)
    points = [tuple(float(rng.randint(0, 6)) for _ in range(3)) for _ in range(40)]
    assert [set(f) for f in fronts(points)] == brute_fronts(points)
    assert sorted(itertools.chain(*fronts(points))) == list(range(40))


def test_crowding_gives_the_ends_infinity_and_the_middle_its_gap() -> None:
    points = [(0.0, 4.0), (1.0, 3.0), (3.0, 1.0), (4.0, 0.0)]
    gaps = crowding(points, [0, 1, 2, 3])
    assert gaps[0] == gaps[3] == math.inf
    # point 1: neighbours 0 and 2 span 3/4 of each objective's range
    assert gaps[1] == pytest.approx(0.75 + 0.75)
    assert gaps[2] == pytest.approx((4.0 - 1.0) / 4 + (3.0 - 0.0) / 4)


def test_ranking_puts_fronts_first_and_sparse_points_first_within_one() -> None:
    # front 0: 0, 1, 2, 3 (1 is crowded next to 0); front 1: 4
    points = [(0.0, 4.0), (0.1, 3.9), (2.0, 2.0), (4.0, 0.0), (3.0, 3.0)]
    order = ranking(points)
    assert [f for _, f in order] == [0, 0, 0, 0, 1]
    assert {i for i, _ in order[:2]} == {0, 3}  # the ends
    assert order[2][0] == 2 and order[3][0] == 1  # the sparse one before the crowded one


def curve(*points: tuple[float, float]) -> list[dict[str, Any]]:
    """A curve of (val_accuracy, val_loss) per epoch."""
    return [{"epoch": e, "val_accuracy": a, "val_loss": v} for e, (a, v) in enumerate(points, 1)]


def asha(**settings: Any) -> MoAshaPruner:
    p = MoAshaPruner(**settings)
    p.objectives = ACC_SIZE
    return p


def test_rungs_fall_at_min_resource_times_powers_of_eta() -> None:
    p = asha(min_resource=2, reduction_factor=3)
    assert [e for e in range(1, 60) if p.rung_of(e) is not None] == [2, 6, 18, 54]
    assert p.rung_of(6) == 1
    skipping = asha(min_resource=1, reduction_factor=2, min_early_stopping_rate=2)
    assert [e for e in range(1, 20) if skipping.rung_of(e) is not None] == [4, 8, 16]


def test_mo_asha_keeps_the_top_third_by_non_dominated_sorting() -> None:
    p = asha(min_resource=1, reduction_factor=3)
    # at epoch 1: trials 0 and 1 on the front, 2 to 5 dominated by 0
    p.curves = {
        0: curve((0.9, 0.2)),
        1: curve((0.95, 0.5)),
        2: curve((0.5, 0.9)),
        3: curve((0.6, 0.8)),
        4: curve((0.7, 0.7)),
        5: curve((0.8, 0.6)),
    }
    assert p.judge(0, epochs=9) is None
    assert p.judge(1, epochs=9) is None
    verdict = p.judge(5, epochs=9)
    assert verdict is not None and verdict.rung == 0
    assert "rank" in verdict.reason and "of 6" in verdict.reason and "top 2" in verdict.reason
    assert "val_accuracy" in verdict.reason and "val_loss" in verdict.reason
    # past the rung, or at a trial's last epoch, nothing is decided
    p.curves[5] = curve((0.8, 0.6), (0.8, 0.6))
    assert p.judge(5, epochs=9) is None
    assert p.judge(2, epochs=1) is None


def test_mo_asha_with_fewer_trials_than_eta_keeps_the_first_front_only() -> None:
    p = asha(min_resource=1, reduction_factor=4)
    p.curves = {0: curve((0.9, 0.2))}
    assert p.judge(0, epochs=9) is None  # the first trial is alone at its rung
    p.curves[1] = curve((0.5, 0.1))  # better loss: on the front too
    assert p.judge(1, epochs=9) is None
    p.curves[2] = curve((0.4, 0.3))  # dominated by 0 and by 1
    verdict = p.judge(2, epochs=9)
    assert verdict is not None and "not on the first front" in verdict.reason


def test_mo_asha_ranks_at_later_rungs_only_those_that_reached_them() -> None:
    p = asha(min_resource=1, reduction_factor=2)
    p.curves = {
        0: curve((0.5, 0.5), (0.9, 0.1)),
        1: curve((0.6, 0.4), (0.7, 0.3)),
        2: curve((0.9, 0.1)),  # reached rung 0 only: not a competitor at epoch 2
    }
    verdict = p.judge(1, epochs=8)  # epoch 2 is rung 1: 2 trials, keep 1; 0 dominates 1
    assert verdict is not None and verdict.rung == 1 and "epoch 2" in verdict.reason
    assert p.judge(0, epochs=8) is None


def test_an_objective_missing_from_the_curve_is_left_out_and_a_constant_one_is_kept() -> None:
    objectives = (
        Objective("val_accuracy", "maximize"),
        Objective("param_count", "minimize"),
        Objective("latency_ms", "minimize"),
    )
    p = MoAshaPruner(min_resource=1, reduction_factor=2)
    p.objectives = objectives
    # param_count reported once (epoch 1) counts at every epoch; latency_ms is never reported
    p.curves = {
        0: [
            {"epoch": 1, "val_accuracy": 0.9, "param_count": 100.0},
            {"epoch": 2, "val_accuracy": 0.9},
        ],
        1: [
            {"epoch": 1, "val_accuracy": 0.8, "param_count": 50.0},
            {"epoch": 2, "val_accuracy": 0.8},
        ],
        2: [
            {"epoch": 1, "val_accuracy": 0.7, "param_count": 80.0},
            {"epoch": 2, "val_accuracy": 0.7},
        ],
        3: [
            {"epoch": 1, "val_accuracy": 0.6, "param_count": 90.0},
            {"epoch": 2, "val_accuracy": 0.6},
        ],
    }
    # at epoch 2 (rung 1), keep 2 of 4: 0 and 1 are on the front (accuracy against size)
    assert p.judge(1, epochs=8) is None
    assert p.judge(0, epochs=8) is None
    verdict = p.judge(2, epochs=8)
    assert verdict is not None and "ranked 3 of 4" in verdict.reason
    assert "param_count" in verdict.reason and "latency_ms" not in verdict.reason


def test_nan_values_rank_last() -> None:
    p = asha(min_resource=1, reduction_factor=2)
    p.curves = {0: curve((math.nan, math.nan)), 1: curve((0.1, 5.0))}
    assert p.judge(0, epochs=5) is not None
    assert p.judge(1, epochs=5) is None


def median(**settings: Any) -> MoMedianPruner:
    p = MoMedianPruner(**settings)
    p.objectives = ACC_SIZE
    return p


def test_mo_median_stops_the_worse_half_after_its_startup_trials() -> None:
    p = median(n_startup_trials=2)
    p.curves = {
        0: curve((0.9, 0.1), (0.9, 0.1)),
        1: curve((0.8, 0.2), (0.8, 0.2)),
        2: curve((0.7, 0.3)),
        3: curve((0.85, 0.15)),
    }
    p.finished(0, [0.9, 0.1])
    assert p.judge(2, epochs=10) is None  # one trial finished of the two it waits for
    p.finished(1, [0.8, 0.2])
    verdict = p.judge(2, epochs=10)  # 4th of 4 at epoch 1
    assert verdict is not None and verdict.rung == 1 and "worse half" in verdict.reason
    assert p.judge(3, epochs=10) is None  # 2nd of 4
    warm = median(n_startup_trials=0, n_warmup_steps=1)
    warm.curves = dict(p.curves)
    assert warm.judge(2, epochs=10) is None  # epoch 1 is a warm-up epoch


def test_mo_median_never_stops_a_trial_on_the_first_front() -> None:
    p = median(n_startup_trials=0)
    p.curves = {
        0: curve((0.9, 0.9)),
        1: curve((0.8, 0.8)),
        2: curve((0.7, 0.7)),
        3: curve((0.6, 0.6)),
        4: curve((0.1, 0.05)),  # worst accuracy, best loss: on the front
    }
    assert p.judge(4, epochs=10) is None


def mo_spec(pruner_name: str, settings: dict[str, Any] | None = None) -> Any:
    spec = digits_spec("mo", 0, 8, 1, 9)
    return replace(spec, objectives=ACC_SIZE, pruner=AlgorithmSpec(pruner_name, settings or {}))


@pytest.mark.parametrize("name", ["mo_asha", "mo_median"])
def test_one_objective_is_refused_at_the_pruner_name(name: str) -> None:
    spec = replace(mo_spec(name), objectives=(Objective("val_accuracy", "maximize"),))
    errors = check_study(spec, None)
    assert [(e.loc, e.msg) for e in errors] == [
        (("pruner", "name"), f"{name} needs several objectives; for one objective use {name[3:]}")
    ]
    assert check_study(mo_spec(name), None) == []


def test_objectives_measured_only_at_the_end_are_refused() -> None:
    end_only = (Objective("param_count", "minimize"), Objective("latency_ms", "minimize"))
    errors = check_study(replace(mo_spec("mo_asha"), objectives=end_only), None)
    assert [e.loc for e in errors] == [("pruner", "name")]
    assert "measured every epoch" in errors[0].msg


def test_bad_settings_are_refused_at_their_path() -> None:
    errors = check_study(mo_spec("mo_asha", {"reduction_factor": 1, "rungs": 3}), None)
    assert {e.loc for e in errors} == {
        ("pruner", "settings", "reduction_factor"),
        ("pruner", "settings", "rungs"),
    }


def test_single_objective_pruners_still_refuse_several_objectives() -> None:
    errors = check_study(mo_spec("asha"), None)
    assert [e.loc for e in errors] == [("pruner",)]


def test_the_loop_asks_the_pruner_itself_in_a_study_of_two_objectives() -> None:
    algorithm = pruner("mo_asha")
    created = algorithm.create(algorithm.read_settings({"reduction_factor": 2})[0])
    storage = optuna.storages.InMemoryStorage()
    study = optuna.create_study(
        storage=storage, directions=["maximize", "minimize"], pruner=created
    )
    spec = mo_spec("mo_asha", {"reduction_factor": 2})
    good, bad = study.ask(), study.ask()
    with pytest.raises(NotImplementedError):
        good.should_prune()  # what Optuna does for several objectives
    assert should_stop(study, spec, InFlight(good, curve((0.9, 0.1))), None) is None
    stop = should_stop(study, spec, InFlight(bad, curve((0.5, 0.5))), None)
    assert stop is not None and stop["pruned_at_rung"] == 0
    assert stop["pruned_reason"].startswith("mo_asha rung 0 (epoch 1)")
    # a new pruner (a restarted scheduler) reads the curves the study stored
    attrs.write(study.ask(), {"curve": curve((0.95, 0.05))})
    fresh = algorithm.create(algorithm.read_settings({"reduction_factor": 2})[0])
    restarted = optuna.load_study(study_name=study.study_name, storage=storage, pruner=fresh)
    other = restarted.ask()
    assert should_stop(restarted, spec, InFlight(other, curve((0.92, 0.08))), None) is not None


def test_the_parameter_count_is_counted_before_training_and_ranked_every_epoch() -> None:
    info = load_named(DIGITS).info
    objectives = (Objective("val_accuracy", "maximize"), Objective("param_count", "minimize"))
    spec = replace(mo_spec("mo_asha", {"reduction_factor": 2}), objectives=objectives)
    algorithm = pruner("mo_asha")
    created = algorithm.create(algorithm.read_settings({"reduction_factor": 2})[0])
    study = optuna.create_study(directions=["maximize", "minimize"], pruner=created)
    # a wide network (alone at the rung: kept), then a narrow one as accurate: it dominates
    wide = InFlight(study.ask(), [{"epoch": 1, "val_accuracy": 0.8}], params={"model.width": 32})
    narrow = InFlight(study.ask(), [{"epoch": 1, "val_accuracy": 0.8}], params={"model.width": 8})
    assert should_stop(study, spec, wide, info) is None
    assert should_stop(study, spec, narrow, info) is None
    assert narrow.notes["known"]["param_count"] < wide.notes["known"]["param_count"]
    # a third as wide as the first and less accurate: dominated, ranked on both objectives
    third = InFlight(study.ask(), [{"epoch": 1, "val_accuracy": 0.7}], params={"model.width": 32})
    stop = should_stop(study, spec, third, info)
    assert stop is not None and "param_count (min)" in stop["pruned_reason"]
    assert third.notes["known"] == wide.notes["known"]
    # without the dataset's facts the count is unknown: ranked on accuracy alone
    blind = algorithm.create(algorithm.read_settings({"reduction_factor": 2})[0])
    study = optuna.create_study(directions=["maximize", "minimize"], pruner=blind)
    first = InFlight(study.ask(), [{"epoch": 1, "val_accuracy": 0.9}], params={"model.width": 32})
    assert should_stop(study, spec, first, None) is None
    later = InFlight(study.ask(), [{"epoch": 1, "val_accuracy": 0.8}], params={"model.width": 8})
    stop = should_stop(study, spec, later, None)
    assert stop is not None and "param_count" not in stop["pruned_reason"]


def test_the_latency_timed_before_training_is_ranked_every_epoch() -> None:
    objectives = (Objective("val_accuracy", "maximize"), Objective("latency_ms", "minimize"))
    spec = replace(mo_spec("mo_asha", {"reduction_factor": 2}), objectives=objectives)
    algorithm = pruner("mo_asha")
    created = algorithm.create(algorithm.read_settings({"reduction_factor": 2})[0])
    study = optuna.create_study(directions=["maximize", "minimize"], pruner=created)

    def running(accuracy: float, latency: float) -> InFlight:
        trial = InFlight(study.ask(), [{"epoch": 1, "val_accuracy": accuracy}])
        trial.notes["measured"] = {"latency_ms": latency}  # as the loop keeps a Measured event
        return trial

    assert should_stop(study, spec, running(0.8, 0.01), None) is None  # alone at the rung
    # as accurate and slower: dominated, stopped, ranked on both objectives
    stop = should_stop(study, spec, running(0.8, 0.02), None)
    assert stop is not None
    assert "val_accuracy (max), latency_ms (min)" in stop["pruned_reason"]
    assert "ranked 2 of 2" in stop["pruned_reason"]
    # as accurate and the fastest: it dominates both and goes on
    assert should_stop(study, spec, running(0.8, 0.001), None) is None


@pytest.fixture
def api(tmp_path: Path) -> Iterator[TestClient]:
    yield from _client(tmp_path)


def two_objectives(pruner_spec: dict[str, Any], objectives: list[dict[str, str]]) -> dict[str, Any]:
    spec = yaml.safe_load(EXAMPLE.read_text())
    spec.pop("objective")
    spec["objectives"] = objectives
    spec["algorithm"] = {"name": "nsga2", "settings": {"seed": 0}}
    spec["pruner"] = pruner_spec
    return dict(spec)


ACC = {"metric": "val_accuracy", "direction": "maximize"}
PARAMS = {"metric": "param_count", "direction": "minimize"}


@pytest.mark.parametrize(
    ("pruner_spec", "objectives", "path", "words"),
    [
        ({"name": "mo_asha"}, [ACC], "pruner.name", "mo_asha needs several objectives"),
        ({"name": "mo_median"}, [ACC], "pruner.name", "mo_median needs several objectives"),
        (
            {"name": "mo_asha", "settings": {"reduction_factor": 1}},
            [ACC, PARAMS],
            "pruner.settings.reduction_factor",
            "reduction_factor",
        ),
        (
            {"name": "mo_asha"},
            [PARAMS, {"metric": "latency_ms", "direction": "minimize"}],
            "pruner.name",
            "needs an objective measured every epoch",
        ),
        ({"name": "asha"}, [ACC, PARAMS], "pruner", "early stopping needs a single objective"),
    ],
)
def test_the_api_refuses_bad_multi_objective_pruning_with_422(
    api: TestClient,
    pruner_spec: dict[str, Any],
    objectives: list[dict[str, str]],
    path: str,
    words: str,
) -> None:
    spec = two_objectives(pruner_spec, objectives)
    if len(objectives) == 1:
        spec["algorithm"] = {"name": "tpe", "settings": {"seed": 0}}
    response = api.post(STUDIES, json=spec)
    assert response.status_code == 422, response.text
    detail = {d["path"]: d["msg"] for d in response.json()["detail"]}
    assert path in detail and words in detail[path], detail
    assert api.get(STUDIES).json()["total"] == 0


def test_the_api_accepts_mo_asha_on_two_objectives(api: TestClient) -> None:
    spec = two_objectives({"name": "mo_asha", "settings": {"reduction_factor": 2}}, [ACC, PARAMS])
    response = api.post(STUDIES, json=spec)
    assert response.status_code == 201, response.text
    assert response.json()["spec"]["pruner"]["settings"]["reduction_factor"] == 2


def test_a_rung_ranks_the_latest_trials_only(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(pruners_mo, "MAX_RANKED", 3)
    p = asha(min_resource=1, reduction_factor=2)
    # trials 0 and 1 beat everyone but are the oldest: out of the window of 3
    p.curves = {
        0: curve((0.99, 0.01)),
        1: curve((0.98, 0.02)),
        2: curve((0.5, 0.5)),
        3: curve((0.6, 0.4)),
        4: curve((0.4, 0.6)),
    }
    assert p.judge(3, epochs=9) is None  # the best of 2, 3 and 4: kept (top 1 of 3)
    for judged in (2, 4):
        verdict = p.judge(judged, epochs=9)
        assert verdict is not None and "of 3" in verdict.reason
    monkeypatch.setattr(pruners_mo, "MAX_RANKED", 2000)
    verdict = p.judge(3, epochs=9)  # now 0 and 1 count: 3rd of 5, top 2 go on
    assert verdict is not None and "ranked 3 of 5" in verdict.reason
