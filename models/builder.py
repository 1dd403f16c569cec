"""Model families: a ``@dataclass`` config per family and ``build_model`` to instantiate one."""

from dataclasses import dataclass, fields
from typing import Any

import torch
from torch import nn

from models.layers import create_act_layer


@dataclass(frozen=True)
class MLPConfig:
    """A plain multi-layer perceptron: ``hidden_layers`` blocks of Linear → act → Dropout."""

    hidden_layers: int = 2
    width: int = 128
    activation: str = "relu"
    dropout: float = 0.0


class MLP(nn.Module):
    """Dense network for flat feature vectors.

    Shapes: input (B, in_features) → hidden (B, width) x hidden_layers → logits (B, out_features).
    """

    def __init__(self, cfg: MLPConfig, in_features: int, out_features: int) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        width_in = in_features
        for _ in range(cfg.hidden_layers):
            layers += [nn.Linear(width_in, cfg.width), create_act_layer(cfg.activation)]
            if cfg.dropout > 0:
                layers.append(nn.Dropout(cfg.dropout))
            width_in = cfg.width
        # The head emits raw logits: cross-entropy applies log-softmax itself, which is
        # numerically safer than a softmax layer followed by log.
        layers.append(nn.Linear(width_in, out_features))
        self.net = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)  # type: ignore[no-any-return]


_FAMILIES: dict[str, type[MLPConfig]] = {"mlp": MLPConfig}


def list_families() -> list[str]:
    """Model family names accepted by :func:`build_model`."""
    return sorted(_FAMILIES)


def family_fields(family: str) -> dict[str, Any]:
    """The configurable fields of a family with their defaults."""
    cfg_type = _FAMILIES[family]
    return {f.name: f.default for f in fields(cfg_type)}


def build_model(spec: dict[str, Any], in_features: int, out_features: int) -> nn.Module:
    """Instantiate the network a (validated) model spec describes.

    Args:
        spec: ``{"family": "mlp", **family fields}``.
        in_features: width of one input sample.
        out_features: number of output units (classes for classification).
    """
    params = dict(spec)
    family = params.pop("family")
    if family not in _FAMILIES:
        raise ValueError(f"unknown model family {family!r}; valid: {', '.join(list_families())}")
    return MLP(_FAMILIES[family](**params), in_features, out_features)
