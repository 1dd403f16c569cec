"""The ``nb201`` family: a NAS-Bench-201 cell (4 nodes, 6 edges) stacked in stages, for images.

The cell's grammar and modules live in :mod:`models.cells`; here are the config a study sets
(a genotype, or one op per edge overriding it), its checks and the family's entry.
"""

from dataclasses import dataclass

from models.cells import (
    EDGES,
    OPS,
    CellNetwork,
    Genotype,
    edge_name,
    format_genotype,
    has_path,
    parse_genotype,
    reduction_error,
)
from models.data import DatasetInfo
from models.families.base import Family
from models.fields import FieldErrors, setting
from models.layers import list_inits

DEFAULT_GENOTYPE = "|conv3x3~0|+|conv3x3~0|conv3x3~1|+|skip~0|conv3x3~1|conv3x3~2|"
_EDGE_DOC = "Op of edge {} (from node {} to node {}), overriding the genotype's."


@dataclass(frozen=True)
class CellConfig:
    """NAS-Bench-201 network: one cell (4 nodes, 6 edges) stacked in stages. Stage s has
    ``channels * 2**s`` channels; a stride-2 residual block halves the size between stages.
    """

    genotype: str = setting(
        DEFAULT_GENOTYPE, "The cell in NAS-Bench-201 notation: |op~0|+|op~0|op~1|+|...|."
    )
    channels: int = setting(16, "Channels of the first stage.", low=4, high=256)
    cells_per_stage: int = setting(2, "Cells in each stage.", low=1, high=8)
    stages: int = setting(3, "Stages (a reduction halves the size between them).", low=1, high=4)
    edge_1_0: str | None = setting(None, _EDGE_DOC.format("1_0", 0, 1), choices=OPS)
    edge_2_0: str | None = setting(None, _EDGE_DOC.format("2_0", 0, 2), choices=OPS)
    edge_2_1: str | None = setting(None, _EDGE_DOC.format("2_1", 1, 2), choices=OPS)
    edge_3_0: str | None = setting(None, _EDGE_DOC.format("3_0", 0, 3), choices=OPS)
    edge_3_1: str | None = setting(None, _EDGE_DOC.format("3_1", 1, 3), choices=OPS)
    edge_3_2: str | None = setting(None, _EDGE_DOC.format("3_2", 2, 3), choices=OPS)
    init: str = setting("default", "Weight initialization.", choices=list_inits)

    def cell_genotype(self) -> Genotype:
        """The genotype with the edge fields that are set replacing its ops.

        Raises:
            ValueError: ``genotype`` does not parse.
        """
        base = parse_genotype(self.genotype)
        return Genotype(
            tuple(getattr(self, edge_name(e)) or op for e, op in zip(EDGES, base.ops, strict=True))
        )


def build_cell_network(cfg: CellConfig, input_shape: tuple[int, ...], n_out: int) -> CellNetwork:
    """The ``nb201`` network of a (checked) config."""
    return CellNetwork(
        cfg.cell_genotype(), input_shape, n_out, cfg.channels, cfg.cells_per_stage, cfg.stages
    )


def cell_errors(cfg: CellConfig, input_shape: tuple[int, ...]) -> FieldErrors:
    """Why an ``nb201`` config cannot build a useful network for images of ``input_shape``:
    a genotype that does not parse, a cell (after the edge overrides) with no path from input
    to output, or more stages than the input size allows."""
    try:
        genotype = cfg.cell_genotype()
    except ValueError as exc:
        return [("genotype", str(exc))]
    if not has_path(genotype):
        return [
            (
                "genotype",
                f"the cell {format_genotype(genotype)} has no path from input to output: "
                "every path crosses a 'none' edge",
            )
        ]
    error = reduction_error(cfg.stages, input_shape)
    return [("stages", error)] if error else []


def _check(cfg: CellConfig, info: DatasetInfo) -> FieldErrors:
    return cell_errors(cfg, info.input_shape)


FAMILIES = (
    Family(
        "nb201",
        "NAS-Bench-201 cell network for images: a cell of 4 nodes and 6 edges, stacked.",
        CellConfig,
        ("image",),
        build_cell_network,
        check=_check,
        genotype=lambda cfg: format_genotype(cfg.cell_genotype()),
    ),
)
