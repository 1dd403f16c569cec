"""The stored study: a versioned document, written exactly and read leniently.

The first release's documents come from a database that release wrote
(``tests/fixtures/v1``, see its README): they load as the studies they were, including a field
a later release tightened.
"""

import json
import sqlite3
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from search.document import SPEC_VERSION, DocumentError, from_document, to_document
from search.registry import study_algorithm
from search.spec import (
    Condition,
    FunctionTask,
    Objective,
    ParamSpec,
    StudySpec,
    TrainTask,
    WarmStart,
)
from tests.search.conftest import digits_spec

V1_DATABASE = Path(__file__).resolve().parents[1] / "fixtures" / "v1" / "tuneforge.db"


@pytest.fixture(scope="module")
def v1_documents() -> dict[str, dict[str, Any]]:
    """Name → stored document of every study in the first release's database."""
    with sqlite3.connect(f"file:{V1_DATABASE}?mode=ro", uri=True) as conn:
        rows = conn.execute("SELECT name, spec FROM tf_studies ORDER BY id").fetchall()
    return {name: json.loads(spec) for name, spec in rows}


def test_the_first_releases_documents_have_no_version(
    v1_documents: dict[str, dict[str, Any]],
) -> None:
    assert list(v1_documents) == [
        "v1-digits",
        "v1-branin",
        "v1-macro",
        "v1-many-startup-trials",
    ]
    for doc in v1_documents.values():
        assert "spec_version" not in doc
        assert doc["objective"] is None  # the request's field, spelled out as null


def test_a_first_release_training_loads_with_its_condition(
    v1_documents: dict[str, dict[str, Any]],
) -> None:
    doc = v1_documents["v1-digits"]
    assert doc["search_space"]["training.momentum"]["when"][0]["in_"] == ["sgd"]

    spec = from_document(doc)

    assert spec.objectives == (Objective("val_accuracy", "maximize"),)
    assert isinstance(spec.task, TrainTask)
    assert spec.task.dataset.name == "digits"
    assert spec.task.model["hidden_layers"] == 1
    assert spec.task.training["epochs"] == 2
    momentum = spec.param("training.momentum")
    assert momentum is not None
    assert momentum.when == (Condition("training.optimizer", ("sgd",)),)
    assert spec.param("model.width") == ParamSpec("model.width", "int", 8, 32, False, 1.0)


def test_a_first_release_function_and_nas_study_load(
    v1_documents: dict[str, dict[str, Any]],
) -> None:
    branin = from_document(v1_documents["v1-branin"])
    assert branin.task == FunctionTask("branin", {})
    assert branin.objective == Objective("value", "minimize")
    assert [p.name for p in branin.search_space] == ["x1", "x2"]

    macro = from_document(v1_documents["v1-macro"])
    assert macro.architecture is not None and macro.architecture["kind"] == "macro"
    assert isinstance(macro.task, TrainTask) and macro.task.model["family"] == "macro"
    # Stage 0 chooses its block, width and (by default) whether to skip; stage 1 is fixed.
    assert {p.name for p in macro.search_space} == {
        "model.blocks.0",
        "model.widths.0",
        "model.skips.0",
    }


def test_a_field_a_later_release_tightened_still_loads(
    v1_documents: dict[str, dict[str, Any]],
) -> None:
    doc = v1_documents["v1-many-startup-trials"]
    spec = from_document(doc)  # lenient: nothing is checked against today's rules
    assert spec.algorithm.settings["n_startup_trials"] == 10**12
    # Today's check of a submission refuses it, at its path.
    (error,) = study_algorithm("tpe").check(spec, None)
    assert error.loc == ("algorithm", "settings", "n_startup_trials")
    assert "<= 100000" in error.msg


@pytest.mark.parametrize("name", ["v1-digits", "v1-branin", "v1-macro", "v1-many-startup-trials"])
def test_a_first_release_document_is_upgraded_once_rewritten(
    v1_documents: dict[str, dict[str, Any]], name: str
) -> None:
    spec = from_document(v1_documents[name])
    doc = to_document(spec)
    assert doc["spec_version"] == SPEC_VERSION
    assert "objective" not in doc
    assert from_document(doc) == spec
    assert json.loads(json.dumps(doc)) == doc  # plain JSON


def test_the_current_document_round_trips() -> None:
    spec: StudySpec = replace(
        digits_spec("now", 3, 5, 2, 4),
        search_space=(
            ParamSpec("training.optimizer", "categorical", choices=("sgd", "adam")),
            ParamSpec(
                "training.momentum",
                "float",
                0.0,
                0.9,
                when=(Condition("training.optimizer", ("sgd",)),),
            ),
            ParamSpec("model.width", "int", 8, 64, log=True, step=1.0),
        ),
        warm_start=WarmStart(({"model.width": 16},), from_study=4),
        objectives=(Objective("val_accuracy", "maximize"), Objective("param_count", "minimize")),
    )
    doc = to_document(spec)
    assert doc["spec_version"] == SPEC_VERSION
    assert doc["search_space"]["training.momentum"]["when"] == [
        {"param": "training.optimizer", "in": ["sgd"]}
    ]
    assert from_document(json.loads(json.dumps(doc))) == spec


def test_reading_is_lenient_and_writing_is_exact() -> None:
    doc = to_document(digits_spec("lenient", 0, 2, 1, 1))
    doc["a_field_of_a_later_release"] = {"anything": 1}
    doc["task"]["dataset"]["another"] = True
    assert from_document(doc) == digits_spec("lenient", 0, 2, 1, 1)


@pytest.mark.parametrize(
    ("change", "words"),
    [
        (lambda d: d.pop("task"), "cannot be read"),
        (lambda d: d.pop("budget"), "cannot be read"),
        (lambda d: d.update(spec_version=SPEC_VERSION + 1), "unknown spec_version"),
    ],
)
def test_a_document_that_cannot_be_a_study_says_so(change: Any, words: str) -> None:
    doc = to_document(digits_spec("broken", 0, 2, 1, 1))
    change(doc)
    with pytest.raises(DocumentError, match=words):
        from_document(doc)
