"""A submitted study checked at the edge, before anything is written.

The request's own schema (:mod:`service.api.schemas`) checks each field; here the study, in its
domain form, is checked by :func:`search.checks.check_study` (its algorithm, pruner and trial
kind), with what only the store knows looked up first: an uploaded dataset's metadata and a
warm start's source study. Every problem comes back at its path in the request.
"""

from collections.abc import Callable

from models.data import DatasetInfo
from search.algorithm import FieldError, Loc
from search.checks import check_study
from search.spec import DatasetRef, StudySpec
from search.trials.train import named_info
from service.api.convert import request_loc
from service.api.schemas.study import StudyCreate

UploadInfo = Callable[[str], DatasetInfo | None]
StudyDirections = Callable[[int], list[str] | None]


def check_submission(
    body: StudyCreate,
    spec: StudySpec,
    upload_info: UploadInfo,
    study_directions: StudyDirections,
) -> list[tuple[Loc, str]]:
    """Every reason ``body`` (whose domain form is ``spec``) cannot run, at request paths.

    Args:
        body: a study that passed the schema.
        spec: its domain form.
        upload_info: looks up an uploaded dataset's metadata by id (None if unknown).
        study_directions: looks up another study's objective directions by id (None if
            unknown), for warm starts.
    """
    errors: list[FieldError] = []
    ref = spec.task.dataset
    info = None if ref is None else _dataset(ref, upload_info, errors)
    errors += check_study(spec, info)
    errors += _warm_start_source(spec, study_directions)
    return [(request_loc(e.loc, body), e.msg) for e in errors]


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
