"""Message passing on padded graphs (:mod:`models.graph_data`'s layout): GCN, GraphSAGE, GAT
and GIN layers, graph-aware normalization and the readouts.

Every layer takes node states ``h`` (B, M, D), the adjacency ``adj`` (B, M, M) (1 where an edge
joins two slots) and the node ``mask`` (B, M) (1 for a real node), and returns (B, M, D_out);
padded slots have no edges, so nothing flows from or to them. The aggregation is a batched
matrix product with the adjacency: what ``index_add_`` over an edge list computes, as dense
tensors, so a batch of graphs is one fixed-shape tensor, as the trainer batches every kind of
data, and the network traces to TorchScript. A graph has at most
:data:`models.graph_data.MAX_NODES` nodes, so the M x M adjacency stays small.
"""

import torch
from torch import nn
from torch.nn import functional as F

from models.graph_data import FIRST_FEATURE, MASK, TARGET
from models.layers import AttentionPool

LAYERS = ("gcn", "sage", "gat", "gin")
NORMS = ("none", "batch", "layer", "graph")
READOUTS = ("mean", "sum", "max", "attention")


def split(x: torch.Tensor, n_features: int) -> tuple[torch.Tensor, ...]:
    """A batch of samples (B, M, 2 + F + M) → mask (B, M), target (B, M), features (B, M, F),
    adjacency (B, M, M)."""
    adj0 = FIRST_FEATURE + n_features
    mask, target = x[..., MASK], x[..., TARGET]
    features = x[..., FIRST_FEATURE:adj0] * mask.unsqueeze(-1)
    return mask, target, features, x[..., adj0:]


def _with_self_loops(adj: torch.Tensor) -> torch.Tensor:
    eye = torch.eye(adj.shape[-1], dtype=adj.dtype, device=adj.device)
    return adj + eye


class GCNLayer(nn.Module):
    """Kipf & Welling: h' = D^-1/2 (A + I) D^-1/2 h W + b."""

    def __init__(self, d_in: int, d_out: int, heads: int = 1) -> None:
        super().__init__()
        self.lin = nn.Linear(d_in, d_out)

    def forward(self, h: torch.Tensor, adj: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        a = _with_self_loops(adj)
        d = a.sum(-1).rsqrt()  # every slot has its self-loop: degree >= 1
        norm = d.unsqueeze(-1) * a * d.unsqueeze(-2)
        return torch.matmul(norm, self.lin(h))


class SAGELayer(nn.Module):
    """GraphSAGE with the mean aggregator: h' = W_self h + W_neigh mean_{j in N(i)} h_j."""

    def __init__(self, d_in: int, d_out: int, heads: int = 1) -> None:
        super().__init__()
        self.self_lin = nn.Linear(d_in, d_out)
        self.neigh_lin = nn.Linear(d_in, d_out, bias=False)

    def forward(self, h: torch.Tensor, adj: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        deg = adj.sum(-1, keepdim=True).clamp(min=1)
        return self.self_lin(h) + self.neigh_lin(torch.matmul(adj, h) / deg)  # type: ignore[no-any-return]


class GATLayer(nn.Module):
    """Graph attention (Velickovic et al.): ``heads`` heads of d_out / heads features each,
    concatenated; node i attends to itself and its neighbours with
    softmax_j(LeakyReLU(a_dst . W h_i + a_src . W h_j))."""

    def __init__(self, d_in: int, d_out: int, heads: int = 1) -> None:
        super().__init__()
        if d_out % heads:
            raise ValueError(f"{heads} heads do not divide {d_out} features")
        self.heads = heads
        self.lin = nn.Linear(d_in, d_out, bias=False)
        self.att_src = nn.Parameter(torch.empty(heads, d_out // heads))
        self.att_dst = nn.Parameter(torch.empty(heads, d_out // heads))
        nn.init.xavier_uniform_(self.att_src)
        nn.init.xavier_uniform_(self.att_dst)
        self.bias = nn.Parameter(torch.zeros(d_out))

    def forward(self, h: torch.Tensor, adj: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        b, m, _ = h.shape
        k = self.heads
        wh = self.lin(h).view(b, m, k, -1)  # (B, M, k, d)
        src = (wh * self.att_src).sum(-1)  # (B, M, k)
        dst = (wh * self.att_dst).sum(-1)
        scores = F.leaky_relu(dst.unsqueeze(2) + src.unsqueeze(1), 0.2)  # (B, M_i, M_j, k)
        allowed = _with_self_loops(adj).unsqueeze(-1) > 0  # every row has its self-loop
        alpha = scores.masked_fill(~allowed, float("-inf")).softmax(dim=2)
        out = torch.einsum("bijk,bjkd->bikd", alpha, wh)
        return out.reshape(b, m, -1) + self.bias


class GINLayer(nn.Module):
    """Graph isomorphism network (Xu et al.): h' = MLP((1 + eps) h + sum_{j in N(i)} h_j),
    eps learned; as expressive as the 1-WL test."""

    def __init__(self, d_in: int, d_out: int, heads: int = 1) -> None:
        super().__init__()
        self.eps = nn.Parameter(torch.zeros(1))
        self.mlp = nn.Sequential(nn.Linear(d_in, d_out), nn.ReLU(), nn.Linear(d_out, d_out))

    def forward(self, h: torch.Tensor, adj: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        return self.mlp((1 + self.eps) * h + torch.matmul(adj, h))  # type: ignore[no-any-return]


_LAYER_TYPES: dict[str, type[nn.Module]] = {
    "gcn": GCNLayer,
    "sage": SAGELayer,
    "gat": GATLayer,
    "gin": GINLayer,
}


def create_graph_layer(name: str, d_in: int, d_out: int, heads: int = 1) -> nn.Module:
    """The message-passing layer registered as ``name`` (one of :data:`LAYERS`).

    Raises:
        ValueError: unknown name, or (GAT) heads that do not divide ``d_out``.
    """
    if name not in _LAYER_TYPES:
        raise ValueError(f"unknown graph layer {name!r}; valid: {', '.join(LAYERS)}")
    return _LAYER_TYPES[name](d_in, d_out, heads)


# -- normalization over real nodes ------------------------------------------------------------


def _masked_moments(
    h: torch.Tensor, mask: torch.Tensor, dims: tuple[int, ...]
) -> tuple[torch.Tensor, torch.Tensor]:
    m = mask.unsqueeze(-1)
    count = m.sum(dim=dims, keepdim=True).clamp(min=1)
    mean = (h * m).sum(dim=dims, keepdim=True) / count
    var = (((h - mean) * m) ** 2).sum(dim=dims, keepdim=True) / count
    return mean, var


class NodeNorm(nn.Module):
    """Normalizes node states (B, M, D) over real nodes only (padding counts for nothing).

    ``batch``: per feature over every node of the batch, with running statistics for
    evaluation (batch norm); ``graph``: per feature over each graph's own nodes (instance norm
    of a graph); ``layer``: over each node's features; ``none``: identity. All but ``none`` have
    an affine scale and shift.
    """

    running_mean: torch.Tensor
    running_var: torch.Tensor

    def __init__(self, kind: str, dim: int, momentum: float = 0.1, eps: float = 1e-5) -> None:
        super().__init__()
        if kind not in NORMS:
            raise ValueError(f"unknown graph norm {kind!r}; valid: {', '.join(NORMS)}")
        self.kind, self.momentum, self.eps = kind, momentum, eps
        self.weight = nn.Parameter(torch.ones(dim)) if kind != "none" else None
        self.bias = nn.Parameter(torch.zeros(dim)) if kind != "none" else None
        self.register_buffer("running_mean", torch.zeros(dim))
        self.register_buffer("running_var", torch.ones(dim))

    def forward(self, h: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        if self.weight is None or self.bias is None:
            return h
        if self.kind == "layer":
            out = F.layer_norm(h, h.shape[-1:], eps=self.eps)
        elif self.kind == "graph":
            mean, var = _masked_moments(h, mask, (1,))
            out = (h - mean) / torch.sqrt(var + self.eps)
        elif self.training:
            mean, var = _masked_moments(h, mask, (0, 1))
            with torch.no_grad():
                self.running_mean.lerp_(mean.flatten(), self.momentum)
                self.running_var.lerp_(var.flatten(), self.momentum)
            out = (h - mean) / torch.sqrt(var + self.eps)
        else:
            out = (h - self.running_mean) / torch.sqrt(self.running_var + self.eps)
        return out * self.weight + self.bias


# -- readout --------------------------------------------------------------------------------


class Readout(nn.Module):
    """Node states (B, M, D) → one vector per sample (B, D).

    A node-task sample (a node marked as its target) reads its target node's state: a per-node
    head. A graph-task sample pools its real nodes: ``mean``, ``sum``, ``max``, or
    ``attention`` (learned queries attending to the nodes, :class:`models.layers.AttentionPool`).
    """

    def __init__(self, kind: str, dim: int, heads: int = 1, queries: int = 1) -> None:
        super().__init__()
        if kind not in READOUTS:
            raise ValueError(f"unknown readout {kind!r}; valid: {', '.join(READOUTS)}")
        self.kind = kind
        self.attention = AttentionPool(dim, heads, queries) if kind == "attention" else None

    def forward(self, h: torch.Tensor, mask: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        m = mask.unsqueeze(-1)
        if self.attention is not None:
            pooled = self.attention(h, mask)
        elif self.kind == "sum":
            pooled = (h * m).sum(1)
        elif self.kind == "max":
            pooled = h.masked_fill(m <= 0, torch.finfo(h.dtype).min).amax(1)
            pooled = torch.where(m.sum(1) > 0, pooled, torch.zeros_like(pooled))
        else:
            pooled = (h * m).sum(1) / m.sum(1).clamp(min=1)
        node = (h * target.unsqueeze(-1)).sum(1)
        is_node_task = target.sum(1, keepdim=True) > 0
        return torch.where(is_node_task, node, pooled)
