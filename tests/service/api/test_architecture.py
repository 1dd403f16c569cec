"""The ``architecture`` section: how a macro or cell space expands into the study."""

from typing import Any

import pytest
from pydantic import ValidationError

from service.api.convert import to_spec
from service.api.schemas.study import StudyCreate


def study(architecture: dict[str, Any], **overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "name": "nas",
        "architecture": architecture,
        "task": {"dataset": {"name": "digits"}, "training": {"epochs": 2}},
    }
    body.update(overrides)
    return body


def test_macro_stages_expand_into_model_lists_and_categorical_parameters() -> None:
    arch = {
        "kind": "macro",
        "stages": [
            {"block": ["plain", "residual"], "width": [16, 32], "depth": [1], "skip": [True]},
            {"block": ["attention"], "width": [32, 64], "depth": [1, 2], "norm": ["layer"]},
        ],
    }
    created = StudyCreate.model_validate(study(arch))
    model = created.task.model
    assert model["family"] == "macro"
    assert model["blocks"] == ["plain", "attention"]  # the first choice of each stage
    assert model["widths"] == [16, 32]
    assert model["skips"] == [True, True]
    space = {name: p.model_dump()["choices"] for name, p in created.search_space.items()}
    assert space == {
        "model.blocks.0": ["plain", "residual"],
        "model.widths.0": [16, 32],
        "model.widths.1": [32, 64],
        "model.depths.1": [1, 2],
        "model.skips.1": [True, False],  # the default choices of a decision left out
    }
    # The stored spec (expanded) validates again to the same study: expansion is idempotent.
    again = StudyCreate.model_validate(created.model_dump())
    assert again.task.model == model
    assert again.search_space == created.search_space


def test_an_int_of_stages_takes_the_default_choices() -> None:
    created = StudyCreate.model_validate(study({"kind": "macro", "stages": 2}))
    assert len(created.task.model["blocks"]) == 2
    assert set(created.search_space) == {
        f"model.{field}.{s}" for field in ("blocks", "widths", "depths", "skips") for s in (0, 1)
    }


def test_cell_expands_into_one_parameter_per_free_edge() -> None:
    arch = {
        "kind": "cell",
        "ops": ["skip", "conv1x1", "conv3x3"],
        "edges": {"edge_3_0": ["none"], "edge_2_1": ["conv3x3", "avgpool3x3"]},
        "channels": 8,
    }
    created = StudyCreate.model_validate(study(arch))
    model = created.task.model
    assert model["family"] == "nb201" and model["channels"] == 8
    assert model["edge_3_0"] == "none"  # fixed: a single choice adds no parameter
    space = {name: p.model_dump()["choices"] for name, p in created.search_space.items()}
    assert space == {
        "model.edge_1_0": ["skip", "conv1x1", "conv3x3"],
        "model.edge_2_0": ["skip", "conv1x1", "conv3x3"],
        "model.edge_2_1": ["conv3x3", "avgpool3x3"],
        "model.edge_3_1": ["skip", "conv1x1", "conv3x3"],
        "model.edge_3_2": ["skip", "conv1x1", "conv3x3"],
    }
    assert to_spec(created).task.model["family"] == "nb201"


def test_a_cell_with_some_path_left_is_accepted() -> None:
    # Only edge 3_0 may carry an operation: the direct path from input to output remains.
    none = {e: ["none"] for e in ("edge_1_0", "edge_2_0", "edge_2_1", "edge_3_1", "edge_3_2")}
    arch = {"kind": "cell", "ops": ["skip", "conv3x3"], "edges": none}
    created = StudyCreate.model_validate(study(arch))
    assert list(created.search_space) == ["model.edge_3_0"]


@pytest.mark.parametrize(
    ("architecture", "overrides", "loc", "words"),
    [
        (
            {"kind": "macro", "stages": [{"block": []}]},
            {},
            ("architecture", "macro", "stages", 0, "block"),
            "at least 1 item",
        ),
        ({"kind": "cell", "ops": []}, {}, ("architecture", "cell", "ops"), "at least 1 item"),
        (
            {
                "kind": "cell",
                "edges": {"edge_3_0": ["none"], "edge_3_1": ["none"], "edge_3_2": ["none"]},
            },
            {},
            ("architecture", "cell"),
            "a cell with no path from input to output allowed",
        ),
        ({"kind": "macro", "stages": 9}, {}, ("architecture", "macro"), "1 to 6 stages"),
        (
            {"kind": "macro", "stages": [{"width": [16, 16]}]},
            {},
            ("architecture", "macro", "stages", 0),
            "width choices must be distinct",
        ),
        (
            {"kind": "cell"},
            {
                "task": {
                    "dataset": {"name": "digits"},
                    "model": {"family": "mlp"},
                }
            },
            (),
            "task.model.family is set by the architecture section",
        ),
    ],
)
def test_bad_architectures_are_refused_with_their_path(
    architecture: dict[str, Any], overrides: dict[str, Any], loc: tuple[Any, ...], words: str
) -> None:
    with pytest.raises(ValidationError) as info:
        StudyCreate.model_validate(study(architecture, **overrides))
    errors = info.value.errors()

    def where(error: Any) -> tuple[Any, ...]:
        # Drop pydantic's union-member labels such as 'list[StageChoices]' from the location.
        return tuple(p for p in error["loc"] if not (isinstance(p, str) and "[" in p))

    assert any(where(e)[: len(loc)] == loc and words in e["msg"] for e in errors), errors
