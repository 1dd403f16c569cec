"""Optuna's storage on the service's database: Optuna's RDB storage, retried and made faster.

:class:`RetryingStorage` is Optuna's ``RDBStorage`` whose every call survives a database
restart of up to ``patience_s`` seconds, which reads one trial and creates one trial with
prepared Core statements instead of Optuna's ORM (the scheduler reads every trial it starts and
every trial it finishes: half its time per trial went to the ORM), which reads a study's trials
for Optuna's cache in plain queries too, and which writes several
user and system attributes of a trial in one transaction. ``tests/service/store/
test_storage.py`` runs it against Optuna's own reader, and Optuna's storage test suite passes
on it.
"""

import inspect
import json
from collections.abc import Container, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

import optuna
from optuna.distributions import (
    BaseDistribution,
    check_distribution_compatibility,
    distribution_to_json,
)
from optuna.trial import FrozenTrial, TrialState
from sqlalchemy import Connection, event
from sqlalchemy.exc import IntegrityError

from service.store import optuna_compat
from service.store.engine import engine_kwargs, retrying, sqlite_pragmas
from service.store.optuna_sql import study_trials
from service.store.optuna_trials import distribution as distribution_of
from service.store.optuna_trials import local_time
from service.store.optuna_writes import attr_upsert, statements, step_upsert, value_upsert

# Calls that must not run twice: a retried create could add a second study or trial.
_STEP_COLUMNS = ("intermediate_value", "intermediate_value_type")
_VALUE_COLUMNS = ("value", "value_type")
_NOT_RETRIED = frozenset({"create_new_study", "create_new_trial", "upgrade", "remove_session"})


class RetryingStorage(optuna.storages.RDBStorage):
    """Optuna's RDB storage whose every call survives a database restart of up to
    ``patience_s`` seconds (see :func:`service.store.engine.retrying`)."""

    def __init__(self, url: str, patience_s: float = 60.0, **kwargs: Any) -> None:
        self._patience_s = patience_s
        super().__init__(url, **kwargs)

    def set_trial_attrs(
        self,
        trial_id: int,
        user: Mapping[str, Any],
        system: Mapping[str, Any],
        steps: Mapping[int, float] | None = None,
    ) -> None:
        """Set several user and system attributes of a trial, and intermediate values
        (``steps``: epoch to value), in one transaction (Optuna's own calls commit each one
        alone), with Optuna's rule: a finished trial cannot change."""
        kinds = ((False, user), (True, system))
        if self.engine.name not in ("sqlite", "postgresql"):
            with optuna_compat.orm_session(self) as session:
                for is_system, attrs in kinds:
                    for key, value in attrs.items():
                        optuna_compat.set_attr_without_commit(
                            self, session, trial_id, key, value, is_system
                        )
            for step, value in (steps or {}).items():
                self.set_trial_intermediate_value(trial_id, step, value)
            return
        with self.engine.begin() as conn:
            state = conn.execute(statements().state, {"id": trial_id}).scalar_one_or_none()
            if state is None:
                raise KeyError(optuna_compat.NOT_FOUND_MSG)
            self.check_trial_is_updatable(trial_id, TrialState(state))
            for is_system, attrs in kinds:
                rows = [
                    {"trial_id": trial_id, "key": key, "value_json": json.dumps(value)}
                    for key, value in attrs.items()
                ]
                if rows:
                    conn.execute(attr_upsert(self.engine.name, is_system), rows)
            points = [
                {"trial_id": trial_id, "step": step}
                | dict(zip(_STEP_COLUMNS, optuna_compat.intermediate_row(value), strict=True))
                for step, value in (steps or {}).items()
            ]
            if points:
                conn.execute(step_upsert(self.engine.name), points)

    def set_trial_user_attr(self, trial_id: int, key: str, value: Any) -> None:
        self.set_trial_attrs(trial_id, {key: value}, {})

    def set_trial_system_attr(self, trial_id: int, key: str, value: Any) -> None:
        self.set_trial_attrs(trial_id, {}, {key: value})

    def _set_trial_param(
        self,
        trial_id: int,
        param_name: str,
        param_value_internal: float,
        distribution: BaseDistribution,
        previous_distribution: BaseDistribution | None,
    ) -> None:
        """Optuna's write of one parameter (checked against the study's earlier distribution
        of that name, unless Optuna's cache knows it) in prepared statements: a sampled
        trial writes one per parameter."""
        if not self._core():
            super()._set_trial_param(
                trial_id, param_name, param_value_internal, distribution, previous_distribution
            )
            return
        q = statements()
        with self.engine.begin() as conn:
            study_id = self._updatable(conn, trial_id)[1]
            if previous_distribution is None:
                found = conn.execute(q.previous_param, {"study_id": study_id, "name": param_name})
                stored = found.scalar_one_or_none()
                previous_distribution = None if stored is None else distribution_of(stored)
            if previous_distribution is not None:
                check_distribution_compatibility(previous_distribution, distribution)
            conn.execute(
                q.insert_param,
                {
                    "id": trial_id,
                    "name": param_name,
                    "value": param_value_internal,
                    "distribution": distribution_to_json(distribution),
                },
            )

    def set_trial_state_values(
        self, trial_id: int, state: TrialState, values: Sequence[float] | None = None
    ) -> bool:
        """Optuna's change of a trial's state (and its values) in prepared statements, with
        its rules: a finished trial cannot change; only a WAITING trial may start RUNNING."""
        if not self._core():
            return bool(super().set_trial_state_values(trial_id, state, values))
        q = statements()
        try:
            with self.engine.begin() as conn:
                current = self._updatable(conn, trial_id, lock=True)[0]
                rows = [
                    {"trial_id": trial_id, "objective": objective}
                    | dict(zip(_VALUE_COLUMNS, optuna_compat.value_row(v), strict=True))
                    for objective, v in enumerate(values or ())
                ]
                if rows:
                    conn.execute(value_upsert(self.engine.name), rows)
                if state == TrialState.RUNNING and current != TrialState.WAITING:
                    return False
                change: dict[str, Any] = {"state": state}
                if state == TrialState.RUNNING:
                    change["datetime_start"] = datetime.now()  # as Optuna: naive local time
                if state.is_finished():
                    change["datetime_complete"] = datetime.now()
                conn.execute(q.set_state.values(**change), {"id": trial_id})
        except IntegrityError:
            return False
        return True

    def _core(self) -> bool:
        """Whether this database takes the prepared statements (else Optuna's ORM writes)."""
        return self.engine.name in ("sqlite", "postgresql")

    def _updatable(self, conn: Connection, trial_id: int, lock: bool = False) -> tuple[Any, int]:
        """A trial's state and study; KeyError when it does not exist, Optuna's error when it
        is finished. ``lock``: the row stays locked until the transaction ends."""
        q = statements()
        query = q.owner.with_for_update() if lock else q.owner
        row = conn.execute(query, {"id": trial_id}).one_or_none()
        if row is None:
            raise KeyError(optuna_compat.NOT_FOUND_MSG)
        state = TrialState(row.state)
        self.check_trial_is_updatable(trial_id, state)
        return state, int(row.study_id)

    def _create_new_trial(
        self, study_id: int, template_trial: FrozenTrial | None = None
    ) -> FrozenTrial:
        """Optuna's trial creation (a RUNNING trial numbered after the study's earlier ones,
        the study row locked meanwhile), in four prepared Core statements instead of the
        ORM; a trial made from a template (``enqueue_trial``, ``add_trial``) goes to Optuna's
        own."""
        if template_trial is not None:
            created: FrozenTrial = optuna_compat.create_trial_with_optuna(
                self, study_id, template_trial
            )
            return created
        q = statements()
        started = datetime.now(UTC).replace(tzinfo=None)  # Optuna stores naive UTC
        with self.engine.begin() as conn:
            if conn.execute(q.lock_study, {"id": study_id}).one_or_none() is None:
                raise KeyError(optuna_compat.NOT_FOUND_MSG)
            inserted = conn.execute(
                q.insert_trial,
                {"study_id": study_id, "state": TrialState.RUNNING, "start": started},
            )
            key = inserted.inserted_primary_key
            assert key is not None
            trial_id = int(key[0])
            counted = conn.execute(q.count_before, {"id": trial_id, "study_id": study_id})
            number = int(counted.scalar_one())
            conn.execute(q.set_number, {"id": trial_id, "number": number})
        return FrozenTrial(
            number=number,
            state=TrialState.RUNNING,
            value=None,
            values=None,
            datetime_start=local_time(started),
            datetime_complete=None,
            params={},
            distributions={},
            user_attrs={},
            system_attrs={},
            intermediate_values={},
            trial_id=trial_id,
        )

    def get_trial(self, trial_id: int) -> FrozenTrial:
        """Optuna's ``get_trial``, read with six prepared plain queries instead of the ORM's
        lazy loads."""
        q = statements()
        with self.engine.connect() as conn:
            trial = conn.execute(q.trial, {"id": trial_id}).one_or_none()
            if trial is None:
                raise KeyError(optuna_compat.NOT_FOUND_MSG)
            params = conn.execute(q.params, {"id": trial_id}).all()
            values = conn.execute(q.values, {"id": trial_id}).all()
            attrs = [conn.execute(q.user_attrs, {"id": trial_id}).all()]
            attrs.append(conn.execute(q.system_attrs, {"id": trial_id}).all())
            steps = conn.execute(q.steps, {"id": trial_id}).all()
        value_list: list[float] | None = None
        if values:
            value_list = [0.0] * len(values)
            for objective, value, value_type in values:
                value_list[objective] = optuna_compat.stored_value(value, value_type)
        dists = {name: distribution_of(dist) for name, _, dist in params}
        return FrozenTrial(
            number=trial.number,
            state=TrialState(trial.state),
            value=None,
            values=value_list,
            datetime_start=local_time(trial.datetime_start),
            datetime_complete=local_time(trial.datetime_complete),
            params={name: dists[name].to_external_repr(value) for name, value, _ in params},
            distributions=dists,
            user_attrs={key: json.loads(v) for key, v in attrs[0]},
            system_attrs={key: json.loads(v) for key, v in attrs[1]},
            intermediate_values={
                step: optuna_compat.stored_intermediate(v, kind) for step, v, kind in steps
            },
            trial_id=trial_id,
        )

    def _get_trials(
        self,
        study_id: int,
        states: Container[TrialState] | None,
        included_trial_ids: set[int],
        trial_id_greater_than: int,
    ) -> list[FrozenTrial]:
        """Optuna's read of a study's trials (what its cache asks for: the trials not
        finished at its last read, and newer ones), in plain queries instead of the ORM: the
        sampler and an Optuna pruner read it for every trial and at every rung."""
        if self.engine.name not in ("sqlite", "postgresql"):
            return super()._get_trials(study_id, states, included_trial_ids, trial_id_greater_than)
        with self.engine.connect() as conn:
            found = study_trials(conn, study_id, states, included_trial_ids, trial_id_greater_than)
        if found is None:
            raise KeyError(optuna_compat.NOT_FOUND_MSG)
        return found

    def __getattribute__(self, name: str) -> Any:
        value = super().__getattribute__(name)
        if name.startswith("_") or not inspect.ismethod(value) or name in _NOT_RETRIED:
            return value
        return retrying(value, super().__getattribute__("_patience_s"), name)


def make_storage(url: str, patience_s: float = 60.0) -> optuna.storages.RDBStorage:
    """Optuna's storage on the same database; it creates and migrates Optuna's own tables."""
    storage = RetryingStorage(url, patience_s, engine_kwargs=engine_kwargs(url))
    if url.startswith("sqlite"):
        event.listen(storage.engine, "connect", sqlite_pragmas)
        storage.engine.dispose()  # connections opened while Optuna checked its schema
    return storage
