"""The macro family's graph stages: on graph data each stage is ``depth`` message-passing
layers of one type (``gcn``, ``sage``, ``gat``, ``gin``) with its own width, activation,
normalization and shortcut; a mean readout (node tasks: the target node) and a linear head end
the network. A macro architecture search over graphs searches the layer type per stage."""

from collections.abc import Sequence

import torch
from torch import nn

from models.graph_data import feature_count
from models.graph_layers import LAYERS, NodeNorm, Readout, create_graph_layer, split
from models.layers import create_act_layer

GRAPH_BLOCKS = LAYERS


class _GraphStage(nn.Module):
    """``depth`` layers c_in → width (each: layer → norm → activation), with an optional
    (projected) shortcut around the stage."""

    def __init__(
        self,
        block: str,
        c_in: int,
        width: int,
        depth: int,
        act: str,
        norm: str,
        skip: bool,
        heads: int,
    ) -> None:
        super().__init__()
        self.convs = nn.ModuleList(
            create_graph_layer(block, c_in if i == 0 else width, width, heads) for i in range(depth)
        )
        self.norms = nn.ModuleList(NodeNorm(norm, width) for _ in range(depth))
        self.act = create_act_layer(act)
        self.shortcut: nn.Module | None = None
        if skip:
            self.shortcut = nn.Identity() if c_in == width else nn.Linear(c_in, width)

    def forward(self, h: torch.Tensor, adj: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        out = h
        for conv, norm in zip(self.convs, self.norms, strict=True):
            out = self.act(norm(conv(out, adj, mask), mask))
        if self.shortcut is not None:
            out = out + self.shortcut(h)
        return out * mask.unsqueeze(-1)


class GraphMacroNet(nn.Module):
    """(B, M, 2 + F + M) padded graphs → stages → readout → (B, n_out)."""

    def __init__(
        self,
        input_shape: tuple[int, ...],
        n_out: int,
        stages: Sequence[tuple[str, int, int, str, str, bool]],
        heads: int,
        dropout: float,
    ) -> None:
        """``stages``: (block, width, depth, activation, norm, skip) of each stage."""
        super().__init__()
        self.n_features = feature_count(input_shape)
        c_in = self.n_features
        layers = []
        for block, width, depth, act, norm, skip in stages:
            layers.append(_GraphStage(block, c_in, width, depth, act, norm, skip, heads))
            c_in = width
        self.stages = nn.ModuleList(layers)
        self.readout = Readout("mean", c_in)
        self.drop = nn.Dropout(dropout) if dropout > 0 else nn.Identity()
        self.head = nn.Linear(c_in, n_out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        mask, target, h, adj = split(x, self.n_features)
        for stage in self.stages:
            h = stage(h, adj, mask)
        return self.head(self.drop(self.readout(h, mask, target)))  # type: ignore[no-any-return]
