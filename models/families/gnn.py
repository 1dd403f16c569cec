"""The ``gnn`` family: message passing over padded graphs (GCN, GraphSAGE, GAT, GIN), with a
readout for graph tasks and a per-node head for node tasks (:mod:`models.graph_layers`)."""

from dataclasses import dataclass

import torch
from torch import nn

from models.data import DatasetInfo
from models.families.base import Family
from models.fields import FieldErrors, setting
from models.graph_data import MAX_NODES, feature_count
from models.graph_layers import (
    LAYERS,
    NORMS,
    READOUTS,
    NodeNorm,
    Readout,
    create_graph_layer,
    split,
)
from models.layers import create_act_layer, linear, list_activations, list_inits


@dataclass(frozen=True)
class GNNConfig:
    """Graph neural network: an input projection, ``layers`` message-passing layers (each
    followed by norm, activation, dropout, with a residual connection), a readout (graph
    tasks) or the target node's state (node tasks), and a linear head."""

    layer: str = setting("gcn", "Message-passing layer.", choices=LAYERS)
    layers: int = setting(3, "Message-passing layers (hops a node sees).", low=1, high=16)
    width: int = setting(64, "Node state width.", low=4, high=1024)
    heads: int = setting(
        4, "Attention heads of gat layers and of attention readout; divide width.", low=1, high=16
    )
    residual: bool = setting(True, "Add each layer's input to its output.")
    norm: str = setting("none", "Normalization after each layer, over real nodes.", choices=NORMS)
    activation: str = setting("relu", "Activation after each layer.", choices=list_activations)
    leaky_slope: float = setting(0.01, "Negative slope of leaky_relu.", low=0.0, high=1.0)
    dropout: float = setting(
        0.0, "Dropout after each layer and before the head.", low=0.0, high=0.95
    )
    readout: str = setting(
        "mean",
        "How a graph task's nodes become one vector (node tasks read their node).",
        choices=READOUTS,
    )
    queries: int = setting(1, "Learned queries of attention readout.", low=1, high=16)
    dropconnect: float = setting(0.0, "DropConnect in the head.", low=0.0, high=0.95)
    init: str = setting("default", "Weight initialization.", choices=list_inits)


class GNN(nn.Module):
    """(B, M, 2 + F + M) padded graphs → node states (B, M, width) → readout → (B, n_out)."""

    def __init__(self, cfg: GNNConfig, input_shape: tuple[int, ...], n_out: int) -> None:
        super().__init__()
        self.n_features = feature_count(input_shape)
        self.residual = cfg.residual
        self.embed = nn.Linear(self.n_features, cfg.width)
        self.convs = nn.ModuleList(
            create_graph_layer(cfg.layer, cfg.width, cfg.width, cfg.heads)
            for _ in range(cfg.layers)
        )
        self.norms = nn.ModuleList(NodeNorm(cfg.norm, cfg.width) for _ in range(cfg.layers))
        self.act = create_act_layer(cfg.activation, cfg.leaky_slope)
        self.drop = nn.Dropout(cfg.dropout) if cfg.dropout > 0 else nn.Identity()
        self.readout = Readout(cfg.readout, cfg.width, cfg.heads, cfg.queries)
        self.head = linear(cfg.width, n_out, cfg.dropconnect)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        mask, target, features, adj = split(x, self.n_features)
        m = mask.unsqueeze(-1)
        h = self.embed(features) * m
        for conv, norm in zip(self.convs, self.norms, strict=True):
            out = self.drop(self.act(norm(conv(h, adj, mask), mask)))
            h = (h + out if self.residual else out) * m  # padding stays zero
        return self.head(self.drop(self.readout(h, mask, target)))  # type: ignore[no-any-return]


def _check(cfg: GNNConfig, info: DatasetInfo) -> FieldErrors:
    uses_heads = cfg.layer == "gat" or cfg.readout == "attention"
    if uses_heads and cfg.width % cfg.heads:
        return [("heads", f"{cfg.heads} heads do not divide width={cfg.width}")]
    shape = info.input_shape
    if len(shape) != 2 or not 0 < shape[0] <= MAX_NODES or feature_count(shape) < 1:
        return [
            (
                "family",
                f"gnn needs padded graphs of shape (nodes <= {MAX_NODES}, 2 + features + nodes) "
                f"with at least one node feature; dataset {info.name!r} has samples of shape "
                f"{list(shape)}",
            )
        ]
    return []


FAMILIES = (
    Family(
        "gnn",
        "Graph neural network: GCN, GraphSAGE, GAT or GIN layers, a readout or per-node head.",
        GNNConfig,
        ("graph",),
        GNN,
        check=_check,
    ),
)
