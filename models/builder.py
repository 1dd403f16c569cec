"""Model families: a ``@dataclass`` config per family, the network it builds, and checks.

A model spec is ``{"family": name, **fields}``. :func:`check_model` tells, before anything
runs, whether a spec can build for a dataset (field errors by name); :func:`build_model`
instantiates it. Families are registered by name; ``GET /api/v1/catalog`` lists them.
"""

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from models.blocks import (
    Act,
    ConvBlock,
    DenseLayer,
    DenseNetBlock,
    InceptionBlock,
    ResidualBlock,
    TransformerBlock,
)
from models.cells import CellConfig, build_cell_network, cell_errors, format_genotype
from models.data import DatasetInfo, Kind
from models.knobs import FieldErrors, describe, knob, validate
from models.layers import (
    Dims,
    init_weights,
    linear,
    list_activations,
    list_inits,
    list_norms,
    norm_error,
)
from models.macro import MacroConfig, MacroNet, macro_errors
from models.macro import genotype as macro_genotype

# -- configs ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class MLPConfig:
    """Dense network over the flattened input."""

    hidden_layers: int = knob(2, "Number of hidden layers.", low=1, high=32)
    width: int = knob(128, "Units per hidden layer.", low=1, high=8192)
    widths: list[int] | None = knob(
        None, "Units per layer, overriding hidden_layers and width.", low=1, high=8192
    )
    activation: str = knob("relu", "Hidden activation.", choices=list_activations)
    leaky_slope: float = knob(0.01, "Negative slope of leaky_relu.", low=0.0, high=1.0)
    norm: str = knob("none", "Normalization after each Linear.", choices=list_norms)
    groups: int = knob(8, "Groups of group norm; must divide the width.", low=1, high=1024)
    dropout: float = knob(0.0, "Dropout after each hidden layer.", low=0.0, high=0.95)
    dropconnect: float = knob(
        0.0, "DropConnect: weight dropout in Linear layers.", low=0.0, high=0.95
    )
    init: str = knob("default", "Weight initialization.", choices=list_inits)

    def layer_widths(self) -> list[int]:
        return list(self.widths) if self.widths else [self.width] * self.hidden_layers


BLOCKS = ("plain", "residual", "dense", "inception")


@dataclass(frozen=True)
class ConvConfig:
    """Convolutional network: stages of blocks, pooling by 2 between stages, global average
    pooling, then a linear head. Stage s has ``widths[s]`` channels, or
    ``round(width * width_mult**s)``.
    """

    block: str = knob("plain", "Block type of every stage.", choices=BLOCKS)
    stages: int = knob(2, "Number of stages (pooling halves the size between them).", low=1, high=6)
    blocks_per_stage: int = knob(1, "Blocks in each stage (depth).", low=1, high=8)
    width: int = knob(32, "Channels of the first stage.", low=1, high=1024)
    width_mult: float = knob(2.0, "Channel growth from one stage to the next.", low=0.25, high=4.0)
    widths: list[int] | None = knob(
        None, "Channels per stage, overriding stages/width/width_mult.", low=1, high=2048
    )
    kernel_size: int = knob(3, "Kernel size (odd).", low=1, high=9)
    skip: bool = knob(True, "Skip connections of residual blocks.")
    growth: int = knob(12, "Growth rate of dense blocks.", low=1, high=256)
    dense_layers: int = knob(3, "Layers in each dense block.", low=1, high=12)
    pool: str = knob("max", "Pooling between stages.", choices=("max", "avg"))
    activation: str = knob("relu", "Activation.", choices=list_activations)
    leaky_slope: float = knob(0.01, "Negative slope of leaky_relu.", low=0.0, high=1.0)
    norm: str = knob("batch", "Normalization after each conv.", choices=list_norms)
    groups: int = knob(8, "Groups of group norm; must divide every width.", low=1, high=1024)
    spatial_dropout: float = knob(
        0.0, "Drops whole channels after each conv block.", low=0.0, high=0.9
    )
    dropout: float = knob(0.0, "Dropout before the head.", low=0.0, high=0.95)
    dropconnect: float = knob(0.0, "DropConnect in the head.", low=0.0, high=0.95)
    init: str = knob("default", "Weight initialization.", choices=list_inits)

    def stage_widths(self) -> list[int]:
        if self.widths:
            return list(self.widths)
        return [max(1, round(self.width * self.width_mult**s)) for s in range(self.stages)]


@dataclass(frozen=True)
class TransformerConfig:
    """Transformer encoder over tokens: image rows, sequence steps, or tabular features (each
    feature one token), with a learned position embedding and mean or [CLS] pooling.
    """

    layers: int = knob(2, "Encoder blocks.", low=1, high=24)
    d_model: int = knob(64, "Token width; heads must divide it.", low=4, high=2048)
    heads: int = knob(4, "Attention heads.", low=1, high=64)
    ff_mult: int = knob(2, "MLP width as a multiple of d_model.", low=1, high=8)
    activation: str = knob("gelu", "MLP activation.", choices=list_activations)
    leaky_slope: float = knob(0.01, "Negative slope of leaky_relu.", low=0.0, high=1.0)
    norm: str = knob("layer", "Pre-norm of each block.", choices=("layer", "none"))
    dropout: float = knob(0.1, "Dropout in the MLPs and before the head.", low=0.0, high=0.95)
    attn_dropout: float = knob(0.0, "Dropout of attention weights.", low=0.0, high=0.95)
    dropconnect: float = knob(0.0, "DropConnect in the MLPs and the head.", low=0.0, high=0.95)
    pool: str = knob("mean", "How tokens become one vector.", choices=("mean", "cls"))
    init: str = knob("default", "Weight initialization.", choices=list_inits)


# -- networks ---------------------------------------------------------------------------------


class MLP(nn.Module):
    """(B, *input_shape) → flatten → hidden layers → (B, n_out)."""

    def __init__(self, cfg: MLPConfig, input_shape: tuple[int, ...], n_out: int) -> None:
        super().__init__()
        a = Act(cfg.activation, cfg.leaky_slope, cfg.norm, cfg.groups, cfg.dropout, cfg.dropconnect)
        layers: list[nn.Module] = [nn.Flatten()]
        c_in = math.prod(input_shape)
        for width in cfg.layer_widths():
            layers.append(DenseLayer(c_in, width, a))
            c_in = width
        # Raw outputs: the loss applies softmax/sigmoid itself, which is numerically safer.
        layers.append(linear(c_in, n_out, cfg.dropconnect))
        self.net = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)  # type: ignore[no-any-return]


class ConvNet(nn.Module):
    """(B, C, H, W) or (B, C, L) → stages of blocks → global average pool → (B, n_out)."""

    def __init__(
        self, cfg: ConvConfig, input_shape: tuple[int, ...], n_out: int, dims: Dims
    ) -> None:
        super().__init__()
        a = Act(cfg.activation, cfg.leaky_slope, cfg.norm, cfg.groups, cfg.dropout, cfg.dropconnect)
        p, k = cfg.spatial_dropout, cfg.kernel_size
        pool = {
            ("max", 1): nn.MaxPool1d,
            ("max", 2): nn.MaxPool2d,
            ("avg", 1): nn.AvgPool1d,
            ("avg", 2): nn.AvgPool2d,
        }[(cfg.pool, dims)]
        layers: list[nn.Module] = []
        c_in = input_shape[0]
        widths = cfg.stage_widths()
        for s, width in enumerate(widths):
            for _ in range(cfg.blocks_per_stage):
                if cfg.block == "plain":
                    layers.append(ConvBlock(dims, c_in, width, k, a, p))
                elif cfg.block == "residual":
                    layers.append(ResidualBlock(dims, c_in, width, k, a, p, cfg.skip))
                elif cfg.block == "dense":
                    layers.append(
                        DenseNetBlock(dims, c_in, width, k, a, p, cfg.growth, cfg.dense_layers)
                    )
                else:
                    layers.append(InceptionBlock(dims, c_in, width, k, a, p))
                c_in = width
            if s < len(widths) - 1:
                layers.append(pool(2))  # halve H and W between stages
        self.features = nn.Sequential(*layers)
        self.drop = nn.Dropout(cfg.dropout) if cfg.dropout > 0 else nn.Identity()
        self.head = linear(c_in, n_out, cfg.dropconnect)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.features(x)  # (B, c_last, H', W')
        h = h.flatten(2).mean(dim=2)  # global average pool → (B, c_last)
        return self.head(self.drop(h))  # type: ignore[no-any-return]


class Transformer(nn.Module):
    """(B, *input_shape) → tokens (B, T, token_dim) → embed → blocks → pool → (B, n_out)."""

    def __init__(self, cfg: TransformerConfig, input_shape: tuple[int, ...], n_out: int) -> None:
        super().__init__()
        a = Act(cfg.activation, cfg.leaky_slope, cfg.norm, 1, cfg.dropout, cfg.dropconnect)
        self.input_shape = input_shape
        n_tokens, token_dim = _token_layout(input_shape)
        self.cls = nn.Parameter(torch.zeros(1, 1, cfg.d_model)) if cfg.pool == "cls" else None
        self.embed = nn.Linear(token_dim, cfg.d_model)
        self.pos = nn.Parameter(torch.zeros(1, n_tokens + (cfg.pool == "cls"), cfg.d_model))
        nn.init.normal_(self.pos, std=0.02)
        self.blocks = nn.Sequential(
            *(
                TransformerBlock(cfg.d_model, cfg.heads, cfg.ff_mult, a, cfg.attn_dropout)
                for _ in range(cfg.layers)
            )
        )
        self.norm = nn.LayerNorm(cfg.d_model) if cfg.norm == "layer" else nn.Identity()
        self.drop = nn.Dropout(cfg.dropout) if cfg.dropout > 0 else nn.Identity()
        self.head = linear(cfg.d_model, n_out, cfg.dropconnect)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        tokens = _to_tokens(x, self.input_shape)  # (B, T, token_dim)
        h = self.embed(tokens)
        if self.cls is not None:
            h = torch.cat([self.cls.expand(len(h), -1, -1), h], dim=1)
        h = self.norm(self.blocks(h + self.pos))  # (B, T, d)
        pooled = h[:, 0] if self.cls is not None else h.mean(dim=1)
        return self.head(self.drop(pooled))  # type: ignore[no-any-return]


def _token_layout(input_shape: tuple[int, ...]) -> tuple[int, int]:
    """(tokens, token width): tabular (F,) → F x 1; sequence (C, L) → L x C; image
    (C, H, W) → H rows x C*W."""
    if len(input_shape) == 1:
        return input_shape[0], 1
    if len(input_shape) == 2:
        return input_shape[1], input_shape[0]
    c, h, w = input_shape
    return h, c * w


def _to_tokens(x: torch.Tensor, input_shape: tuple[int, ...]) -> torch.Tensor:
    if len(input_shape) == 1:
        return x.unsqueeze(-1)  # (B, F, 1)
    if len(input_shape) == 2:
        return x.transpose(1, 2)  # (B, L, C)
    return x.permute(0, 2, 1, 3).flatten(2)  # (B, H, C*W)


# -- the registry -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Family:
    """A model family: its config, the data kinds it accepts, and how it builds."""

    name: str
    description: str
    config: type
    kinds: tuple[Kind, ...]
    build: Callable[[Any, tuple[int, ...], int], nn.Module]
    defaults: dict[str, Any]
    # NAS families: the compact architecture string of a config (a trial's ``genotype``).
    genotype: Callable[[Any], str] | None = None


def _conv(dims: Dims) -> Callable[[Any, tuple[int, ...], int], nn.Module]:
    return lambda cfg, shape, n_out: ConvNet(cfg, shape, n_out, dims)


_ALL_KINDS: tuple[Kind, ...] = ("tabular", "sequence", "image")
_FAMILIES: dict[str, Family] = {
    f.name: f
    for f in (
        Family("mlp", "Dense layers over the flattened input.", MLPConfig, _ALL_KINDS, MLP, {}),
        Family(
            "cnn", "2-D convolutional network for images.", ConvConfig, ("image",), _conv(2), {}
        ),
        Family(
            "resnet",
            "CNN of residual blocks (ResNet).",
            ConvConfig,
            ("image",),
            _conv(2),
            {"block": "residual"},
        ),
        Family(
            "densenet",
            "CNN of dense blocks (DenseNet).",
            ConvConfig,
            ("image",),
            _conv(2),
            {"block": "dense"},
        ),
        Family(
            "inception",
            "CNN of inception modules.",
            ConvConfig,
            ("image",),
            _conv(2),
            {"block": "inception"},
        ),
        Family(
            "conv1d",
            "1-D convolutional network for sequences.",
            ConvConfig,
            ("sequence",),
            _conv(1),
            {},
        ),
        Family(
            "transformer",
            "Transformer encoder over tokens (rows, steps or features).",
            TransformerConfig,
            _ALL_KINDS,
            Transformer,
            {},
        ),
        Family(
            "macro",
            "Stages that each choose block type, width, depth, activation, norm and skip "
            "(the network of a macro architecture search).",
            MacroConfig,
            _ALL_KINDS,
            MacroNet,
            {},
            macro_genotype,
        ),
        Family(
            "nb201",
            "NAS-Bench-201 cell network for images: a cell of 4 nodes and 6 edges, stacked.",
            CellConfig,
            ("image",),
            build_cell_network,
            {},
            lambda cfg: format_genotype(cfg.cell_genotype()),
        ),
    )
}


def list_families() -> list[str]:
    """Model family names accepted by :func:`build_model`."""
    return sorted(_FAMILIES)


def get_family(name: str) -> Family:
    if name not in _FAMILIES:
        raise ValueError(f"unknown model family {name!r}; valid: {', '.join(list_families())}")
    return _FAMILIES[name]


def family_fields(family: str) -> dict[str, dict[str, Any]]:
    """The configurable fields of a family: type, default, bounds, choices, doc."""
    f = get_family(family)
    fields = describe(f.config)
    for key, value in f.defaults.items():
        fields[key]["default"] = value
    return fields


def parse_model(spec: dict[str, Any]) -> tuple[Family, Any, FieldErrors]:
    """Check a model spec's fields and build its config (None when there are errors)."""
    params = dict(spec)
    family = get_family(params.pop("family", "mlp"))
    cfg, errors = validate(family.config, {**family.defaults, **params})
    return family, cfg, errors


def model_genotype(spec: dict[str, Any]) -> str | None:
    """The compact architecture string of a NAS family's model (None for other families or
    an invalid spec)."""
    try:
        family, cfg, errors = parse_model(spec)
    except ValueError:
        return None
    if errors or family.genotype is None:
        return None
    return family.genotype(cfg)


def check_model(spec: dict[str, Any], info: DatasetInfo) -> FieldErrors:
    """Every reason ``spec`` cannot build for ``info``'s data, as (field, message) pairs.

    Checks field types and bounds, the family against the data kind, and the constraints
    between fields (group counts, heads, kernel parity, how many stages the input allows, a
    cell's path from input to output).
    """
    try:
        family, cfg, errors = parse_model(spec)
    except ValueError as exc:
        return [("family", str(exc))]
    if errors:
        return errors
    if info.kind not in family.kinds:
        return [
            (
                "family",
                f"{family.name} needs {' or '.join(family.kinds)} data; dataset {info.name!r} is "
                f"{info.kind} with samples of shape {list(info.input_shape)}",
            )
        ]
    if isinstance(cfg, MLPConfig):
        return _norm_errors(cfg.norm, cfg.groups, cfg.layer_widths(), 0)
    if isinstance(cfg, ConvConfig):
        return _conv_errors(cfg, info)
    if isinstance(cfg, CellConfig):
        return cell_errors(cfg, info.input_shape)
    if isinstance(cfg, MacroConfig):
        return macro_errors(cfg, info.input_shape)
    assert isinstance(cfg, TransformerConfig)
    if cfg.d_model % cfg.heads:
        return [("heads", f"{cfg.heads} heads do not divide d_model={cfg.d_model}")]
    return []


def _norm_errors(norm: str, groups: int, widths: list[int], dims: Dims) -> FieldErrors:
    for width in widths:
        error = norm_error(norm, width, groups, dims)
        if error:
            return [("groups" if norm == "group" else "norm", error)]
    return []


def _conv_errors(cfg: ConvConfig, info: DatasetInfo) -> FieldErrors:
    if cfg.kernel_size % 2 == 0:
        return [("kernel_size", f"kernel_size must be odd, got {cfg.kernel_size}")]
    widths = cfg.stage_widths()
    smallest = min(info.input_shape[1:])
    if smallest // 2 ** (len(widths) - 1) < 1:
        most = int(math.log2(smallest)) + 1
        field = "widths" if cfg.widths else "stages"
        return [
            (
                field,
                f"{len(widths)} stages pool a size-{smallest} input below one pixel; "
                f"at most {most}",
            )
        ]
    channels = list(widths)
    if cfg.block == "dense":
        channels += [
            c + i * cfg.growth
            for c in [info.input_shape[0], *widths]
            for i in range(cfg.dense_layers + 1)
        ]
    if cfg.block == "inception" and min(widths) < 4:
        return [("width", "inception modules need at least 4 channels (4 branches)")]
    return _norm_errors(cfg.norm, cfg.groups, channels, 2 if len(info.input_shape) == 3 else 1)


def build_model(spec: dict[str, Any], input_shape: tuple[int, ...], n_out: int) -> nn.Module:
    """Instantiate the network a (checked) model spec describes, with its initialization.

    Args:
        spec: ``{"family": ..., **fields}``.
        input_shape: one sample's shape.
        n_out: output units (classes, 1 for binary cross-entropy, or regression targets).

    Raises:
        ValueError: the spec has field errors (the message lists them).
    """
    family, cfg, errors = parse_model(spec)
    if errors:
        raise ValueError("; ".join(f"{k}: {m}" for k, m in errors))
    model = family.build(cfg, input_shape, n_out)
    init_weights(model, cfg.init)
    return model
