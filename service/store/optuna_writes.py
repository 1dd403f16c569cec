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
    owner: Select[Any]
    previous_param: Select[Any]
    insert_param: Insert
    set_state: Update


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
        owner=select(trials.c.state, trials.c.study_id).where(trials.c.trial_id == trial_id),
        previous_param=select(p.c.distribution_json)
        .join(trials, trials.c.trial_id == p.c.trial_id)
        .where(trials.c.study_id == bindparam("study_id"), p.c.param_name == bindparam("name"))
        .limit(1),
        insert_param=insert(p).values(
            trial_id=trial_id,
            param_name=bindparam("name"),
            param_value=bindparam("value"),
            distribution_json=bindparam("distribution"),
        ),
        set_state=update(trials).where(trials.c.trial_id == trial_id),
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


@functools.cache
def step_upsert(dialect: str) -> Insert:
    """Upsert of a trial's intermediate values: rows of trial_id, step, intermediate_value,
    intermediate_value_type (Optuna's unique key is the trial and the step)."""
    iv = trial_intermediate_values
    statement = (sqlite_dialect if dialect == "sqlite" else pg_dialect).insert(iv)
    upsert: Insert = statement.on_conflict_do_update(
        index_elements=[iv.c.trial_id, iv.c.step],
        set_={
            "intermediate_value": statement.excluded.intermediate_value,
            "intermediate_value_type": statement.excluded.intermediate_value_type,
        },
    )
    return upsert


@functools.cache
def value_upsert(dialect: str) -> Insert:
    """Upsert of a trial's objective values: rows of trial_id, objective, value, value_type."""
    statement = (sqlite_dialect if dialect == "sqlite" else pg_dialect).insert(trial_values)
    upsert: Insert = statement.on_conflict_do_update(
        index_elements=[trial_values.c.trial_id, trial_values.c.objective],
        set_={"value": statement.excluded.value, "value_type": statement.excluded.value_type},
    )
    return upsert
