"""The ``transformer`` family: an encoder over tokens (image rows, sequence steps or tabular
features), with a learned position embedding and mean, [CLS] or attention pooling."""

from dataclasses import dataclass

import torch
from torch import nn

from models.blocks import Act, TransformerBlock
from models.data import DatasetInfo
from models.families.base import ALL_KINDS, Family
from models.fields import FieldErrors, setting
from models.layers import AttentionPool, linear, list_activations, list_inits


@dataclass(frozen=True)
class TransformerConfig:
    """Transformer encoder over tokens: image rows, sequence steps, or tabular features (each
    feature one token), with a learned position embedding and mean, [CLS] or attention pooling
    (learned queries attending to the tokens).
    """

    layers: int = setting(2, "Encoder blocks.", low=1, high=24)
    d_model: int = setting(64, "Token width; heads must divide it.", low=4, high=2048)
    heads: int = setting(4, "Attention heads.", low=1, high=64)
    ff_mult: int = setting(2, "MLP width as a multiple of d_model.", low=1, high=8)
    activation: str = setting("gelu", "MLP activation.", choices=list_activations)
    leaky_slope: float = setting(0.01, "Negative slope of leaky_relu.", low=0.0, high=1.0)
    norm: str = setting("layer", "Pre-norm of each block.", choices=("layer", "none"))
    dropout: float = setting(0.1, "Dropout in the MLPs and before the head.", low=0.0, high=0.95)
    attn_dropout: float = setting(0.0, "Dropout of attention weights.", low=0.0, high=0.95)
    dropconnect: float = setting(0.0, "DropConnect in the MLPs and the head.", low=0.0, high=0.95)
    pool: str = setting(
        "mean", "How tokens become one vector.", choices=("mean", "cls", "attention")
    )
    queries: int = setting(1, "Learned queries of attention pooling.", low=1, high=16)
    init: str = setting("default", "Weight initialization.", choices=list_inits)


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
        self.attn_pool = (
            AttentionPool(cfg.d_model, cfg.heads, cfg.queries) if cfg.pool == "attention" else None
        )
        self.drop = nn.Dropout(cfg.dropout) if cfg.dropout > 0 else nn.Identity()
        self.head = linear(cfg.d_model, n_out, cfg.dropconnect)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        tokens = _to_tokens(x, self.input_shape)  # (B, T, token_dim)
        h = self.embed(tokens)
        if self.cls is not None:
            h = torch.cat([self.cls.expand(len(h), -1, -1), h], dim=1)
        h = self.norm(self.blocks(h + self.pos))  # (B, T, d)
        if self.attn_pool is not None:
            pooled = self.attn_pool(h)
        else:
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


def _check(cfg: TransformerConfig, info: DatasetInfo) -> FieldErrors:
    if cfg.d_model % cfg.heads:
        return [("heads", f"{cfg.heads} heads do not divide d_model={cfg.d_model}")]
    return []


FAMILIES = (
    Family(
        "transformer",
        "Transformer encoder over tokens (rows, steps or features).",
        TransformerConfig,
        ALL_KINDS,
        Transformer,
        check=_check,
    ),
)
