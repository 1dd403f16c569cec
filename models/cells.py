"""A NAS-Bench-201 cell search space for images, its network family, and DARTS search on it.

The cell (Dong & Yang, 2020) is a DAG of 4 nodes: node 0 is the cell's input, node 3 its
output, and each node j is the sum of one operation per earlier node i, on the edge (j, i).
A genotype names the 6 operations; NAS-Bench-201 writes it as
``|conv3x3~0|+|none~0|skip~1|+|avgpool3x3~0|conv1x1~1|conv3x3~2|``: group j lists the ops
from nodes 0..j-1.

The ``nb201`` family stacks cells in NAS-Bench-201's skeleton: a conv stem, ``stages``
stages of ``cells_per_stage`` cells, a stride-2 residual block doubling the channels between
stages, then BN → ReLU → global average pool → linear. :class:`Supernet` is the same skeleton
with every edge a softmax-weighted mix of all operations, and :func:`darts_search` trains it
with first-order DARTS (Liu et al., 2019), the architecture weights shared by all cells as in
NAS-Bench-201's DARTS baseline.
"""

import functools
import math
import operator
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass

import torch
from torch import nn
from torch.nn import functional as F

from models.data import Dataset
from models.knobs import FieldErrors, knob
from models.layers import list_inits

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


# -- the family -------------------------------------------------------------------------------

DEFAULT_GENOTYPE = "|conv3x3~0|+|conv3x3~0|conv3x3~1|+|skip~0|conv3x3~1|conv3x3~2|"
_EDGE_DOC = "Op of edge {} (from node {} to node {}), overriding the genotype's."


@dataclass(frozen=True)
class CellConfig:
    """NAS-Bench-201 network: one cell (4 nodes, 6 edges) stacked in stages. Stage s has
    ``channels * 2**s`` channels; a stride-2 residual block halves the size between stages.
    """

    genotype: str = knob(
        DEFAULT_GENOTYPE, "The cell in NAS-Bench-201 notation: |op~0|+|op~0|op~1|+|...|."
    )
    channels: int = knob(16, "Channels of the first stage.", low=4, high=256)
    cells_per_stage: int = knob(2, "Cells in each stage.", low=1, high=8)
    stages: int = knob(3, "Stages (a reduction halves the size between them).", low=1, high=4)
    edge_1_0: str | None = knob(None, _EDGE_DOC.format("1_0", 0, 1), choices=OPS)
    edge_2_0: str | None = knob(None, _EDGE_DOC.format("2_0", 0, 2), choices=OPS)
    edge_2_1: str | None = knob(None, _EDGE_DOC.format("2_1", 1, 2), choices=OPS)
    edge_3_0: str | None = knob(None, _EDGE_DOC.format("3_0", 0, 3), choices=OPS)
    edge_3_1: str | None = knob(None, _EDGE_DOC.format("3_1", 1, 3), choices=OPS)
    edge_3_2: str | None = knob(None, _EDGE_DOC.format("3_2", 2, 3), choices=OPS)
    init: str = knob("default", "Weight initialization.", choices=list_inits)

    def cell_genotype(self) -> Genotype:
        """The genotype with the edge fields that are set replacing its ops.

        Raises:
            ValueError: ``genotype`` does not parse.
        """
        base = parse_genotype(self.genotype)
        return Genotype(
            tuple(getattr(self, edge_name(e)) or op for e, op in zip(EDGES, base.ops, strict=True))
        )


def build_cell_network(cfg: CellConfig, input_shape: tuple[int, ...], n_out: int) -> CellNetwork:
    """The ``nb201`` network of a (checked) config."""
    return CellNetwork(
        cfg.cell_genotype(), input_shape, n_out, cfg.channels, cfg.cells_per_stage, cfg.stages
    )


def _reduction_error(stages: int, input_shape: tuple[int, ...]) -> str | None:
    """Why ``stages - 1`` reductions cannot shrink an image of ``input_shape``, or None."""
    smallest = min(input_shape[1:])
    # Each reduction maps size s to ceil(s / 2) and needs s >= 2 (its 2x2 pooling).
    if stages > 1 and math.ceil(smallest / 2 ** (stages - 2)) < 2:
        most = math.ceil(math.log2(smallest)) + 1 if smallest > 1 else 1
        return f"{stages} stages reduce a size-{smallest} input below one pixel; at most {most}"
    return None


def cell_errors(cfg: CellConfig, input_shape: tuple[int, ...]) -> FieldErrors:
    """Why an ``nb201`` config cannot build a useful network for images of ``input_shape``:
    a genotype that does not parse, a cell (after the edge overrides) with no path from input
    to output, or more stages than the input size allows."""
    try:
        genotype = cfg.cell_genotype()
    except ValueError as exc:
        return [("genotype", str(exc))]
    if not has_path(genotype):
        return [
            (
                "genotype",
                f"the cell {format_genotype(genotype)} has no path from input to output: "
                "every path crosses a 'none' edge",
            )
        ]
    error = _reduction_error(cfg.stages, input_shape)
    return [("stages", error)] if error else []


# -- DARTS ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class DartsConfig:
    """First-order DARTS on the NAS-Bench-201 cell space (the supernet and both optimizers)."""

    epochs: int = knob(10, "Search epochs.", low=1, high=10_000)
    batch_size: int = knob(64, "Mini-batch size of both halves.", low=1, high=1 << 20)
    w_lr: float = knob(0.05, "Initial SGD learning rate of the weights.", low=1e-12, high=10.0)
    w_lr_min: float = knob(1e-3, "Final learning rate of the cosine schedule.", low=0.0, high=10.0)
    w_momentum: float = knob(0.9, "SGD momentum of the weights.", low=0.0, high=0.999)
    w_weight_decay: float = knob(3e-4, "Weight decay of the weights.", low=0.0, high=10.0)
    grad_clip: float = knob(5.0, "Clip the weights' gradient norm (0: off).", low=0.0, high=1e6)
    alpha_lr: float = knob(3e-3, "Adam learning rate of alpha.", low=1e-12, high=10.0)
    alpha_weight_decay: float = knob(1e-3, "Adam weight decay of alpha.", low=0.0, high=10.0)
    channels: int = knob(8, "Supernet channels of the first stage.", low=1, high=256)
    cells_per_stage: int = knob(1, "Supernet cells in each stage.", low=1, high=8)
    stages: int = knob(3, "Supernet stages.", low=1, high=4)
    ops: list[str] = knob(list(OPS), "Candidate ops of every edge.", choices=OPS)


@dataclass(frozen=True)
class DartsEpoch:
    """One search epoch: the supernet's metrics and the architecture it would derive now.

    ``alpha`` holds softmax probabilities: one row per edge (order of :data:`EDGES`), one
    column per candidate op (order of :attr:`DartsConfig.ops`).
    """

    epoch: int
    metrics: dict[str, float]
    genotype: str
    alpha: list[list[float]]


@dataclass(frozen=True)
class DartsResult:
    """A finished search: the derived genotype, the final alpha probabilities, the time taken."""

    genotype: str
    alpha: list[list[float]]
    search_seconds: float


def _batches(n: int, batch_size: int, gen: torch.Generator) -> list[torch.Tensor]:
    """A shuffled split of ``range(n)`` into mini-batches of indices."""
    order = torch.randperm(n, generator=gen)
    return [order[i : i + batch_size] for i in range(0, n, batch_size)]


def _probabilities(net: Supernet) -> list[list[float]]:
    return F.softmax(net.alpha.detach(), dim=-1).cpu().tolist()  # type: ignore[no-any-return]


def darts_search(
    data: Dataset, config: DartsConfig, seed: int, device: str = "cpu"
) -> Iterator[DartsEpoch | DartsResult]:
    """Search the cell with first-order DARTS, yielding a :class:`DartsEpoch` per epoch and a
    :class:`DartsResult` last.

    The training split is halved (seeded): every step takes one Adam step on alpha with a batch
    of the architecture half, then one SGD step on the weights (cosine learning rate) with a
    batch of the weights half. Inputs are standardized with the training split's statistics.

    Args:
        data: an image dataset; the validation split measures the supernet after each epoch.
        config: supernet size, optimizers, candidate ops.
        seed: seeds the split, batch order and initialization: a search is reproducible.
        device: ``"cpu"`` or a CUDA device.

    Raises:
        ValueError: the data is not images, or has too few pixels for ``config.stages``.
        NonFiniteLossError: "non-finite loss at epoch k"; the epoch stops at the first such
            loss, without a step on it.
    """
    # models.train imports models.builder, which imports this module: import it late.
    from models.train import NonFiniteLossError, _fit_scaler

    start = time.perf_counter()
    info = data.info
    if info.kind != "image":
        raise ValueError(f"DARTS searches image cells; dataset {info.name!r} is {info.kind}")
    error = _reduction_error(config.stages, info.input_shape)
    if error:
        raise ValueError(error)
    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    scaler = _fit_scaler(data.x_train, "standardize").to(device)
    x_tr = scaler(torch.tensor(data.x_train, device=device))
    y_tr = torch.tensor(data.y_train, device=device)
    x_va = scaler(torch.tensor(data.x_val, device=device))
    y_va = torch.tensor(data.y_val, device=device)
    order = torch.randperm(len(x_tr), generator=gen).to(device)
    halves = (order[: len(order) // 2], order[len(order) // 2 :])  # weights, architecture
    net = Supernet(
        info.input_shape,
        info.n_outputs,
        config.channels,
        config.cells_per_stage,
        config.stages,
        config.ops,
    ).to(device)
    w_opt, a_opt = _optimizers(net, config)
    for epoch in range(1, config.epochs + 1):
        for group in w_opt.param_groups:
            group["lr"] = _cosine(config, epoch - 1)
        train_loss = _search_epoch(net, (w_opt, a_opt), x_tr, y_tr, halves, config, gen)
        val_loss, val_accuracy = _evaluate(net, x_va, y_va)
        if not (math.isfinite(train_loss) and math.isfinite(val_loss)):
            raise NonFiniteLossError(f"non-finite loss at epoch {epoch}")
        metrics = {"val_accuracy": val_accuracy, "val_loss": val_loss, "train_loss": train_loss}
        genotype = format_genotype(derive_genotype(net.alpha, net.ops))
        yield DartsEpoch(epoch, metrics, genotype, _probabilities(net))
    genotype = format_genotype(derive_genotype(net.alpha, net.ops))
    yield DartsResult(genotype, _probabilities(net), time.perf_counter() - start)


def _optimizers(net: Supernet, config: DartsConfig) -> tuple[torch.optim.SGD, torch.optim.Adam]:
    """SGD with momentum for the weights, Adam (betas 0.5, 0.999 as DARTS) for alpha."""
    w_opt = torch.optim.SGD(
        net.weight_parameters(),
        lr=config.w_lr,
        momentum=config.w_momentum,
        weight_decay=config.w_weight_decay,
    )
    a_opt = torch.optim.Adam(
        net.arch_parameters(),
        lr=config.alpha_lr,
        betas=(0.5, 0.999),
        weight_decay=config.alpha_weight_decay,
    )
    return w_opt, a_opt


def _search_epoch(
    net: Supernet,
    opts: tuple[torch.optim.Optimizer, torch.optim.Optimizer],
    x: torch.Tensor,
    y: torch.Tensor,
    halves: tuple[torch.Tensor, torch.Tensor],
    config: DartsConfig,
    gen: torch.Generator,
) -> float:
    """One epoch of alternating steps: alpha on an architecture batch, then the weights on a
    weights batch (first-order DARTS).

    Returns:
        The mean loss of the weights steps, or NaN at the first loss that is not finite (no
        step is taken on it).
    """
    (w_opt, a_opt), (w_idx, a_idx) = opts, halves
    net.train()
    total, count = 0.0, 0
    w_batches = _batches(len(w_idx), config.batch_size, gen)
    a_batches = _batches(len(a_idx), config.batch_size, gen)
    for w_b, a_b in zip(w_batches, a_batches, strict=False):
        weights_batch = w_idx[w_b.to(w_idx.device)]
        phases = (
            (a_opt, a_idx[a_b.to(a_idx.device)], 0.0),
            (w_opt, weights_batch, config.grad_clip),
        )
        for opt, idx, clip in phases:
            loss = F.cross_entropy(net(x[idx]), y[idx])
            value = loss.item()
            if not math.isfinite(value):
                return math.nan
            _step(opt, loss, clip)
        total, count = total + value * len(weights_batch), count + len(weights_batch)
    return total / count


def _cosine(config: DartsConfig, epoch: int) -> float:
    """The weights' learning rate in ``epoch`` (from 0): cosine from w_lr to w_lr_min."""
    progress = epoch / config.epochs
    return config.w_lr_min + 0.5 * (config.w_lr - config.w_lr_min) * (
        1 + math.cos(math.pi * progress)
    )


def _step(opt: torch.optim.Optimizer, loss: torch.Tensor, clip: float) -> None:
    """One step of ``opt`` on ``loss``, its gradient norm clipped to ``clip`` (0: off).

    The backward pass also fills the gradients of the other optimizer's parameters; each
    optimizer clears its own before its backward pass, so those never leak into a step.
    """
    opt.zero_grad(set_to_none=True)
    loss.backward()  # type: ignore[no-untyped-call]
    if clip:
        params = [p for group in opt.param_groups for p in group["params"]]
        nn.utils.clip_grad_norm_(params, clip)
    opt.step()


def _evaluate(net: nn.Module, x: torch.Tensor, y: torch.Tensor) -> tuple[float, float]:
    """Validation loss and accuracy of ``net`` (batch norm on its running statistics)."""
    net.train(False)
    with torch.no_grad():
        out = torch.cat([net(x[i : i + 1024]) for i in range(0, len(x), 1024)])
    return float(F.cross_entropy(out, y)), float((out.argmax(dim=1) == y).float().mean())
