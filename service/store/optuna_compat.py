"""Every use of Optuna's internals on the service side, in one place.

The service reads Optuna's tables with its own SQL (a page of trials, counts, events, metrics:
:mod:`service.store.optuna_sql`) and writes a few things faster than Optuna's ORM does
(:mod:`service.store.storage`). Both need Optuna's schema: its tables, as Optuna's own models
declare them (so there is one spelling of the schema: Optuna's), how it stores infinities, and
three private helpers of its RDB storage. Each is named here, on the private names of the
Optuna release pinned in ``pyproject.toml`` (5.0); ``tests/service/store/
test_optuna_compat.py`` pins that release and exercises every name against it.
"""

from collections.abc import Iterator
from contextlib import AbstractContextManager
from typing import Any

from optuna.storages import RDBStorage
from optuna.storages._rdb import models as _models
from optuna.storages._rdb.storage import _create_scoped_session
from sqlalchemy import Engine, Table
from sqlalchemy.orm import Session, scoped_session, sessionmaker

PINNED = "5.0"  # the Optuna release this module is written against
NOT_FOUND_MSG: str = _models.NOT_FOUND_MSG  # what Optuna's KeyError says of a missing record

# Optuna's tables, as its models declare them (column names, types, enums).
studies: Table = _models.StudyModel.__table__  # type: ignore[assignment]
study_directions: Table = _models.StudyDirectionModel.__table__  # type: ignore[assignment]
trials: Table = _models.TrialModel.__table__  # type: ignore[assignment]
trial_params: Table = _models.TrialParamModel.__table__  # type: ignore[assignment]
trial_values: Table = _models.TrialValueModel.__table__  # type: ignore[assignment]
trial_user_attributes: Table = _models.TrialUserAttributeModel.__table__  # type: ignore[assignment]
trial_system_attributes: Table = _models.TrialSystemAttributeModel.__table__  # type: ignore[assignment]
trial_intermediate_values: Table = _models.TrialIntermediateValueModel.__table__  # type: ignore[assignment]

# How a value (and an intermediate value) is stored: a type beside the number, for infinities.
ValueType = _models.TrialValueModel.TrialValueType
IntermediateType = _models.TrialIntermediateValueModel.TrialIntermediateValueType


def stored_value(value: float | None, kind: Any) -> float:
    """A trial value as Optuna reads it back from its row (``value``, ``value_type``)."""
    return float(_models.TrialValueModel.stored_repr_to_value(value, kind))


def stored_intermediate(value: float | None, kind: Any) -> float:
    """An intermediate value as Optuna reads it back (NaN and infinities included)."""
    return float(_models.TrialIntermediateValueModel.stored_repr_to_intermediate_value(value, kind))


def value_row(value: float) -> tuple[float | None, Any]:
    """An objective value as Optuna stores it (``value``, ``value_type``)."""
    stored, kind = _models.TrialValueModel.value_to_stored_repr(value)
    return stored, kind


def intermediate_row(value: float) -> tuple[float | None, Any]:
    """An intermediate value as Optuna stores it (``intermediate_value``, its type)."""
    stored, kind = _models.TrialIntermediateValueModel.intermediate_value_to_stored_repr(value)
    return stored, kind


def orm_session(storage: RDBStorage) -> AbstractContextManager[Session]:
    """A session of Optuna's own on ``storage``, committed (or rolled back) on exit."""
    return _create_scoped_session(storage.scoped_session, True)


def set_attr_without_commit(
    storage: RDBStorage, session: Session, trial_id: int, key: str, value: Any, system: bool
) -> None:
    """Optuna's upsert of one user (or ``system``) attribute of a trial, inside ``session``'s
    transaction."""
    model = _models.TrialSystemAttributeModel if system else _models.TrialUserAttributeModel
    storage._set_trial_attr_without_commit(session, model, trial_id, key, value)


def create_trial_with_optuna(storage: RDBStorage, study_id: int, template: Any) -> Any:
    """Optuna's own trial creation (the ``_create_new_trial`` :class:`RetryingStorage`
    overrides): what a trial made from a template goes through."""
    return RDBStorage._create_new_trial(storage, study_id, template)


def tables() -> Iterator[Table]:
    """Every table named here (for the contract test)."""
    yield from (
        studies,
        study_directions,
        trials,
        trial_params,
        trial_values,
        trial_user_attributes,
        trial_system_attributes,
        trial_intermediate_values,
    )


def rebound(storage: RDBStorage, engine: Engine) -> RDBStorage:
    """A shallow copy of ``storage`` that works through ``engine`` (an option engine of its
    own: the same pool, other execution options): Optuna's RDB storage keeps its engine and
    its scoped session factory in ``engine`` and ``scoped_session``."""
    # Not copy.copy: RDBStorage's __setstate__ would make a new engine (and pool) from its URL.
    copied = object.__new__(type(storage))
    copied.__dict__.update(storage.__dict__)
    copied.engine = engine
    copied.scoped_session = scoped_session(sessionmaker(bind=engine))
    return copied
