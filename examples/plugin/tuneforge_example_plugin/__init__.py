"""An example tuneforge catalog plugin (see ``models.plugins``): each object below is declared
exactly as the built-in entries are, so studies that name them are checked the same way.

- ``gated_mlp``: a family of gated dense layers (GLU-style: ``a * sigmoid(b)``), any data kind;
- ``spirals``: two interleaved spirals, a generated binary classification set;
- ``styblinski_tang``: the Styblinski-Tang function in two dimensions.
"""

import math
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from models.data import DatasetSource
from models.families.base import ALL_KINDS, Family
from models.fields import setting
from models.layers import list_inits
from search.functions import SyntheticFunction


@dataclass(frozen=True)
class GatedConfig:
    """Gated dense layers over the flattened input."""

    layers: int = setting(2, "Gated layers.", low=1, high=8)
    width: int = setting(64, "Units per layer.", low=4, high=1024)
    dropout: float = setting(0.0, "Dropout after each layer.", low=0.0, high=0.9)
    init: str = setting("default", "Weight initialization.", choices=list_inits)


class GatedMLP(nn.Module):
    """(B, *input_shape) -> flatten -> gated layers -> (B, n_out)."""

    def __init__(self, cfg: GatedConfig, input_shape: tuple[int, ...], n_out: int) -> None:
        super().__init__()
        c_in = math.prod(input_shape)
        self.gates = nn.ModuleList()
        for _ in range(cfg.layers):
            self.gates.append(nn.Linear(c_in, 2 * cfg.width))
            c_in = cfg.width
        self.dropout = nn.Dropout(cfg.dropout)
        self.head = nn.Linear(c_in, n_out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = x.flatten(1)
        for gate in self.gates:
            a, b = gate(h).chunk(2, dim=1)
            h = self.dropout(a * torch.sigmoid(b))
        return self.head(h)


GATED_MLP = Family(
    "gated_mlp",
    "Gated dense layers (a * sigmoid(b)) over the flattened input.",
    GatedConfig,
    ALL_KINDS,
    GatedMLP,
)


@dataclass(frozen=True)
class SpiralOptions:
    n_samples: int = setting(600, "Samples generated.", low=20, high=50_000)
    turns: float = setting(1.5, "Turns of each spiral.", low=0.25, high=5.0)
    noise: float = setting(0.1, "Std of the Gaussian noise added.", low=0.0, high=2.0)
    seed: int = setting(0, "Seed of the generator.", low=0, high=2**31 - 1)


def spirals(n_samples: int, turns: float, noise: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    y = np.arange(n_samples) % 2
    t = rng.uniform(0.1, 1.0, n_samples) * turns * 2 * np.pi
    sign = np.where(y == 0, 1.0, -1.0)
    x = np.stack([sign * t * np.cos(t), sign * t * np.sin(t)], axis=1) / (turns * 2 * np.pi)
    x += rng.normal(0.0, noise, x.shape) / (turns * 2)
    return x.astype(np.float32), y


SPIRALS = DatasetSource(spirals, "binary", SpiralOptions)


@dataclass(frozen=True)
class StyblinskiTangArguments:
    x1: float = setting(0.0, "Coordinate 1.", low=-5.0, high=5.0)
    x2: float = setting(0.0, "Coordinate 2.", low=-5.0, high=5.0)


def styblinski_tang(x: Mapping[str, float]) -> float:
    return sum(v**4 - 16 * v**2 + 5 * v for v in (x["x1"], x["x2"])) / 2


STYBLINSKI_TANG = SyntheticFunction(
    "styblinski_tang",
    "Styblinski-Tang, 2-d, minimum about -78.33 at (-2.9035, -2.9035).",
    styblinski_tang,
    StyblinskiTangArguments,
    -78.33198,
)
