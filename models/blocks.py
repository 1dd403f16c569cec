"""The building blocks of every family, one module each.

Convolutional blocks take ``dims`` (1 for sequences, 2 for images) so one implementation serves
both; shapes in comments use the 2-D case, (B, C, H, W). Every block maps ``c_in`` channels to
``c_out`` channels at the same spatial size; the network between blocks decides on pooling.
"""

from dataclasses import dataclass

import torch
from torch import nn

from models.layers import Dims, create_act_layer, create_norm, linear, spatial_dropout


@dataclass(frozen=True)
class Act:
    """Activation, normalization and regularization shared by a network's blocks."""

    activation: str = "relu"
    slope: float = 0.01
    norm: str = "batch"
    groups: int = 8
    dropout: float = 0.0
    dropconnect: float = 0.0

    def act(self) -> nn.Module:
        return create_act_layer(self.activation, self.slope)


def _conv(dims: Dims, c_in: int, c_out: int, kernel: int) -> nn.Module:
    conv = nn.Conv1d if dims == 1 else nn.Conv2d
    # Same padding for odd kernels: spatial size is preserved inside a block.
    return conv(c_in, c_out, kernel, padding=kernel // 2)


class DenseLayer(nn.Module):
    """Linear → norm → activation → dropout. (B, c_in) → (B, c_out)."""

    def __init__(self, c_in: int, c_out: int, a: Act) -> None:
        super().__init__()
        self.fc = linear(c_in, c_out, a.dropconnect)
        self.norm = create_norm(a.norm, c_out, 0, a.groups)
        self.act = a.act()
        self.drop = nn.Dropout(a.dropout) if a.dropout > 0 else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.drop(self.act(self.norm(self.fc(x))))  # type: ignore[no-any-return]


class ConvBlock(nn.Module):
    """Conv → norm → activation → spatial dropout. (B, c_in, H, W) → (B, c_out, H, W)."""

    def __init__(self, dims: Dims, c_in: int, c_out: int, kernel: int, a: Act, p: float) -> None:
        super().__init__()
        self.conv = _conv(dims, c_in, c_out, kernel)
        self.norm = create_norm(a.norm, c_out, dims, a.groups)
        self.act = a.act()
        self.drop = spatial_dropout(p, dims)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.drop(self.act(self.norm(self.conv(x))))  # type: ignore[no-any-return]


class ResidualBlock(nn.Module):
    """ResNet basic block: two convs, plus the input (projected by a 1x1 conv when the
    channel count changes). With ``skip=False`` it is the same two convs without the shortcut,
    so a search can measure what the skip connection buys.
    """

    def __init__(
        self, dims: Dims, c_in: int, c_out: int, kernel: int, a: Act, p: float, skip: bool
    ) -> None:
        super().__init__()
        self.conv1 = ConvBlock(dims, c_in, c_out, kernel, a, p)
        self.conv2 = _conv(dims, c_out, c_out, kernel)
        self.norm2 = create_norm(a.norm, c_out, dims, a.groups)
        self.skip = skip
        self.project = _conv(dims, c_in, c_out, 1) if skip and c_in != c_out else nn.Identity()
        self.act = a.act()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.norm2(self.conv2(self.conv1(x)))
        if self.skip:
            out = out + self.project(x)
        return self.act(out)  # type: ignore[no-any-return]


class DenseNetBlock(nn.Module):
    """DenseNet block: each layer sees the concatenation of all earlier feature maps and adds
    ``growth`` new channels; a 1x1 transition maps the c_in + layers * growth channels to c_out.
    Pre-activation order (norm → act → conv), as in the paper.
    """

    def __init__(
        self, dims: Dims, c_in: int, c_out: int, kernel: int, a: Act, p: float, growth: int, n: int
    ) -> None:
        super().__init__()
        self.layers = nn.ModuleList()
        channels = c_in
        for _ in range(n):
            self.layers.append(
                nn.Sequential(
                    create_norm(a.norm, channels, dims, a.groups),
                    a.act(),
                    _conv(dims, channels, growth, kernel),
                    spatial_dropout(p, dims),
                )
            )
            channels += growth
        self.transition = nn.Sequential(
            create_norm(a.norm, channels, dims, a.groups), a.act(), _conv(dims, channels, c_out, 1)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        features = [x]
        for layer in self.layers:
            features.append(layer(torch.cat(features, dim=1)))  # (B, c_in + i*growth, H, W)
        return self.transition(torch.cat(features, dim=1))  # type: ignore[no-any-return]


class InceptionBlock(nn.Module):
    """Inception module: 1x1, kxk and (k+2)x(k+2) convolutions and a pooled 1x1 branch run
    side by side; their outputs are concatenated to c_out channels (each branch c_out / 4, the
    last takes the remainder).
    """

    def __init__(self, dims: Dims, c_in: int, c_out: int, kernel: int, a: Act, p: float) -> None:
        super().__init__()
        quarter = max(1, c_out // 4)
        rest = c_out - 3 * quarter
        pool = nn.MaxPool1d if dims == 1 else nn.MaxPool2d
        self.b1 = _conv(dims, c_in, quarter, 1)
        self.b2 = nn.Sequential(
            _conv(dims, c_in, quarter, 1), _conv(dims, quarter, quarter, kernel)
        )
        self.b3 = nn.Sequential(
            _conv(dims, c_in, quarter, 1), _conv(dims, quarter, quarter, kernel + 2)
        )
        self.b4 = nn.Sequential(pool(3, stride=1, padding=1), _conv(dims, c_in, rest, 1))
        self.norm = create_norm(a.norm, c_out, dims, a.groups)
        self.act = a.act()
        self.drop = spatial_dropout(p, dims)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = torch.cat([self.b1(x), self.b2(x), self.b3(x), self.b4(x)], dim=1)  # (B, c_out, ..)
        return self.drop(self.act(self.norm(out)))  # type: ignore[no-any-return]


class TransformerBlock(nn.Module):
    """Pre-norm transformer encoder block: x + attn(norm(x)), then x + mlp(norm(x)).

    Shapes: (B, T, d) → (B, T, d). Pre-norm keeps gradients well-behaved without warm-up.
    """

    def __init__(self, d: int, heads: int, ff_mult: int, a: Act, attn_dropout: float) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(d) if a.norm == "layer" else nn.Identity()
        self.attn = nn.MultiheadAttention(d, heads, dropout=attn_dropout, batch_first=True)
        self.norm2 = nn.LayerNorm(d) if a.norm == "layer" else nn.Identity()
        self.mlp = nn.Sequential(
            linear(d, ff_mult * d, a.dropconnect),
            a.act(),
            linear(ff_mult * d, d, a.dropconnect),
            nn.Dropout(a.dropout) if a.dropout > 0 else nn.Identity(),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.norm1(x)
        x = x + self.attn(h, h, h, need_weights=False)[0]
        return x + self.mlp(self.norm2(x))  # type: ignore[no-any-return]
