"""Optuna's own storage test suite (``optuna.testing.pytest_storages``, the tests every Optuna
storage passes) on the service's storage, which writes trials, parameters, states and
attributes and reads a study's trials with its own prepared statements. SQLite here;
PostgreSQL in the postgres tier."""

import optuna
import pytest
from optuna.storages import BaseStorage
from optuna.testing.pytest_storages import StorageTestCase

from service.store.storage import make_storage


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def storage(request: pytest.FixtureRequest) -> BaseStorage:
    url = request.getfixturevalue("sqlite_url" if request.param == "sqlite" else "postgres_url")
    return make_storage(str(url))


class TestServiceStorage(StorageTestCase):
    """Every test of Optuna's suite, on :func:`storage`."""


def test_the_suite_runs_on_the_service_storage(storage: BaseStorage) -> None:
    assert type(storage).__name__ == "RetryingStorage"
    study_id = storage.create_new_study([optuna.study.StudyDirection.MINIMIZE])
    trial_id = storage.create_new_trial(study_id)
    storage.set_trial_param(trial_id, "x", 0.5, optuna.distributions.FloatDistribution(0, 1))
    assert storage.get_trial(trial_id).params == {"x": 0.5}
