"""The ``architecture`` section of a study spec: a NAS space written as architecture, not as
a pile of categorical parameters.

Two kinds:

- ``macro``: a sequence of stages, each choosing its block type, width, depth, activation,
  normalization and skip connection from lists (family ``macro``, :mod:`models.families.macro`);
- ``cell``: a NAS-Bench-201 cell (4 nodes, 6 edges, each edge one operation) stacked into a
  network for images (family ``nb201``, :mod:`models.families.nb201`).

On submission the section *expands*: it fixes the task's model family and shape fields and
adds one categorical parameter per architectural decision to the search space
(``model.blocks.0``, ``model.widths.0``, ... or ``model.edge_1_0``, ...). Everything after
that (validation against the catalog, samplers, pruners, trials) sees an ordinary study, and
the stored spec keeps both the section and its expansion (expanding twice changes nothing).
"""

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from models.cells import EDGES, edge_name, space_has_path
from models.families.macro import MACRO_BLOCKS, MACRO_NORMS

CELL_OPS = ("none", "skip", "conv1x1", "conv3x3", "avgpool3x3")
CELL_EDGES = ("edge_1_0", "edge_2_0", "edge_2_1", "edge_3_0", "edge_3_1", "edge_3_2")
_MAX_STAGES = 6


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)


def _choices(default: list[Any], doc: str) -> Any:
    # min_length 1: an empty choice list is a 422 naming the field.
    return Field(
        default_factory=lambda: list(default), min_length=1, max_length=64, description=doc
    )


class StageChoices(_Strict):
    """What one stage may be: each list is the choices of one decision (one value: fixed)."""

    block: list[
        Literal["plain", "residual", "dense", "inception", "attention", "gcn", "sage", "gat", "gin"]
    ] = _choices(list(MACRO_BLOCKS), "Block types (graph data: gcn, sage, gat, gin).")
    width: list[Annotated[int, Field(ge=4, le=1024)]] = _choices([32, 64], "Channels.")
    depth: list[Annotated[int, Field(ge=1, le=8)]] = _choices([1, 2], "Blocks in the stage.")
    activation: list[str] = _choices(["relu"], "Activations (see /catalog).")
    norm: list[Literal["batch", "layer", "none"]] = _choices(["batch"], "Normalizations.")
    skip: list[bool] = _choices([True, False], "Shortcut around the stage, or not.")

    @model_validator(mode="after")
    def _distinct(self) -> "StageChoices":
        for name in ("block", "width", "depth", "activation", "norm", "skip"):
            values = getattr(self, name)
            if len(set(values)) != len(values):
                raise ValueError(f"{name} choices must be distinct")
        return self


# (list field of the macro family, field of StageChoices)
_STAGE_FIELDS = (
    ("blocks", "block"),
    ("widths", "width"),
    ("depths", "depth"),
    ("activations", "activation"),
    ("norms", "norm"),
    ("skips", "skip"),
)
assert set(MACRO_NORMS) == {"batch", "layer", "none"}


class MacroArchitecture(_Strict):
    """``stages``: how many stages, each with the default choices, or one entry a stage."""

    kind: Literal["macro"]
    stages: int | list[StageChoices] = Field(
        3, description="Number of stages (default choices each), or the choices of each stage."
    )

    @model_validator(mode="after")
    def _stage_count(self) -> "MacroArchitecture":
        n = self.stages if isinstance(self.stages, int) else len(self.stages)
        if not 1 <= n <= _MAX_STAGES:
            raise ValueError(f"an architecture has 1 to {_MAX_STAGES} stages, got {n}")
        return self

    def stage_list(self) -> list[StageChoices]:
        return (
            [StageChoices() for _ in range(self.stages)]
            if isinstance(self.stages, int)
            else (list(self.stages))
        )

    def expand(self) -> tuple[dict[str, Any], dict[str, dict[str, Any]]]:
        """The model fields it fixes and the search-space parameters it adds."""
        stages = self.stage_list()
        model: dict[str, Any] = {"family": "macro"}
        params: dict[str, dict[str, Any]] = {}
        for field, choice in _STAGE_FIELDS:
            model[field] = [getattr(stage, choice)[0] for stage in stages]
            for s, stage in enumerate(stages):
                values = getattr(stage, choice)
                if len(values) > 1:
                    params[f"model.{field}.{s}"] = {"type": "categorical", "choices": values}
        return model, params


class CellArchitecture(_Strict):
    """A NAS-Bench-201 cell: each of the 6 edges takes one of ``ops`` (or its own list)."""

    kind: Literal["cell"]
    ops: list[Literal["none", "skip", "conv1x1", "conv3x3", "avgpool3x3"]] = _choices(
        list(CELL_OPS), "Operations every edge may take."
    )
    edges: dict[
        Literal["edge_1_0", "edge_2_0", "edge_2_1", "edge_3_0", "edge_3_1", "edge_3_2"],
        Annotated[
            list[Literal["none", "skip", "conv1x1", "conv3x3", "avgpool3x3"]],
            Field(min_length=1),
        ],
    ] = Field(default_factory=dict, description="Per-edge operations, overriding ops.")
    channels: int = Field(16, ge=4, le=256, description="Channels of the first stage.")
    cells_per_stage: int = Field(2, ge=1, le=8)
    stages: int = Field(3, ge=1, le=4)

    @model_validator(mode="after")
    def _connected(self) -> "CellArchitecture":
        allowed = {edge: self.allowed()[edge_name(edge)] for edge in EDGES}
        if not space_has_path(allowed):
            raise ValueError(
                "a cell with no path from input to output allowed: every path from node 0 to "
                "node 3 crosses an edge whose only operation is none"
            )
        return self

    def allowed(self) -> dict[str, list[str]]:
        """Each edge's operations."""
        given: dict[str, list[str]] = {k: list(v) for k, v in self.edges.items()}
        return {edge: given.get(edge, list(self.ops)) for edge in CELL_EDGES}

    def expand(self) -> tuple[dict[str, Any], dict[str, dict[str, Any]]]:
        model: dict[str, Any] = {
            "family": "nb201",
            "channels": self.channels,
            "cells_per_stage": self.cells_per_stage,
            "stages": self.stages,
        }
        params: dict[str, dict[str, Any]] = {}
        for edge, ops in self.allowed().items():
            # The task's fixed cell (what validation builds) takes a real operation where it
            # can, so it has a path whenever the space does.
            model[edge] = next((op for op in ops if op != "none"), ops[0])
            if len(ops) > 1:
                params[f"model.{edge}"] = {"type": "categorical", "choices": ops}
        return model, params


Architecture = Annotated[MacroArchitecture | CellArchitecture, Field(discriminator="kind")]

__all__ = ["CELL_EDGES", "CELL_OPS", "Architecture", "CellArchitecture", "MacroArchitecture"]
