"""The ``mlp`` family: dense layers over the flattened input."""

import math
from dataclasses import dataclass

import torch
from torch import nn

from models.blocks import Act, DenseLayer
from models.data import DatasetInfo
from models.families.base import ALL_KINDS, Family, norm_errors
from models.fields import FieldErrors, setting
from models.layers import linear, list_activations, list_inits, list_norms


@dataclass(frozen=True)
class MLPConfig:
    """Dense network over the flattened input."""

    hidden_layers: int = setting(2, "Number of hidden layers.", low=1, high=32)
    width: int = setting(128, "Units per hidden layer.", low=1, high=8192)
    widths: list[int] | None = setting(
        None, "Units per layer, overriding hidden_layers and width.", low=1, high=8192
    )
    activation: str = setting("relu", "Hidden activation.", choices=list_activations)
    leaky_slope: float = setting(0.01, "Negative slope of leaky_relu.", low=0.0, high=1.0)
    norm: str = setting("none", "Normalization after each Linear.", choices=list_norms)
    groups: int = setting(8, "Groups of group norm; must divide the width.", low=1, high=1024)
    dropout: float = setting(0.0, "Dropout after each hidden layer.", low=0.0, high=0.95)
    dropconnect: float = setting(
        0.0, "DropConnect: weight dropout in Linear layers.", low=0.0, high=0.95
    )
    init: str = setting("default", "Weight initialization.", choices=list_inits)

    def layer_widths(self) -> list[int]:
        return list(self.widths) if self.widths else [self.width] * self.hidden_layers


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


def _check(cfg: MLPConfig, info: DatasetInfo) -> FieldErrors:
    return norm_errors(cfg.norm, cfg.groups, cfg.layer_widths(), 0)


FAMILIES = (
    Family(
        "mlp", "Dense layers over the flattened input.", MLPConfig, ALL_KINDS, MLP, check=_check
    ),
)
