"""The macro architecture family: a sequence of stages, each with its own block type, width,
depth, activation, normalization and skip connection.

This is the network a *macro* architecture search builds (``architecture: {kind: macro}`` in a
study spec): every per-stage choice is one element of a list field, so a search space names
it as ``model.blocks.0``, ``model.widths.2`` and so on. Stages run on images (2-D), sequences
(1-D) and tabular rows (each row a one-channel sequence of its features); between stages the
spatial size is halved by max pooling while it is at least 2; a global average pool and a
linear head end the network.

Block types: ``plain`` (conv → norm → act), ``residual`` (ResNet basic block; its own shortcut
follows the stage's ``skip``), ``dense`` (a DenseNet block of ``depth`` layers), ``inception``
(parallel 1x1 / kxk / (k+2)x(k+2) / pooled branches) and ``attention`` (pre-norm transformer
blocks over the positions as tokens). ``skip`` adds a shortcut around the whole stage (a 1x1
projection when the width changes). On graph data every stage is a graph stage instead, its
block a message-passing layer type (``gcn``, ``sage``, ``gat``, ``gin``;
:mod:`models.families.macro_graph`).
"""

from dataclasses import dataclass

import torch
from torch import nn

from models.blocks import (
    Act,
    ConvBlock,
    DenseNetBlock,
    InceptionBlock,
    ResidualBlock,
    TransformerBlock,
)
from models.data import DatasetInfo, Kind
from models.families.base import ALL_KINDS, Family
from models.families.macro_graph import GRAPH_BLOCKS, GraphMacroNet
from models.fields import FieldErrors, setting
from models.layers import Dims, list_activations, list_inits, norm_error

MACRO_BLOCKS = ("plain", "residual", "dense", "inception", "attention")
MACRO_NORMS = ("batch", "layer", "none")
# The per-stage fields: one list element per stage, all of the same length.
STAGE_FIELDS = ("blocks", "widths", "depths", "activations", "norms", "skips")


@dataclass(frozen=True)
class MacroConfig:
    """Stages of blocks, each stage with its own choices (list fields, one element a stage)."""

    blocks: list[str] = setting(
        ["plain", "residual"],
        "Block type of each stage (graph data: a message-passing layer type).",
        choices=MACRO_BLOCKS + GRAPH_BLOCKS,
    )
    widths: list[int] = setting([32, 64], "Channels of each stage.", low=4, high=1024)
    depths: list[int] = setting([1, 1], "Blocks (dense: layers) in each stage.", low=1, high=8)
    activations: list[str] = setting(
        ["relu", "relu"], "Activation of each stage.", choices=list_activations
    )
    norms: list[str] = setting(
        ["batch", "batch"], "Normalization of each stage.", choices=MACRO_NORMS
    )
    skips: list[bool] = setting(
        [True, True], "Shortcut around each stage (and inside its residual blocks)."
    )
    kernel_size: int = setting(3, "Kernel size of the convolutions (odd).", low=1, high=9)
    heads: int = setting(
        4, "Attention heads of attention stages; must divide their width.", low=1, high=1024
    )
    dropout: float = setting(0.0, "Dropout before the head.", low=0.0, high=0.95)
    init: str = setting("default", "Weight initialization.", choices=list_inits)

    @property
    def n_stages(self) -> int:
        return len(self.blocks)


def macro_errors(
    cfg: MacroConfig, input_shape: tuple[int, ...], kind: Kind | None = None
) -> FieldErrors:
    """Constraints between the fields: equal stage counts, odd kernels, heads per width, and
    graph stages exactly on graph data (``kind``; None: not mixed with other stages)."""
    lengths = {name: len(getattr(cfg, name)) for name in STAGE_FIELDS}
    if len(set(lengths.values())) > 1:
        sizes = ", ".join(f"{k}: {v}" for k, v in lengths.items())
        return [("blocks", f"every per-stage list needs one element per stage; got {sizes}")]
    if cfg.kernel_size % 2 == 0:
        return [("kernel_size", f"kernel_size must be odd, got {cfg.kernel_size}")]
    graph_errors = _graph_stage_errors(cfg, kind)
    if graph_errors is not None:
        return graph_errors
    dims = _dims(input_shape)
    for s, (block, width, norm) in enumerate(zip(cfg.blocks, cfg.widths, cfg.norms, strict=True)):
        if block == "attention" and width % cfg.heads:
            return [("heads", f"{cfg.heads} heads do not divide stage {s}'s width {width}")]
        if block == "inception" and width < 4:
            return [("widths", f"stage {s}: inception needs at least 4 channels")]
        error = norm_error(norm, width, 1, dims)
        if error:
            return [("norms", f"stage {s}: {error}")]
    return []


def _graph_stage_errors(cfg: MacroConfig, kind: Kind | None) -> FieldErrors | None:
    """The graph stages' errors, or None when no stage is a graph stage on non-graph data."""
    is_graph = [block in GRAPH_BLOCKS for block in cfg.blocks]
    if kind != "graph" and not any(is_graph):
        return None
    for s, block in enumerate(cfg.blocks):
        if kind not in (None, "graph") and is_graph[s]:
            return [("blocks", f"stage {s}: {block} is a graph layer; this dataset is {kind}")]
        if not is_graph[s] and kind in (None, "graph"):
            valid = ", ".join(GRAPH_BLOCKS)
            return [("blocks", f"stage {s}: {block} is no graph layer; graph stages take {valid}")]
        if block == "gat" and cfg.widths[s] % cfg.heads:
            return [("heads", f"{cfg.heads} heads do not divide stage {s}'s width {cfg.widths[s]}")]
    return []


def _dims(input_shape: tuple[int, ...]) -> Dims:
    return 2 if len(input_shape) == 3 else 1


class _AttentionStage(nn.Module):
    """Positions as tokens: (B, C, *S) → 1x1 projection → transformer blocks → (B, width, *S)."""

    def __init__(self, dims: Dims, c_in: int, width: int, depth: int, a: Act, heads: int) -> None:
        super().__init__()
        conv = nn.Conv1d if dims == 1 else nn.Conv2d
        self.project = conv(c_in, width, 1)
        self.blocks = nn.Sequential(
            *(TransformerBlock(width, heads, 2, a, 0.0) for _ in range(depth))
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.project(x)
        shape = h.shape
        tokens = h.flatten(2).transpose(1, 2)  # (B, positions, width)
        out: torch.Tensor = self.blocks(tokens).transpose(1, 2)
        return out.reshape(shape)


class _Stage(nn.Module):
    """One stage's blocks, with an optional (projected) shortcut around them."""

    def __init__(self, body: nn.Module, dims: Dims, c_in: int, c_out: int, skip: bool) -> None:
        super().__init__()
        self.body = body
        conv = nn.Conv1d if dims == 1 else nn.Conv2d
        self.shortcut: nn.Module | None = None
        if skip:
            self.shortcut = nn.Identity() if c_in == c_out else conv(c_in, c_out, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = self.body(x)
        if self.shortcut is not None:
            out = out + self.shortcut(x)
        return out


def _body(
    cfg: MacroConfig, s: int, dims: Dims, c_in: int
) -> nn.Module:  # one stage's blocks, c_in → widths[s] channels
    block, width, depth = cfg.blocks[s], cfg.widths[s], cfg.depths[s]
    a = Act(activation=cfg.activations[s], norm=cfg.norms[s], groups=1)
    k = cfg.kernel_size
    if block == "attention":
        attn = Act(activation=cfg.activations[s], norm="none" if a.norm == "none" else "layer")
        return _AttentionStage(dims, c_in, width, depth, attn, cfg.heads)
    if block == "dense":
        return DenseNetBlock(dims, c_in, width, k, a, 0.0, max(4, width // 4), depth)
    layers: list[nn.Module] = []
    for i in range(depth):
        c = c_in if i == 0 else width
        if block == "residual":
            layers.append(ResidualBlock(dims, c, width, k, a, 0.0, cfg.skips[s]))
        elif block == "inception":
            layers.append(InceptionBlock(dims, c, width, k, a, 0.0))
        else:
            layers.append(ConvBlock(dims, c, width, k, a, 0.0))
    return nn.Sequential(*layers)


class MacroNet(nn.Module):
    """The stages of a :class:`MacroConfig`, pooling by 2 between them, then a linear head."""

    def __init__(self, cfg: MacroConfig, input_shape: tuple[int, ...], n_out: int) -> None:
        super().__init__()
        self.tabular = len(input_shape) == 1
        dims = _dims(input_shape)
        channels = 1 if self.tabular else input_shape[0]
        size = min(input_shape if self.tabular else input_shape[1:])
        pool = nn.MaxPool1d if dims == 1 else nn.MaxPool2d
        layers: list[nn.Module] = []
        for s in range(cfg.n_stages):
            if s > 0 and size >= 2:
                layers.append(pool(2))
                size //= 2
            body = _body(cfg, s, dims, channels)
            layers.append(_Stage(body, dims, channels, cfg.widths[s], cfg.skips[s]))
            channels = cfg.widths[s]
        self.stages = nn.Sequential(*layers)
        self.drop = nn.Dropout(cfg.dropout) if cfg.dropout > 0 else nn.Identity()
        self.head = nn.Linear(channels, n_out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.tabular:
            x = x.unsqueeze(1)  # (B, F) → (B, 1, F): the features as a one-channel sequence
        h = self.stages(x)
        return self.head(self.drop(h.flatten(2).mean(dim=2)))  # type: ignore[no-any-return]


def genotype(cfg: MacroConfig) -> str:
    """A compact string of the architecture: one ``block:width:depth:act:norm:skip`` a stage,
    joined by ``|``, e.g. ``residual:64:2:relu:batch:skip|attention:64:1:gelu:layer:-``."""
    stages = zip(
        cfg.blocks, cfg.widths, cfg.depths, cfg.activations, cfg.norms, cfg.skips, strict=True
    )
    return "|".join(f"{b}:{w}:{d}:{a}:{n}:{'skip' if k else '-'}" for b, w, d, a, n, k in stages)


def _check(cfg: MacroConfig, info: DatasetInfo) -> FieldErrors:
    return macro_errors(cfg, info.input_shape, info.kind)


def build(cfg: MacroConfig, input_shape: tuple[int, ...], n_out: int) -> nn.Module:
    """Graph stages (every block a graph layer: graph data) or the other stages."""
    if cfg.blocks and all(block in GRAPH_BLOCKS for block in cfg.blocks):
        stages = zip(
            cfg.blocks, cfg.widths, cfg.depths, cfg.activations, cfg.norms, cfg.skips, strict=True
        )
        return GraphMacroNet(input_shape, n_out, list(stages), cfg.heads, cfg.dropout)
    return MacroNet(cfg, input_shape, n_out)


FAMILIES = (
    Family(
        "macro",
        "Stages that each choose block type, width, depth, activation, norm and skip "
        "(the network of a macro architecture search).",
        MacroConfig,
        (*ALL_KINDS, "graph"),
        build,
        check=_check,
        genotype=genotype,
    ),
)
