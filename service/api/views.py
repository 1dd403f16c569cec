"""Responses of the API, from the store's rows and Optuna's trials."""

from typing import Any

from optuna.trial import FrozenTrial, TrialState
from sqlalchemy.orm import Session

from search.attrs import full_attrs, trial_attr, trial_curve
from search.datadir import DataDir
from search.retrain import retrain_spec
from service.api.artifacts import available
from service.api.convert import spec_json
from service.api.schemas.responses import CurvePoint, StudyPublic, TrialDetail, TrialPublic
from service.store import optuna_sql
from service.store.crud import study_spec
from service.store.orm import StudyRow


def study_public(row: StudyRow, session: Session) -> StudyPublic:
    """A study as the API shows it: its trials counted by state (one ``GROUP BY``) and, with
    one objective, its best value (one ordered query), whatever the study's size."""
    spec = study_spec(row)
    sid = optuna_sql.optuna_study_id(session, row.optuna_study_name)
    dirs = spec.directions
    best = optuna_sql.best_trial(session, sid, dirs[0]) if len(dirs) == 1 else None
    return StudyPublic(
        id=row.id,
        name=row.name,
        status=row.status,
        status_reason=row.status_reason,
        optuna_study_name=row.optuna_study_name,
        created_at=row.created_at,
        started_at=row.started_at,
        finished_at=row.finished_at,
        trial_counts=optuna_sql.count_by_state(session, sid),
        best_value=best.value if best else None,
        spec=spec_json(spec),
    )


# Served by their own fields (learning_curve, final_metrics, the artifact routes), not repeated
# in user_attrs; the artifact folder is a path on the server, which no answer shows. The other
# attributes are shown whole, wherever the trial keeps them (search.attrs).
_HIDDEN = ("curve", "final_metrics", "artifact_uri")


def _trial_fields(t: FrozenTrial) -> dict[str, Any]:
    duration = t.duration.total_seconds() if t.duration else None
    return {
        "number": t.number,
        "state": t.state.name,
        "params": t.params,
        "value": t.values[0] if t.state == TrialState.COMPLETE and t.values else None,
        "values": t.values if t.state == TrialState.COMPLETE else None,
        "intermediate_values": dict(sorted(t.intermediate_values.items())),
        "fail_reason": trial_attr(t, "fail_reason"),
        "feasible": trial_attr(t, "feasible"),
        "node_id": trial_attr(t, "node_id"),
        "user_attrs": {k: v for k, v in full_attrs(t).items() if k not in _HIDDEN},
        "datetime_start": t.datetime_start,
        "datetime_complete": t.datetime_complete,
        "duration_s": duration,
    }


def trial_public(t: FrozenTrial) -> TrialPublic:
    return TrialPublic(**_trial_fields(t))


def trial_detail(t: FrozenTrial, data_dir: DataDir) -> TrialDetail:
    curve = [
        CurvePoint(
            epoch=int(p["epoch"]), metrics={k: float(v) for k, v in p.items() if k != "epoch"}
        )
        for p in trial_curve(t)
    ]
    return TrialDetail(
        **_trial_fields(t),
        learning_curve=curve,
        final_metrics=trial_attr(t, "final_metrics", {}),
        artifacts=available(t, data_dir),
    )


def retrain_json(row: StudyRow, trial: FrozenTrial, epochs: int | None) -> dict[str, Any]:
    """A complete study spec (to submit) that trains ``trial`` again, with its seed: nothing
    is searched, so it has no search space, architecture section, pruner or warm start."""
    spec = spec_json(retrain_spec(study_spec(row), trial.number, trial.params, epochs))
    for key in ("search_space", "architecture", "pruner", "warm_start"):
        del spec[key]
    return spec
