"""The prepared statements :class:`service.store.storage.RetryingStorage` writes Optuna's tables
with, and its one-trial read: built once each (building one costs more than running it).
Reads for requests are :mod:`service.store.optuna_sql`'s."""

import functools
from dataclasses import dataclass
from typing import Any

from sqlalchemy import (
    BindParameter,
    Insert,
    Select,
    Update,
    bindparam,
    func,
    insert,
    select,
    update,
)
from sqlalchemy.dialects import postgresql as pg_dialect
from sqlalchemy.dialects import sqlite as sqlite_dialect

from service.store.optuna_compat import (
    studies,
    trial_intermediate_values,
    trial_params,
    trial_system_attributes,
    trial_user_attributes,
    trial_values,
    trials,
)


@dataclass(frozen=True)
class Statements:
    """The statements :class:`service.store.storage.RetryingStorage` runs, each of one bound
    ``id`` (built once: building them costs more than running them)."""

    lock_study: Select[Any]
    insert_trial: Insert
    count_before: Select[Any]
    set_number: Update
    state: Select[Any]
    trial: Select[Any]
    params: Select[Any]
    values: Select[Any]
    user_attrs: Select[Any]
    system_attrs: Select[Any]
    steps: Select[Any]


@functools.cache
def statements() -> Statements:
    """See :class:`Statements`."""
    trial_id: BindParameter[int] = bindparam("id")
    p, v, iv = trial_params, trial_values, trial_intermediate_values
    ua, sa = trial_user_attributes, trial_system_attributes
    return Statements(
        lock_study=select(studies.c.study_id)
        .where(studies.c.study_id == trial_id)
        .with_for_update(),
        insert_trial=insert(trials).values(
            study_id=bindparam("study_id"),
            number=None,
            state=bindparam("state"),
            datetime_start=bindparam("start"),
        ),
        count_before=select(func.count(trials.c.trial_id)).where(
            trials.c.study_id == bindparam("study_id"), trials.c.trial_id < trial_id
        ),
        set_number=update(trials)
        .where(trials.c.trial_id == trial_id)
        .values(number=bindparam("number")),
        state=select(trials.c.state).where(trials.c.trial_id == trial_id),
        trial=select(
            trials.c.number, trials.c.state, trials.c.datetime_start, trials.c.datetime_complete
        ).where(trials.c.trial_id == trial_id),
        params=select(p.c.param_name, p.c.param_value, p.c.distribution_json)
        .where(p.c.trial_id == trial_id)
        .order_by(p.c.param_id),
        values=select(v.c.objective, v.c.value, v.c.value_type).where(v.c.trial_id == trial_id),
        user_attrs=select(ua.c.key, ua.c.value_json).where(ua.c.trial_id == trial_id),
        system_attrs=select(sa.c.key, sa.c.value_json).where(sa.c.trial_id == trial_id),
        steps=select(iv.c.step, iv.c.intermediate_value, iv.c.intermediate_value_type).where(
            iv.c.trial_id == trial_id
        ),
    )


@functools.cache
def attr_upsert(dialect: str, system: bool) -> Insert:
    """Upsert of a trial's user (or ``system``) attributes: rows of trial_id, key, value_json."""
    ua = trial_system_attributes if system else trial_user_attributes
    statement = (sqlite_dialect if dialect == "sqlite" else pg_dialect).insert(ua)
    upsert: Insert = statement.on_conflict_do_update(
        index_elements=[ua.c.trial_id, ua.c.key],
        set_={"value_json": statement.excluded.value_json},
    )
    return upsert
