"""A submitted study checked at the edge, before anything is written.

The request's own schema (:mod:`service.api.schemas`) checks each field; here the study, in its
domain form, is checked by :func:`search.checks.check_study` (its algorithm, pruner and trial
kind), with what only the store knows looked up first: an uploaded dataset's metadata and a
warm start's source study, a transfer's source trial. Every problem comes back at its path in
the request.
"""

from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from typing import Any

import optuna
from optuna.storages import RDBStorage
from sqlalchemy.orm import Session

from models.data import DatasetInfo
from search import registry
from search.algorithm import FieldError, Loc
from search.checks import check_study, plugin_errors
from search.constraints import constraint_errors
from search.spec import DatasetRef, FewShotTask, StudySpec, TrainTask
from search.trials.train import named_info
from search.trials.transfer import find_source, source_errors
from service.api.convert import request_loc
from service.api.schemas.study import StudyCreate
from service.store.orm import StudyRow

UploadInfo = Callable[[str], DatasetInfo | None]
StudyDirections = Callable[[int], list[str] | None]
# A finished trial's exported spec.json (with its ``folder``) by study id and trial number or
# "best": None if there is none (or the study is another tenant's).
SourceTrial = Callable[[int, int | str], Mapping[str, Any] | None]


def check_submission(
    body: StudyCreate,
    spec: StudySpec,
    upload_info: UploadInfo,
    study_directions: StudyDirections,
    source_trial: SourceTrial | None = None,
    worker_plugins: Sequence[Mapping[str, Any]] = (),
) -> list[tuple[Loc, str]]:
    """Every reason ``body`` (whose domain form is ``spec``) cannot run, at request paths.

    Args:
        body: a study that passed the schema.
        spec: its domain form.
        upload_info: looks up an uploaded dataset's metadata by id (None if unknown).
        study_directions: looks up another study's objective directions by id (None if
            unknown), for warm starts and transfers.
        source_trial: looks up a transfer's source trial (:func:`trial_sources`).
        worker_plugins: the catalog plugins each live scheduler's Ray workers have
            (:func:`service.store.leases.worker_plugins`).
    """
    errors: list[FieldError] = []
    ref = spec.task.dataset
    info = None if ref is None else _dataset(ref, upload_info, errors)
    errors += check_study(spec, info)
    errors += constraint_errors(spec, info)
    if spec.constraints and _population(spec):  # its trials are segments of a run, not points
        errors.append(FieldError(("constraints",), "a population method takes no constraints"))
    errors += _warm_start_source(spec, study_directions)
    errors += _init_source(spec, info, study_directions, source_trial)
    errors += plugin_errors(spec, worker_plugins)
    return [(request_loc(e.loc, body), e.msg) for e in errors]


def _population(spec: StudySpec) -> bool:
    try:
        return registry.study_algorithm(spec.algorithm.name).kind == "population"
    except ValueError:  # an unknown name: reported at algorithm.name
        return False


def _dataset(
    ref: DatasetRef, upload_info: UploadInfo, errors: list[FieldError]
) -> DatasetInfo | None:
    if ref.upload_id is not None:
        info = upload_info(ref.upload_id)
        if info is None:
            loc = ("task", "dataset", "upload_id")
            errors.append(FieldError(loc, f"no uploaded dataset {ref.upload_id!r}"))
        return info
    try:
        return named_info(ref)
    except ValueError as exc:
        errors.append(FieldError(("task", "dataset", "options"), str(exc)))
        return None


def _warm_start_source(spec: StudySpec, study_directions: StudyDirections) -> list[FieldError]:
    source = spec.warm_start.from_study
    if source is None:
        return []
    loc = ("warm_start", "from_study")
    directions = study_directions(source)
    if directions is None:
        return [FieldError(loc, f"study {source} not found")]
    if directions != spec.directions:
        return [
            FieldError(loc, f"study {source} optimizes {directions}; this study {spec.directions}")
        ]
    return []


def _init_source(
    spec: StudySpec,
    info: DatasetInfo | None,
    study_directions: StudyDirections,
    source_trial: SourceTrial | None,
) -> list[FieldError]:
    task = spec.task
    if not isinstance(task, TrainTask) or isinstance(task, FewShotTask) or not task.init_from:
        return []
    init = task.init_from
    # Another tenant's study answers exactly like an unknown one.
    if study_directions(init.study) is None:
        return [FieldError(("task", "init_from", "study"), f"study {init.study} not found")]
    source = None if source_trial is None else source_trial(init.study, init.trial)
    if source is None:
        what = "a best trial" if init.trial == "best" else f"a trial {init.trial}"
        msg = f"study {init.study} has no finished {what} with saved weights"
        return [FieldError(("task", "init_from", "trial"), msg)]
    return [] if info is None else source_errors(task, info, source)


def trial_sources(session: Session, storage: RDBStorage, tenant: str) -> SourceTrial:
    """The source-trial lookup of a tenant (its own studies only)."""

    def lookup(study_id: int, trial: int | str) -> Mapping[str, Any] | None:
        row = session.get(StudyRow, study_id)
        if row is None or row.tenant != tenant:
            return None
        try:
            study = optuna.load_study(study_name=row.optuna_study_name, storage=storage)
        except KeyError:
            return None
        return find_source(study, trial)

    return lookup


def with_sources(spec: StudySpec, source_trial: SourceTrial) -> StudySpec:
    """The (checked) study with its transfer's source folder filled in, as it is stored."""
    task = spec.task
    if not isinstance(task, TrainTask) or isinstance(task, FewShotTask) or not task.init_from:
        return spec
    source = source_trial(task.init_from.study, task.init_from.trial)
    assert source is not None, "checked by check_submission"
    init = replace(task.init_from, source=str(source["folder"]))
    return replace(spec, task=replace(task, init_from=init))
