"""Convolutional families: ``cnn``, ``resnet``, ``densenet``, ``inception`` (images) and
``conv1d`` (sequences), one config and one network for all five."""

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from models.blocks import Act, ConvBlock, DenseNetBlock, InceptionBlock, ResidualBlock
from models.data import DatasetInfo, Kind
from models.families.base import Family, norm_errors
from models.fields import FieldErrors, setting
from models.layers import Dims, linear, list_activations, list_inits, list_norms

BLOCKS = ("plain", "residual", "dense", "inception")


@dataclass(frozen=True)
class ConvConfig:
    """Convolutional network: stages of blocks, pooling by 2 between stages, global average
    pooling, then a linear head. Stage s has ``widths[s]`` channels, or
    ``round(width * width_mult**s)``.
    """

    block: str = setting("plain", "Block type of every stage.", choices=BLOCKS)
    stages: int = setting(
        2, "Number of stages (pooling halves the size between them).", low=1, high=6
    )
    blocks_per_stage: int = setting(1, "Blocks in each stage (depth).", low=1, high=8)
    width: int = setting(32, "Channels of the first stage.", low=1, high=1024)
    width_mult: float = setting(
        2.0, "Channel growth from one stage to the next.", low=0.25, high=4.0
    )
    widths: list[int] | None = setting(
        None, "Channels per stage, overriding stages/width/width_mult.", low=1, high=2048
    )
    kernel_size: int = setting(3, "Kernel size (odd).", low=1, high=9)
    skip: bool = setting(True, "Skip connections of residual blocks.")
    growth: int = setting(12, "Growth rate of dense blocks.", low=1, high=256)
    dense_layers: int = setting(3, "Layers in each dense block.", low=1, high=12)
    pool: str = setting("max", "Pooling between stages.", choices=("max", "avg"))
    activation: str = setting("relu", "Activation.", choices=list_activations)
    leaky_slope: float = setting(0.01, "Negative slope of leaky_relu.", low=0.0, high=1.0)
    norm: str = setting("batch", "Normalization after each conv.", choices=list_norms)
    groups: int = setting(8, "Groups of group norm; must divide every width.", low=1, high=1024)
    spatial_dropout: float = setting(
        0.0, "Drops whole channels after each conv block.", low=0.0, high=0.9
    )
    dropout: float = setting(0.0, "Dropout before the head.", low=0.0, high=0.95)
    dropconnect: float = setting(0.0, "DropConnect in the head.", low=0.0, high=0.95)
    init: str = setting("default", "Weight initialization.", choices=list_inits)

    def stage_widths(self) -> list[int]:
        if self.widths:
            return list(self.widths)
        return [max(1, round(self.width * self.width_mult**s)) for s in range(self.stages)]


class ConvNet(nn.Module):
    """(B, C, H, W) or (B, C, L) → stages of blocks → global average pool → (B, n_out)."""

    def __init__(
        self, cfg: ConvConfig, input_shape: tuple[int, ...], n_out: int, dims: Dims
    ) -> None:
        super().__init__()
        a = Act(cfg.activation, cfg.leaky_slope, cfg.norm, cfg.groups, cfg.dropout, cfg.dropconnect)
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
                layers.append(_block(cfg, dims, c_in, width, a))
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


def _block(cfg: ConvConfig, dims: Dims, c_in: int, width: int, a: Act) -> nn.Module:
    p, k = cfg.spatial_dropout, cfg.kernel_size
    if cfg.block == "plain":
        return ConvBlock(dims, c_in, width, k, a, p)
    if cfg.block == "residual":
        return ResidualBlock(dims, c_in, width, k, a, p, cfg.skip)
    if cfg.block == "dense":
        return DenseNetBlock(dims, c_in, width, k, a, p, cfg.growth, cfg.dense_layers)
    return InceptionBlock(dims, c_in, width, k, a, p)


def _check(cfg: ConvConfig, info: DatasetInfo) -> FieldErrors:
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
    return norm_errors(cfg.norm, cfg.groups, channels, 2 if len(info.input_shape) == 3 else 1)


def _conv(dims: Dims) -> Callable[[Any, tuple[int, ...], int], nn.Module]:
    return lambda cfg, shape, n_out: ConvNet(cfg, shape, n_out, dims)


def _family(name: str, description: str, dims: Dims, block: str | None = None) -> Family:
    defaults = {"block": block} if block else {}
    kinds: tuple[Kind, ...] = ("image",) if dims == 2 else ("sequence",)
    return Family(name, description, ConvConfig, kinds, _conv(dims), defaults, _check)


FAMILIES = (
    _family("cnn", "2-D convolutional network for images.", 2),
    _family("resnet", "CNN of residual blocks (ResNet).", 2, "residual"),
    _family("densenet", "CNN of dense blocks (DenseNet).", 2, "dense"),
    _family("inception", "CNN of inception modules.", 2, "inception"),
    _family("conv1d", "1-D convolutional network for sequences.", 1),
)
