"""Outcome constraints: parsing, checks, feasibility per trial, rejection before training, and
the best trial / Pareto front taken among feasible trials only."""

from dataclasses import replace
from pathlib import Path
from typing import Any, Literal

import optuna
import pytest
from optuna.trial import TrialState
from pydantic import ValidationError

from models.data import dataset_info
from models.families import build_model
from search.constraints import (
    FEASIBLE,
    REASON,
    VIOLATIONS,
    Feasibility,
    constraint_errors,
    evaluate,
    key,
    param_count,
    reason,
)
from search.document import from_document, to_document
from search.loop.inflight import InFlight
from search.results import best_trial, pareto_front
from search.spec import Constraint, FunctionTask, Objective, ParamSpec
from search.trials.train import TRAIN, limits
from tests.search.conftest import digits_spec

LE = Constraint("param_count", le=5000)
GE = Constraint("val_accuracy", ge=0.9)


def test_evaluate_checks_each_bound_and_reports_its_violation() -> None:
    feasible, found = evaluate((LE, GE), {"param_count": 4000.0, "val_accuracy": 0.95})
    assert feasible
    assert found == {"param_count<=5000": -1000.0, "val_accuracy>=0.9": pytest.approx(-0.05)}
    feasible, found = evaluate((LE, GE), {"param_count": 5000.0, "val_accuracy": 0.8})
    assert not feasible  # the bound itself is feasible; the accuracy is not
    assert found["param_count<=5000"] == 0.0
    assert found["val_accuracy>=0.9"] == pytest.approx(0.1)


def test_a_constrained_metric_not_measured_is_infeasible() -> None:
    feasible, found = evaluate((LE, GE), {"param_count": 10.0})
    assert not feasible
    assert list(found) == ["param_count<=5000"]
    assert reason((LE, GE), {"param_count": 10.0}) == "infeasible: val_accuracy not measured"


def test_the_reason_names_the_value_and_the_bound() -> None:
    assert reason((LE,), {"param_count": 81234.0}) == "infeasible: param_count 81234 > 5000"
    both = reason((LE, GE), {"param_count": 81234.0, "val_accuracy": 0.5})
    assert both == "infeasible: param_count 81234 > 5000; val_accuracy 0.5 < 0.9"
    assert key(GE) == "val_accuracy>=0.9"


def test_constraints_round_trip_through_the_stored_document() -> None:
    spec = replace(digits_spec("c", 0, 4, 1, 1), constraints=(LE, GE))
    doc = to_document(spec)
    assert doc["constraints"] == [
        {"metric": "param_count", "le": 5000, "ge": None},
        {"metric": "val_accuracy", "le": None, "ge": 0.9},
    ]
    assert from_document(doc).constraints == (LE, GE)
    del doc["constraints"]  # a document written before constraints existed
    assert from_document(doc).constraints == ()


def test_a_constraint_on_a_metric_the_task_never_measures_is_an_error() -> None:
    info = dataset_info("digits", {})
    spec = replace(digits_spec("c", 0, 4, 1, 1), constraints=(Constraint("val_rmse", le=1.0),))
    errors = constraint_errors(spec, info)
    assert [e.loc for e in errors] == [("constraints", 0, "metric")]
    assert "regression" in errors[0].msg
    function = replace(spec, task=FunctionTask("branin"), constraints=(LE,))
    assert [e.loc for e in constraint_errors(function, None)] == [("constraints", 0, "metric")]
    both = replace(spec, constraints=(Constraint("param_count", le=1, ge=0),))
    assert [e.loc for e in constraint_errors(both, info)] == [("constraints", 0)]
    assert constraint_errors(replace(spec, constraints=(LE, GE)), info) == []


def test_the_meta_device_count_matches_the_built_network() -> None:
    info = dataset_info("digits", {})
    spec = digits_spec("c", 0, 4, 1, 1)
    counted = param_count(spec, {"model.width": 24}, info)
    net = build_model({"family": "mlp", "hidden_layers": 1, "width": 24}, info.input_shape, 10)
    assert counted == sum(p.numel() for p in net.parameters())
    assert counted == 64 * 24 + 24 + 24 * 10 + 10
    other = param_count(spec, {"model.width": 24, "model.hidden_layers": 2}, info)
    assert other == counted + 24 * 24 + 24
    function = replace(spec, task=FunctionTask("branin"))
    assert param_count(function, {}, info) is None


def _study(directions: list[Literal["maximize", "minimize"]] | None = None) -> optuna.Study:
    return optuna.create_study(directions=directions or ["maximize"])


def _running(study: optuna.Study, width: int) -> InFlight:
    trial = study.ask()
    trial.suggest_int("model.width", 8, 32)
    # a fixed width: enqueue-free, the loop's params are what the trial runs with
    return InFlight(trial, params={"model.width": width})


def test_a_trial_past_a_pre_training_bound_is_pruned_before_any_epoch() -> None:
    info = dataset_info("digits", {})
    limit = Constraint("param_count", le=1000)
    spec = replace(digits_spec("c", 0, 4, 1, 1), constraints=(limit, GE))
    gate = Feasibility(spec, info)
    study = _study()
    small, large = _running(study, 8), _running(study, 32)  # 610 and 2410 parameters
    assert not gate.rejects(small, study)
    assert study.trials[0].state == TrialState.RUNNING
    assert gate.rejects(large, study)
    frozen = study.trials[1]
    assert frozen.state == TrialState.PRUNED
    assert frozen.user_attrs[FEASIBLE] is False
    assert frozen.user_attrs[REASON] == "infeasible: param_count 2410 > 1000"
    assert frozen.user_attrs["pruned_at_epoch"] == 0
    assert frozen.user_attrs[VIOLATIONS] == {"param_count<=1000": 1410.0}
    assert frozen.constraints == {"param_count<=1000": pytest.approx(1.41)}  # relative


def test_a_trial_whose_measured_latency_is_past_its_bound_is_pruned_before_any_epoch() -> None:
    info = dataset_info("digits", {})
    limit = Constraint("latency_ms", le=0.01)
    spec = replace(digits_spec("c", 0, 4, 1, 1), constraints=(limit, LE))
    gate = Feasibility(spec, info)
    study = _study()
    fast, slow = _running(study, 8), _running(study, 8)
    assert not gate.rejects(fast, study)  # the count is within its bound; the latency unknown
    assert not gate.rejects(fast, study, {"latency_ms": 0.004})
    assert gate.rejects(slow, study, {"latency_ms": 0.025})
    frozen = study.trials[1]
    assert frozen.state == TrialState.PRUNED
    assert frozen.user_attrs[REASON] == "infeasible: latency_ms 0.025 > 0.01"
    assert frozen.user_attrs["latency_ms"] == 0.025 and frozen.user_attrs["pruned_at_epoch"] == 0
    assert frozen.user_attrs[VIOLATIONS] == {"latency_ms<=0.01": pytest.approx(0.015)}


def test_a_trial_measures_its_network_first_only_when_the_study_needs_it() -> None:
    base = digits_spec("c", 0, 4, 1, 1)
    latency = Constraint("latency_ms", le=0.5)
    assert limits(base) is None
    assert limits(replace(base, constraints=(LE,))) is None
    assert limits(replace(base, constraints=(LE, latency))) == (latency,)
    objectives = (Objective("val_accuracy", "maximize"), Objective("latency_ms", "minimize"))
    assert limits(replace(base, objectives=objectives)) == ()  # measured, bound by nothing
    payload = TRAIN.payload(replace(base, constraints=(latency,)), {"model.width": 8}, 0, None)
    assert payload.limits == (latency,)


def test_no_constraint_known_before_training_rejects_nothing() -> None:
    info = dataset_info("digits", {})
    study = _study()
    for given in ((), (GE,)):
        spec = replace(digits_spec("c", 0, 4, 1, 1), constraints=given)
        running = _running(study, 32)
        assert not Feasibility(spec, info).rejects(running, study)
        assert running.pending == {}


def test_a_finished_trial_records_its_feasibility_for_the_samplers() -> None:
    spec = replace(digits_spec("c", 0, 4, 1, 1), constraints=(LE, GE))
    gate = Feasibility(spec, None)
    study = _study()
    for accuracy in (0.95, 0.8):
        running = _running(study, 8)
        gate.record(running, {"param_count": 610.0, "val_accuracy": accuracy})
        running.save()
        study.tell(running.trial, accuracy)
    good, bad = study.trials
    assert good.user_attrs[FEASIBLE] is True and bad.user_attrs[FEASIBLE] is False
    assert bad.user_attrs["infeasible_reason"] == "infeasible: val_accuracy 0.8 < 0.9"
    assert all(v <= 0 for v in good.constraints.values())
    assert bad.constraints["val_accuracy>=0.9"] == pytest.approx(0.1 / 0.9)
    # Optuna's own best trial agrees: the infeasible one is worse than nothing
    assert study.best_trial.number == good.number


def _finished(
    study: optuna.Study, values: list[float], feasible: bool | None
) -> optuna.trial.FrozenTrial:
    trial = study.ask()
    if feasible is not None:
        trial.set_user_attr(FEASIBLE, feasible)
    study.tell(trial, values if len(values) > 1 else values[0])
    return study.trials[-1]


def test_the_best_trial_is_the_best_feasible_one() -> None:
    study = _study()
    _finished(study, [0.99], False)
    kept = _finished(study, [0.9], True)
    _finished(study, [0.8], None)
    best = best_trial(study.trials, "maximize")
    assert best is not None and best.number == kept.number
    only_bad = _study()
    _finished(only_bad, [0.99], False)
    assert best_trial(only_bad.trials, "maximize") is None


def test_the_pareto_front_holds_feasible_trials_only() -> None:
    study = _study(["maximize", "minimize"])
    _finished(study, [0.99, 100.0], False)  # would dominate everything
    a = _finished(study, [0.9, 200.0], True)
    b = _finished(study, [0.8, 150.0], None)
    _finished(study, [0.7, 300.0], True)  # dominated
    front = pareto_front(study.trials, ["maximize", "minimize"])
    assert sorted(t.number for t in front) == [a.number, b.number]


def test_tpe_learns_from_rejected_trials() -> None:
    """Why a rejection is PRUNED and not FAIL: TPE puts a pruned trial past its bound in its
    worse group and stops proposing that region, while it ignores failed trials. The
    objective rewards width, so a sampler blind to the bound keeps proposing widths past it."""
    info = dataset_info("digits", {})
    spec = replace(
        digits_spec("c", 0, 4, 1, 1),
        constraints=(Constraint("param_count", le=1300),),  # width <= 17
        search_space=(ParamSpec("model.width", "int", low=8, high=64),),
    )
    gate = Feasibility(spec, info)

    def rejected(as_pruned: bool) -> int:
        sampler = optuna.samplers.TPESampler(seed=0, n_startup_trials=10)
        study = optuna.create_study(direction="maximize", sampler=sampler)
        count = 0
        for _ in range(40):
            trial = study.ask()
            width = trial.suggest_int("model.width", 8, 64)
            running = InFlight(trial, params={"model.width": width})
            if as_pruned and gate.rejects(running, study):
                count += 1
            elif not as_pruned and width > 17:
                count += 1
                study.tell(trial, state=TrialState.FAIL)
            else:
                study.tell(trial, width / 64)
        return count

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    as_pruned, as_failed = rejected(True), rejected(False)
    assert as_pruned < as_failed - 5, (as_pruned, as_failed)


def test_the_api_schema_refuses_bad_constraints_at_their_path(digits_body: Any) -> None:
    from service.api.schemas.study import StudyCreate

    for given, loc in (
        ([{"metric": "no pe", "le": 1}], ("constraints", 0, "metric")),  # no metric name
        ([{"metric": "param_count"}], ("constraints", 0)),
        ([{"metric": "param_count", "le": 1, "ge": 0}], ("constraints", 0)),
        ([{"metric": "param_count", "lt": 1}], ("constraints", 0, "lt")),
    ):
        with pytest.raises(ValidationError) as caught:
            StudyCreate.model_validate({**digits_body, "constraints": given})
        assert caught.value.errors()[0]["loc"] == loc
    ok = StudyCreate.model_validate(
        {**digits_body, "constraints": [{"metric": "latency_ms", "le": 0.5}]}
    )
    assert ok.constraints[0].le == 0.5


@pytest.fixture
def digits_body() -> dict[str, Any]:
    import yaml

    with open(Path(__file__).resolve().parents[2] / "examples" / "digits-mlp.yaml") as f:
        body: dict[str, Any] = yaml.safe_load(f)
    return body


def test_the_report_marks_feasibility() -> None:
    from service.api.convert import spec_json
    from service.reports.report import render_report

    info = dataset_info("digits", {})
    spec = replace(digits_spec("c", 0, 4, 1, 1), constraints=(Constraint("param_count", le=1000),))
    gate = Feasibility(spec, info)
    study = _study()
    rejected = _running(study, 32)
    assert gate.rejects(rejected, study)
    kept = _running(study, 8)
    gate.record(kept, {"param_count": 610.0, "val_accuracy": 0.9})
    kept.save()
    study.tell(kept.trial, 0.9)
    html = render_report(study, spec_json(spec))
    assert '<section id="feasibility">' in html
    assert "param_count \u2264 1000" in html
    assert "Feasible: 1 of 2 trials checked; infeasible: 1 (1 rejected before training" in html
    assert "infeasible: param_count 2410 &gt; 1000" in html
    plain = render_report(study, spec_json(replace(spec, constraints=())))
    assert 'id="feasibility"' not in plain


def test_the_apis_best_trial_query_skips_infeasible_trials(tmp_path: Path) -> None:
    from sqlalchemy import create_engine
    from sqlalchemy.orm import Session

    from service.store import optuna_sql

    url = f"sqlite:///{tmp_path / 'best.db'}"
    storage = optuna.storages.RDBStorage(url)
    study = optuna.create_study(storage=storage, study_name="c", direction="maximize")
    _finished(study, [0.99], False)
    kept = _finished(study, [0.9], True)
    _finished(study, [0.8], None)
    with Session(create_engine(url)) as session:
        sid = optuna_sql.optuna_study_id(session, "c")
        best = optuna_sql.best_trial(session, sid, "maximize")
        assert best is not None and best.number == kept.number
        assert optuna_sql.best_trial(session, sid, "minimize").number == 2  # type: ignore[union-attr]


def test_the_submission_check_names_each_bad_constraint(digits_body: Any) -> None:
    import yaml

    from service.api.convert import to_spec
    from service.api.schemas.study import StudyCreate
    from service.api.validation import check_submission

    def problems(**changes: Any) -> list[tuple[Any, str]]:
        body = StudyCreate.model_validate({**digits_body, **changes})
        return check_submission(body, to_spec(body), lambda _id: None, lambda _id: None)

    fine = [{"metric": "param_count", "le": 5000}, {"metric": "mc_ece", "le": 0.1}]
    assert problems(constraints=fine) == []
    assert problems(constraints=[{"metric": "val_gap", "le": 0.05}]) == []  # the example
    wrong_task = problems(constraints=[{"metric": "val_mae", "le": 1}])
    assert [loc for loc, _ in wrong_task] == [("constraints", 0, "metric")]
    example = Path(__file__).resolve().parents[2] / "examples" / "constraints-nas.yaml"
    with open(example) as f:
        body = StudyCreate.model_validate(yaml.safe_load(f))
    assert check_submission(body, to_spec(body), lambda _id: None, lambda _id: None) == []
    assert to_spec(body).constraints == (
        Constraint("param_count", le=3000),
        Constraint("latency_ms", le=0.5),
    )
    pbt = {"name": "pbt", "settings": {"population_size": 4}}
    refused = problems(constraints=fine, algorithm=pbt)
    assert ("constraints",) in [loc for loc, _ in refused], refused
