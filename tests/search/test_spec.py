"""The frozen domain types of a study: tasks with sampled parameters, immutability."""

import dataclasses

import pytest

from search.spec import DatasetRef, FunctionTask, StudyStatus, TrainTask
from tests.search.conftest import digits_spec


def test_with_params_sets_dotted_fields_and_leaves_the_original() -> None:
    task = TrainTask(
        dataset=DatasetRef("digits"),
        model={"family": "mlp", "width": 128, "activation": "relu"},
        training={"lr": 1e-3, "epochs": 10},
    )

    new = task.with_params({"model.width": 64, "training.lr": 0.05, "model.activation": "gelu"})

    assert new.model == {"family": "mlp", "width": 64, "activation": "gelu"}
    assert new.training == {"lr": 0.05, "epochs": 10}
    assert new.dataset == task.dataset
    assert task.model == {"family": "mlp", "width": 128, "activation": "relu"}
    assert task.training == {"lr": 1e-3, "epochs": 10}
    assert new.model is not task.model


def test_with_no_params_is_an_equal_task() -> None:
    task = TrainTask(DatasetRef("iris"), model={"family": "mlp"}, training={"lr": 0.1})

    assert task.with_params({}) == task


def test_with_params_can_add_a_field_that_had_its_default() -> None:
    task = TrainTask(DatasetRef("iris"), model={"family": "mlp"}, training={})

    assert task.with_params({"training.momentum": 0.9}).training == {"momentum": 0.9}


def test_with_params_sets_one_element_of_a_list() -> None:
    task = TrainTask(DatasetRef("digits"), model={"family": "cnn", "widths": [16, 32]})
    trial = task.with_params({"model.widths.1": 64, "training.lr": 0.1})
    assert trial.model["widths"] == [16, 64] and trial.training == {"lr": 0.1}
    assert task.model["widths"] == [16, 32]  # the study's task is untouched


def test_a_function_tasks_parameters_are_its_arguments() -> None:
    task = FunctionTask("branin", options={"x2": 1.0})
    assert task.with_params({"x1": 2.0}) == FunctionTask("branin", {"x2": 1.0, "x1": 2.0})
    assert task.options == {"x2": 1.0}


def test_domain_types_are_frozen() -> None:
    spec = digits_spec("frozen", 0, 4, 1, 2)
    with pytest.raises(dataclasses.FrozenInstanceError):
        spec.parallelism = 5  # type: ignore[misc]
    with pytest.raises(dataclasses.FrozenInstanceError):
        spec.search_space[0].low = 0.0  # type: ignore[misc]


def test_a_status_says_whether_the_scheduler_runs_it() -> None:
    assert [s for s in StudyStatus if s.active] == [StudyStatus.PENDING, StudyStatus.RUNNING]
    assert StudyStatus("completed") is StudyStatus.COMPLETED
    assert StudyStatus.FAILED == "failed"  # stored as its value
