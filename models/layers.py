"""Name registries for the layers a spec may name (in the style of timm's ``get_act_layer``).

A study names activations, norms, inits and dropouts as strings; these tables turn them into
modules. Unknown names raise ``ValueError`` listing the valid ones, so the API rejects a spec
before any trial runs.
"""

from collections.abc import Callable
from typing import Literal

import torch
from torch import nn
from torch.nn import functional as F

# -- activations ------------------------------------------------------------------------------

_ACTIVATIONS: dict[str, Callable[[float], nn.Module]] = {
    "relu": lambda _: nn.ReLU(),
    "leaky_relu": lambda slope: nn.LeakyReLU(slope),
    "elu": lambda _: nn.ELU(),
    "selu": lambda _: nn.SELU(),
    "silu": lambda _: nn.SiLU(),
    "swish": lambda _: nn.SiLU(),  # swish(x) = x * sigmoid(x) is SiLU
    "gelu": lambda _: nn.GELU(),
    "tanh": lambda _: nn.Tanh(),
    "sigmoid": lambda _: nn.Sigmoid(),
    "softplus": lambda _: nn.Softplus(),
}


def list_activations() -> list[str]:
    """Names accepted by :func:`create_act_layer`."""
    return sorted(_ACTIVATIONS)


def _unknown(what: str, name: str, valid: list[str]) -> ValueError:
    return ValueError(f"unknown {what} {name!r}; valid: {', '.join(valid)}")


def create_act_layer(name: str, slope: float = 0.01) -> nn.Module:
    """Build the activation registered under ``name``.

    Args:
        name: a registered activation.
        slope: the negative slope of ``leaky_relu`` (ignored by the others).

    Raises:
        ValueError: ``name`` is not registered; the message lists the valid names.
    """
    if name not in _ACTIVATIONS:
        raise _unknown("activation", name, list_activations())
    return _ACTIVATIONS[name](slope)


# -- normalization ----------------------------------------------------------------------------

Dims = Literal[0, 1, 2]  # 0: dense features (B, C); 1: sequences (B, C, L); 2: images (B, C, H, W)
NORMS = ("none", "batch", "layer", "instance", "group")


def list_norms() -> list[str]:
    return list(NORMS)


def norm_error(name: str, channels: int, groups: int, dims: Dims) -> str | None:
    """Why ``name`` cannot normalize ``channels`` features, or None if it can."""
    if name not in NORMS:
        return str(_unknown("norm", name, list_norms()))
    if name == "instance" and dims == 0:
        return "instance norm needs spatial inputs (a conv family); dense layers have none"
    if name == "group" and channels % groups:
        return f"group norm: {groups} groups do not divide {channels} channels"
    return None


def create_norm(name: str, channels: int, dims: Dims, groups: int = 8) -> nn.Module:
    """A normalization layer over ``channels`` features.

    ``layer`` on conv maps is GroupNorm with one group (normalizes C, H, W per sample);
    ``instance`` is GroupNorm with one group per channel, which has affine parameters.
    """
    error = norm_error(name, channels, groups, dims)
    if error:
        raise ValueError(error)
    if name == "none":
        return nn.Identity()
    if name == "batch":
        return (nn.BatchNorm1d, nn.BatchNorm1d, nn.BatchNorm2d)[dims](channels)
    if name == "layer":
        return nn.LayerNorm(channels) if dims == 0 else nn.GroupNorm(1, channels)
    if name == "instance":
        return nn.GroupNorm(channels, channels)
    return nn.GroupNorm(groups, channels)


# -- initialization ---------------------------------------------------------------------------

_INITS: dict[str, Callable[[torch.Tensor], object]] = {
    "xavier_uniform": nn.init.xavier_uniform_,
    "xavier_normal": nn.init.xavier_normal_,
    "kaiming_uniform": lambda w: nn.init.kaiming_uniform_(w, nonlinearity="relu"),
    "kaiming_normal": lambda w: nn.init.kaiming_normal_(w, nonlinearity="relu"),
    "orthogonal": nn.init.orthogonal_,
    "normal": lambda w: nn.init.normal_(w, std=0.02),  # small random normal (GPT-2 style)
}
INITS = ("default", *sorted(_INITS))


def list_inits() -> list[str]:
    return list(INITS)


def init_weights(model: nn.Module, scheme: str) -> None:
    """Re-initialize every Linear and Conv weight with ``scheme`` (biases to zero).

    ``default`` keeps PyTorch's own initialization.
    """
    if scheme not in INITS:
        raise _unknown("init", scheme, list_inits())
    if scheme == "default":
        return
    for module in model.modules():
        if isinstance(module, nn.Linear | nn.Conv1d | nn.Conv2d):
            _INITS[scheme](module.weight)
            if module.bias is not None:
                nn.init.zeros_(module.bias)


# -- dropout variants -------------------------------------------------------------------------


def spatial_dropout(p: float, dims: Dims) -> nn.Module:
    """Drops whole feature maps (channels), the dropout that suits conv layers."""
    if p <= 0:
        return nn.Identity()
    return (nn.Dropout, nn.Dropout1d, nn.Dropout2d)[dims](p)


class DropConnectLinear(nn.Linear):
    """A Linear layer whose weights (not activations) are dropped while training (DropConnect).

    Each forward pass samples a fresh mask over the weight matrix; survivors are scaled by
    1 / (1 - p) so the expected pre-activation is unchanged, as with dropout.
    """

    def __init__(self, in_features: int, out_features: int, p: float = 0.0) -> None:
        super().__init__(in_features, out_features)
        self.p = p

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        weight = F.dropout(self.weight, self.p, self.training) if self.p > 0 else self.weight
        return F.linear(x, weight, self.bias)


def linear(in_features: int, out_features: int, dropconnect: float = 0.0) -> nn.Linear:
    """A Linear layer, with DropConnect when ``dropconnect`` > 0."""
    if dropconnect > 0:
        return DropConnectLinear(in_features, out_features, dropconnect)
    return nn.Linear(in_features, out_features)


# -- attention pooling ------------------------------------------------------------------------


class AttentionPool(nn.Module):
    """Learned queries attend to a set of tokens; (B, T, D) → (B, D).

    Each of ``queries`` learned vectors attends (``heads`` heads, scaled dot product) to the
    tokens' keys and takes the weighted sum of their values; the queries' results are
    concatenated and projected back to D. ``mask`` (B, T), 1 for a real token, keeps padding
    out: a padded graph's empty node slots, for example.
    """

    def __init__(self, dim: int, heads: int = 1, queries: int = 1) -> None:
        super().__init__()
        if dim % heads:
            raise ValueError(f"{heads} heads do not divide {dim} features")
        self.heads, self.queries = heads, queries
        self.query = nn.Parameter(torch.randn(queries, dim) * dim**-0.5)
        self.key = nn.Linear(dim, dim)
        self.value = nn.Linear(dim, dim)
        self.out = nn.Linear(queries * dim, dim)

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        b, t, d = x.shape
        h, q = self.heads, self.queries
        keys = self.key(x).view(b, t, h, d // h).transpose(1, 2)  # (B, h, T, d/h)
        values = self.value(x).view(b, t, h, d // h).transpose(1, 2)
        query = self.query.view(q, h, d // h).transpose(0, 1)  # (h, Q, d/h)
        scores = torch.matmul(query, keys.transpose(-1, -2)) * (d // h) ** -0.5  # (B, h, Q, T)
        if mask is not None:
            scores = scores.masked_fill(mask[:, None, None, :] <= 0, float("-inf"))
            # A sample without tokens would be all -inf: give it zeros, not NaN.
            scores = torch.nan_to_num(scores.softmax(dim=-1), nan=0.0)
        else:
            scores = scores.softmax(dim=-1)
        pooled = torch.matmul(scores, values)  # (B, h, Q, d/h)
        return self.out(pooled.permute(0, 2, 1, 3).reshape(b, q * d))  # type: ignore[no-any-return]
