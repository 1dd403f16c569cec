"""Expert suggestions: trials with given parameters queued into a study, run next.

What Optuna's ``study.enqueue_trial`` does, through the API: a WAITING trial whose
``fixed_params`` are the given parameters (the sampler fills in any the point leaves out) and
whose user attribute ``enqueued`` says who asked. The study's loop counts the queued trials
before each new trial and starts them before asking its sampler; each counts in the budget when
it runs, as a warm-start point does.
"""

from collections.abc import Mapping
from typing import Any

from optuna.storages import RDBStorage
from optuna.trial import TrialState, create_trial
from sqlalchemy.orm import Session

from search import registry
from search.checks import point_errors
from search.spec import ACTIVE
from service.errors import Conflict, SpecInvalid
from service.store import crud, optuna_sql
from service.store.orm import StudyRow


def enqueue(
    session: Session,
    storage: RDBStorage,
    row: StudyRow,
    params: Mapping[str, Any],
    asked_by: str,
) -> int:
    """Queue a trial of ``params`` into ``row``'s study; its number.

    Raises:
        SpecInvalid: a parameter not of the search space, or a value outside it (at
            ``params.<name>``).
        Conflict: the study has ended, its algorithm takes no queued trials, or its budget of
            trials is already taken.
    """
    spec = crud.study_spec(row)
    if row.status not in ACTIVE:
        raise Conflict(
            f"study {row.id} has ended ({row.status}): resume it (PATCH its budget) to run more"
        )
    kind = registry.algorithm_kind(spec.algorithm.name)
    if kind != "sampler":
        raise Conflict(
            f"study {row.id} runs {spec.algorithm.name} ({kind}), which proposes its own trials "
            "and takes no enqueued ones"
        )
    errors = point_errors(spec, params, ("params",))
    if errors:
        raise SpecInvalid([(e.loc, e.msg) for e in errors])
    study_id = optuna_sql.optuna_study_id(session, row.optuna_study_name)
    if study_id is None:
        raise Conflict(f"study {row.id} has no Optuna study (it is being deleted)")
    counts = optuna_sql.count_by_state(session, study_id)
    taken = sum(counts.values())
    if spec.budget.max_trials is not None and taken >= spec.budget.max_trials:
        raise Conflict(
            f"study {row.id} has {taken} trials of its max_trials {spec.budget.max_trials} "
            "(queued ones included): raise max_trials (PATCH) to enqueue more"
        )
    template = create_trial(
        state=TrialState.WAITING,
        system_attrs={"fixed_params": dict(params)},
        user_attrs={"enqueued": asked_by},
    )
    trial_id = storage.create_new_trial(study_id, template_trial=template)
    return storage.get_trial_number_from_id(trial_id)
