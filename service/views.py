"""Read-only views of Optuna's tables, converted to API responses."""

from collections.abc import Container
from pathlib import Path
from typing import Any

import optuna
from optuna.storages import RDBStorage
from optuna.trial import FrozenTrial, TrialState
from sqlalchemy.orm import Session

from service import trial_queries
from service.artifacts import available
from service.orm import StudyRow
from service.schemas import CurvePoint, StudyCreate, StudyPublic, TrialDetail, TrialPublic


def _study_id(storage: RDBStorage, name: str) -> int | None:
    try:
        return storage.get_study_id_from_name(name)
    except KeyError:
        return None


def load_trials(
    storage: RDBStorage, optuna_study_name: str, states: Container[TrialState] | None = None
) -> list[FrozenTrial]:
    """Every trial of a study (or those in ``states``), oldest first (empty if the Optuna
    study is gone). It reads the whole study: what a request shows comes from
    :mod:`service.trial_queries` instead."""
    sid = _study_id(storage, optuna_study_name)
    return [] if sid is None else storage.get_all_trials(sid, deepcopy=False, states=states)


def trial_counts(trials: list[FrozenTrial]) -> dict[str, int]:
    counts = {s.name: 0 for s in TrialState}
    for t in trials:
        counts[t.state.name] += 1
    return counts


def directions(spec: dict[str, Any]) -> list[str]:
    """The objective directions of a stored spec."""
    return [o["direction"] for o in spec["objectives"]]


def pareto_front(trials: list[FrozenTrial], dirs: list[str]) -> list[FrozenTrial]:
    """Completed trials that no other completed trial beats in every objective."""
    signs = [1.0 if d == "maximize" else -1.0 for d in dirs]
    done = [t for t in trials if t.state == TrialState.COMPLETE and t.values is not None]
    scored = [(t, [s * v for s, v in zip(signs, t.values, strict=True)]) for t in done]

    def dominated(a: list[float]) -> bool:
        return any(all(x >= y for x, y in zip(b, a, strict=True)) and b != a for _, b in scored)

    return [t for t, score in scored if not dominated(score)]


def best_trial(trials: list[FrozenTrial], direction: str) -> FrozenTrial | None:
    done = [(t.value, t) for t in trials if t.state == TrialState.COMPLETE and t.value is not None]
    if not done:
        return None
    sign = 1.0 if direction == "maximize" else -1.0
    # Ties go to the earliest trial, as in Optuna: max() keeps the first maximum it meets.
    return max(done, key=lambda vt: sign * vt[0])[1]


def study_public(row: StudyRow, session: Session) -> StudyPublic:
    """A study as the API shows it: its trials counted by state (one ``GROUP BY``) and, with
    one objective, its best value (one ordered query), whatever the study's size."""
    sid = trial_queries.optuna_study_id(session, row.optuna_study_name)
    dirs = directions(row.spec)
    best = trial_queries.best_trial(session, sid, dirs[0]) if len(dirs) == 1 else None
    return StudyPublic(
        id=row.id,
        name=row.name,
        status=row.status,
        status_reason=row.status_reason,
        optuna_study_name=row.optuna_study_name,
        created_at=row.created_at,
        started_at=row.started_at,
        finished_at=row.finished_at,
        trial_counts=trial_queries.count_by_state(session, sid),
        best_value=best.value if best else None,
        spec=row.spec,
    )


# Served by their own fields (learning_curve, final_metrics), not repeated in user_attrs.
_BULKY = ("curve", "final_metrics")


def _trial_fields(t: FrozenTrial) -> dict[str, Any]:
    duration = t.duration.total_seconds() if t.duration else None
    return {
        "number": t.number,
        "state": t.state.name,
        "params": t.params,
        "value": t.values[0] if t.state == TrialState.COMPLETE and t.values else None,
        "values": t.values if t.state == TrialState.COMPLETE else None,
        "intermediate_values": dict(sorted(t.intermediate_values.items())),
        "fail_reason": t.user_attrs.get("fail_reason"),
        "node_id": t.user_attrs.get("node_id"),
        "user_attrs": {k: v for k, v in t.user_attrs.items() if k not in _BULKY},
        "datetime_start": t.datetime_start,
        "datetime_complete": t.datetime_complete,
        "duration_s": duration,
    }


def trial_public(t: FrozenTrial) -> TrialPublic:
    return TrialPublic(**_trial_fields(t))


def trial_detail(t: FrozenTrial, data_dir: Path) -> TrialDetail:
    curve = [
        CurvePoint(
            epoch=int(p["epoch"]), metrics={k: float(v) for k, v in p.items() if k != "epoch"}
        )
        for p in t.user_attrs.get("curve", [])
    ]
    return TrialDetail(
        **_trial_fields(t),
        learning_curve=curve,
        final_metrics=t.user_attrs.get("final_metrics", {}),
        artifacts=available(t, data_dir),
    )


def delete_optuna_study(storage: RDBStorage, name: str) -> None:
    if _study_id(storage, name) is not None:
        optuna.delete_study(study_name=name, storage=storage)


def retrain_spec(spec: dict[str, Any], trial: FrozenTrial, epochs: int | None) -> dict[str, Any]:
    """A study of one trial that trains ``trial``'s architecture and hyperparameters again.

    Every searched parameter is fixed to the trial's value (a NAS study's architecture
    included), the search space is empty, and the seed is the one the trial trained with, so
    with the same ``epochs`` it reproduces the trial; with more it is the full training.
    """
    body = StudyCreate.model_validate(spec)
    task = body.to_spec().task.with_params(trial.params)
    training = dict(task.training)
    if epochs is not None:
        training["epochs"] = epochs
    retrain: dict[str, Any] = (
        {"kind": "function", "name": task.function, "options": dict(task.options)}
        if task.kind == "function"
        else {
            "dataset": body.task.dataset.model_dump() if body.task.dataset else None,
            "model": dict(task.model),
            "training": training,
        }
    )
    return {
        "name": f"{body.name}-trial-{trial.number}"[:128],
        "objectives": [o.model_dump() for o in body.objective_list()],
        "algorithm": {"name": "random"},
        "budget": {"max_trials": 1},
        "resources": body.resources.model_dump(),
        "seed": body.seed + trial.number,
        "task": retrain,
    }
