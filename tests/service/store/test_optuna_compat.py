"""The contract of ``service/store/optuna_compat.py`` with the pinned Optuna release.

The service's SQL and its faster storage rest on Optuna's schema and a few private helpers of
its RDB storage. Each name is exercised here against the installed Optuna on a real SQLite
database, so an upgrade that changes the schema or moves a helper fails here, by name.
"""

import math
from pathlib import Path

import optuna
import pytest
import sqlalchemy as sa
from optuna.storages import RDBStorage
from optuna.trial import TrialState

from service.store import optuna_compat as compat


@pytest.fixture
def storage(tmp_path: Path) -> RDBStorage:
    # Optuna's own storage class: the schema is the one Optuna creates.
    return RDBStorage(f"sqlite:///{tmp_path / 'o.db'}")


def test_the_installed_optuna_is_the_pinned_release() -> None:
    installed = ".".join(optuna.__version__.split(".")[:2])
    assert installed == compat.PINNED, (
        f"Optuna {optuna.__version__} is installed; service/store/optuna_compat.py is "
        f"written against {compat.PINNED}: check each name, then update PINNED"
    )


def test_the_tables_named_are_the_tables_optuna_creates(storage: RDBStorage) -> None:
    inspector = sa.inspect(storage.engine)
    for table in compat.tables():
        created = {c["name"] for c in inspector.get_columns(table.name)}
        assert created == set(table.columns.keys()), table.name


def test_stored_values_read_back_as_optuna_reads_them(storage: RDBStorage) -> None:
    study = optuna.create_study(storage=storage, directions=["minimize", "maximize"])
    trial = study.ask()
    for step, value in enumerate([math.inf, -math.inf, 0.5]):
        storage.set_trial_intermediate_value(trial._trial_id, step, value)
    study.tell(trial, [math.inf, -0.25])
    with storage.engine.connect() as conn:
        values = conn.execute(
            sa.select(compat.trial_values.c.value, compat.trial_values.c.value_type).order_by(
                compat.trial_values.c.objective
            )
        ).all()
        steps = conn.execute(
            sa.select(
                compat.trial_intermediate_values.c.intermediate_value,
                compat.trial_intermediate_values.c.intermediate_value_type,
            ).order_by(compat.trial_intermediate_values.c.step)
        ).all()
    assert [compat.stored_value(v, k) for v, k in values] == [math.inf, -0.25]
    assert [compat.stored_intermediate(v, k) for v, k in steps] == [math.inf, -math.inf, 0.5]
    assert {k for _, k in values} <= set(compat.ValueType)
    assert {k for _, k in steps} <= set(compat.IntermediateType)


def test_attrs_written_in_optunas_session_are_committed_on_exit(storage: RDBStorage) -> None:
    study = optuna.create_study(storage=storage)
    trial = study.ask()
    with compat.orm_session(storage) as session:
        compat.set_attr_without_commit(storage, session, trial._trial_id, "seed", 7, False)
        compat.set_attr_without_commit(storage, session, trial._trial_id, "seed", 8, False)
        compat.set_attr_without_commit(storage, session, trial._trial_id, "curve", [1], True)
    stored = storage.get_trial(trial._trial_id)
    assert (stored.user_attrs, stored.system_attrs) == ({"seed": 8}, {"curve": [1]})


def test_optunas_trial_creation_copies_a_template(storage: RDBStorage) -> None:
    study = optuna.create_study(storage=storage)
    template = optuna.trial.create_trial(
        state=TrialState.WAITING,
        params={"x": 1},
        distributions={"x": optuna.distributions.IntDistribution(0, 3)},
    )
    created = compat.create_trial_with_optuna(storage, study._study_id, template)
    stored = storage.get_trial(created._trial_id)
    assert (stored.number, stored.state, stored.params) == (0, TrialState.WAITING, {"x": 1})


def test_the_not_found_message_is_optunas(storage: RDBStorage) -> None:
    with pytest.raises(KeyError) as missing:
        storage.get_trial(10**9)
    assert compat.NOT_FOUND_MSG in str(missing.value)


def test_a_rebound_storage_works_through_its_own_engine(storage: RDBStorage) -> None:
    seen: list[object] = []

    def spy(
        conn: object, cursor: object, statement: str, params: object, context: object, many: bool
    ) -> None:
        seen.append(context.execution_options.get("marker"))  # type: ignore[attr-defined]

    sa.event.listen(storage.engine, "before_cursor_execute", spy)
    rebound = compat.rebound(storage, storage.engine.execution_options(marker="mine"))
    assert rebound.engine.pool is storage.engine.pool  # no engine, no connection of its own
    study = optuna.create_study(storage=rebound, study_name="rebound")
    study.optimize(lambda t: t.suggest_float("x", 0, 1), n_trials=2)
    assert "mine" in seen  # Optuna's own sessions and Core calls went through the new engine
    seen.clear()
    assert len(optuna.load_study(study_name="rebound", storage=storage).trials) == 2
    assert "mine" not in seen  # the original is untouched
