"""The NAS-Bench-201 cell: its genotype grammar, its operations, the cell and the supernet.

The cell (Dong & Yang, 2020) is a DAG of 4 nodes: node 0 is the cell's input, node 3 its
output, and each node j is the sum of one operation per earlier node i, on the edge (j, i).
A genotype names the 6 operations; NAS-Bench-201 writes it as
``|conv3x3~0|+|none~0|skip~1|+|avgpool3x3~0|conv1x1~1|conv3x3~2|``: group j lists the ops
from nodes 0..j-1.

:class:`CellNetwork` stacks cells in NAS-Bench-201's skeleton (the ``nb201`` family,
:mod:`models.families.nb201`): a conv stem, ``stages`` stages of ``cells_per_stage`` cells, a
stride-2 residual block doubling the channels between stages, then BN → ReLU → global average
pool → linear. :class:`Supernet` is the same skeleton with every edge a softmax-weighted mix of
all operations, which :mod:`models.darts` trains with first-order DARTS.
"""

import functools
import math
import operator
from collections import deque
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass

import torch
from torch import nn
from torch.nn import functional as F

OPS = ("none", "skip", "conv1x1", "conv3x3", "avgpool3x3")
Edge = tuple[int, int]  # (to, from): node ``to`` sums op(node ``from``)
N_NODES = 4
EDGES: tuple[Edge, ...] = tuple((j, i) for j in range(1, N_NODES) for i in range(j))


def edge_name(edge: Edge) -> str:
    """The config field (and search-space parameter ``model.<name>``) of an edge: ``edge_2_1``."""
    to, source = edge
    return f"edge_{to}_{source}"


# -- genotypes --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Genotype:
    """The operation on each edge of a cell, in the order of :data:`EDGES`.

    Raises:
        ValueError: not one op per edge, or an op that is not in :data:`OPS`.
    """

    ops: tuple[str, ...]

    def __post_init__(self) -> None:
        if len(self.ops) != len(EDGES):
            raise ValueError(f"a genotype has {len(EDGES)} edges, got {len(self.ops)} ops")
        for edge, op in zip(EDGES, self.ops, strict=True):
            if op not in OPS:
                raise ValueError(_unknown_op(op, edge))

    @property
    def edges(self) -> dict[Edge, str]:
        """Edge (to, from) → op."""
        return dict(zip(EDGES, self.ops, strict=True))


def _unknown_op(op: str, edge: Edge) -> str:
    return f"unknown op {op!r} on {edge_name(edge)}; valid: {', '.join(OPS)}"


def parse_genotype(text: str) -> Genotype:
    """Read a genotype in NAS-Bench-201's notation (see the module docstring).

    Raises:
        ValueError: the text is malformed; the message names the node, entry or op at fault.
    """
    groups = text.split("+")
    if len(groups) != N_NODES - 1:
        raise ValueError(
            f"a genotype has {N_NODES - 1} groups joined by '+' (nodes 1..{N_NODES - 1}), "
            f"got {len(groups)} in {text!r}"
        )
    ops: list[str] = []
    for to, group in enumerate(groups, start=1):
        ops.extend(_parse_group(to, group))
    return Genotype(tuple(ops))


def _parse_group(to: int, group: str) -> list[str]:
    """The ops into node ``to`` from a group ``|op~0|op~1|``, in source order."""
    if len(group) < 2 or group[0] != "|" or group[-1] != "|":
        raise ValueError(f"node {to}'s group must look like |op~0|...|, got {group!r}")
    entries = group[1:-1].split("|")
    if len(entries) != to:
        raise ValueError(f"node {to} takes {to} inputs (nodes 0..{to - 1}), got {len(entries)}")
    ops = []
    for source, entry in enumerate(entries):
        op, sep, index = entry.partition("~")
        if not sep:
            raise ValueError(f"entry {entry!r} of node {to} must look like op~index")
        if index != str(source):
            raise ValueError(
                f"entry {source} of node {to} must come from node {source} (op~{source}), "
                f"got {entry!r}"
            )
        if op not in OPS:
            raise ValueError(_unknown_op(op, (to, source)))
        ops.append(op)
    return ops


def format_genotype(genotype: Genotype) -> str:
    """NAS-Bench-201's notation of ``genotype``; :func:`parse_genotype` reads it back."""
    edges = genotype.edges
    groups = ("|".join(f"{edges[(to, i)]}~{i}" for i in range(to)) for to in range(1, N_NODES))
    return "|" + "|+|".join(groups) + "|"


def _connects(edges: Sequence[Edge]) -> bool:
    """Whether ``edges`` (to, from) contain a path from node 0 to the output node."""
    reached, todo = {0}, deque([0])
    while todo:
        node = todo.popleft()
        for to, source in edges:
            if source == node and to not in reached:
                reached.add(to)
                todo.append(to)
    return N_NODES - 1 in reached


def has_path(genotype: Genotype) -> bool:
    """Whether a path of edges that are not ``none`` leads from the cell's input to its output."""
    return _connects([edge for edge, op in genotype.edges.items() if op != "none"])


def space_has_path(allowed: Mapping[Edge, Sequence[str]]) -> bool:
    """Whether some cell whose every edge takes one of its allowed ops has a path from input
    to output: the edges that allow an op other than ``none`` connect node 0 to node 3.

    Raises:
        ValueError: an edge is missing from ``allowed`` or allows no op at all.
    """
    for edge in EDGES:
        if not allowed.get(edge):
            raise ValueError(f"no ops given for {edge_name(edge)}")
    return _connects([edge for edge in EDGES if any(op != "none" for op in allowed[edge])])


# -- operations and cells ---------------------------------------------------------------------


def _sum(tensors: Iterable[torch.Tensor]) -> torch.Tensor:
    """The sum of one or more tensors."""
    return functools.reduce(operator.add, tensors)


class Zero(nn.Module):
    """The ``none`` op: zeros shaped like the input."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.mul(0.0)


def relu_conv_bn(c_in: int, c_out: int, kernel: int, stride: int = 1) -> nn.Sequential:
    """NAS-Bench-201's ReLUConvBN: ReLU → Conv2d (same padding, no bias) → BatchNorm2d."""
    return nn.Sequential(
        nn.ReLU(),
        nn.Conv2d(c_in, c_out, kernel, stride=stride, padding=kernel // 2, bias=False),
        nn.BatchNorm2d(c_out),
    )


def create_op(name: str, channels: int) -> nn.Module:
    """The module of op ``name`` (one of :data:`OPS`) on ``channels`` channels, same size out.

    Raises:
        ValueError: unknown op.
    """
    if name == "none":
        return Zero()
    if name == "skip":
        return nn.Identity()
    if name == "conv1x1":
        return relu_conv_bn(channels, channels, 1)
    if name == "conv3x3":
        return relu_conv_bn(channels, channels, 3)
    if name == "avgpool3x3":
        return nn.AvgPool2d(3, stride=1, padding=1, count_include_pad=False)
    raise ValueError(f"unknown op {name!r}; valid: {', '.join(OPS)}")


class Cell(nn.Module):
    """A NAS-Bench-201 cell with fixed ops. (B, C, H, W) → (B, C, H, W)."""

    def __init__(self, genotype: Genotype, channels: int) -> None:
        super().__init__()
        self.edges = nn.ModuleDict(
            {edge_name(edge): create_op(op, channels) for edge, op in genotype.edges.items()}
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        nodes = [x]
        for to in range(1, N_NODES):
            nodes.append(_sum(self.edges[edge_name((to, i))](nodes[i]) for i in range(to)))
        return nodes[-1]


class MixedOp(nn.Module):
    """DARTS' relaxation of an edge: Σ_o w_o · o(x) over the candidate ops."""

    def __init__(self, ops: Sequence[str], channels: int) -> None:
        super().__init__()
        self.ops = nn.ModuleList(create_op(op, channels) for op in ops)

    def forward(self, x: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
        """``weights``: (n_ops,) mixing weights, one per candidate op."""
        return _sum(w * op(x) for w, op in zip(weights, self.ops, strict=True))


class SearchCell(nn.Module):
    """A cell whose edges are :class:`MixedOp` s. (B, C, H, W) → (B, C, H, W)."""

    def __init__(self, ops: Sequence[str], channels: int) -> None:
        super().__init__()
        self.edges = nn.ModuleDict({edge_name(edge): MixedOp(ops, channels) for edge in EDGES})

    def forward(self, x: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
        """``weights``: (6, n_ops), row k mixing the ops of edge ``EDGES[k]``."""
        nodes = [x]
        rows = dict(zip(EDGES, weights, strict=True))
        for to in range(1, N_NODES):
            nodes.append(
                _sum(self.edges[edge_name((to, i))](nodes[i], rows[(to, i)]) for i in range(to))
            )
        return nodes[-1]


class ReductionBlock(nn.Module):
    """NAS-Bench-201's stride-2 ResNet basic block between stages: two ReLUConvBN 3x3 convs
    (the first with stride 2) plus a shortcut of 2x2 average pooling and a 1x1 conv.
    (B, c_in, H, W) → (B, c_out, ceil(H/2), ceil(W/2)).
    """

    def __init__(self, c_in: int, c_out: int) -> None:
        super().__init__()
        self.conv_a = relu_conv_bn(c_in, c_out, 3, stride=2)
        self.conv_b = relu_conv_bn(c_out, c_out, 3)
        # ceil_mode: odd sizes shrink as the stride-2 conv does, (H + 1) // 2.
        self.shortcut = nn.Sequential(
            nn.AvgPool2d(2, stride=2, ceil_mode=True),
            nn.Conv2d(c_in, c_out, 1, bias=False),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv_b(self.conv_a(x)) + self.shortcut(x)  # type: ignore[no-any-return]


class _Skeleton(nn.Module):
    """NAS-Bench-201's macro network around a cell: stem, stages of cells with a reduction
    block doubling the channels between stages, then BN → ReLU → average pool → linear."""

    def __init__(
        self,
        input_shape: tuple[int, ...],
        n_out: int,
        channels: int,
        cells_per_stage: int,
        stages: int,
        make_cell: Callable[[int], nn.Module],
    ) -> None:
        super().__init__()
        self.stem = nn.Sequential(
            nn.Conv2d(input_shape[0], channels, 3, padding=1, bias=False),
            nn.BatchNorm2d(channels),
        )
        layers: list[nn.Module] = []
        c = channels
        for stage in range(stages):
            if stage:
                layers.append(ReductionBlock(c, 2 * c))
                c *= 2
            layers.extend(make_cell(c) for _ in range(cells_per_stage))
        self.layers = nn.ModuleList(layers)
        self.last_act = nn.Sequential(nn.BatchNorm2d(c), nn.ReLU())
        self.classifier = nn.Linear(c, n_out)

    def classify(self, h: torch.Tensor) -> torch.Tensor:
        """(B, c_last, H', W') features → (B, n_out) logits."""
        return self.classifier(self.last_act(h).mean(dim=(2, 3)))  # type: ignore[no-any-return]


class CellNetwork(_Skeleton):
    """The ``nb201`` family's network: one genotype in every cell. (B, C, H, W) → (B, n_out)."""

    def __init__(
        self,
        genotype: Genotype,
        input_shape: tuple[int, ...],
        n_out: int,
        channels: int,
        cells_per_stage: int,
        stages: int,
    ) -> None:
        super().__init__(
            input_shape, n_out, channels, cells_per_stage, stages, lambda c: Cell(genotype, c)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.stem(x)
        for layer in self.layers:
            h = layer(h)
        return self.classify(h)


class Supernet(_Skeleton):
    """The one-shot network of DARTS: every edge mixes all ``ops``, weighted by the softmax of
    one architecture matrix alpha (6 edges x n_ops) shared by all cells. (B, C, H, W) → (B, n_out).

    Raises:
        ValueError: ``ops`` is empty, repeats an op, or names one not in :data:`OPS`.
    """

    def __init__(
        self,
        input_shape: tuple[int, ...],
        n_out: int,
        channels: int,
        cells_per_stage: int,
        stages: int,
        ops: Sequence[str] = OPS,
    ) -> None:
        if not ops or len(set(ops)) != len(ops) or not set(ops) <= set(OPS):
            raise ValueError(f"ops must be distinct names from {', '.join(OPS)}, got {ops!r}")
        super().__init__(
            input_shape, n_out, channels, cells_per_stage, stages, lambda c: SearchCell(ops, c)
        )
        self.ops = tuple(ops)
        self.alpha = nn.Parameter(1e-3 * torch.randn(len(EDGES), len(ops)))  # as DARTS inits

    def arch_parameters(self) -> list[nn.Parameter]:
        """The architecture weights alpha (logits; rows follow :data:`EDGES`, columns ``ops``)."""
        return [self.alpha]

    def weight_parameters(self) -> list[nn.Parameter]:
        """Every parameter but alpha: the operations' weights, stem, reductions and head."""
        return [p for p in self.parameters() if p is not self.alpha]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        weights = F.softmax(self.alpha, dim=-1)
        h = self.stem(x)
        for layer in self.layers:
            h = layer(h, weights) if isinstance(layer, SearchCell) else layer(h)
        return self.classify(h)


def derive_genotype(alpha: torch.Tensor, ops: Sequence[str]) -> Genotype:
    """Discretize architecture weights as DARTS does: each edge takes its strongest op other
    than ``none`` (``none`` only when it is the sole candidate).

    Args:
        alpha: (6, n_ops) logits or probabilities; rows follow :data:`EDGES`, columns ``ops``.
        ops: the candidate ops.
    """
    candidates = [k for k, op in enumerate(ops) if op != "none"] or [0]
    rows = alpha.detach().cpu().tolist()
    return Genotype(tuple(ops[max(candidates, key=row.__getitem__)] for row in rows))


def reduction_error(stages: int, input_shape: tuple[int, ...]) -> str | None:
    """Why ``stages - 1`` reductions cannot shrink an image of ``input_shape``, or None."""
    smallest = min(input_shape[1:])
    # Each reduction maps size s to ceil(s / 2) and needs s >= 2 (its 2x2 pooling).
    if stages > 1 and math.ceil(smallest / 2 ** (stages - 2)) < 2:
        most = math.ceil(math.log2(smallest)) + 1 if smallest > 1 else 1
        return f"{stages} stages reduce a size-{smallest} input below one pixel; at most {most}"
    return None
