"""DARTS (Liu et al., 2019), first order, on the NAS-Bench-201 cell: search by gradient.

:func:`darts_search` trains a :class:`models.cells.Supernet` whose every edge mixes the
candidate operations with softmax weights (alpha), shared by all cells as in NAS-Bench-201's
DARTS baseline: the weights and alpha are trained bi-level on the two halves of the training
split, and the argmax operation of each edge is the derived cell.
"""

import math
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import torch
from torch import nn
from torch.nn import functional as F

from models.cells import OPS, Supernet, derive_genotype, format_genotype, reduction_error
from models.data import Dataset
from models.fields import setting
from models.training.export import fit_scaler
from models.training.results import NonFiniteLossError


@dataclass(frozen=True)
class DartsConfig:
    """First-order DARTS on the NAS-Bench-201 cell space (the supernet and both optimizers)."""

    epochs: int = setting(10, "Search epochs.", low=1, high=10_000)
    batch_size: int = setting(64, "Mini-batch size of both halves.", low=1, high=1 << 20)
    w_lr: float = setting(0.05, "Initial SGD learning rate of the weights.", low=1e-12, high=10.0)
    w_lr_min: float = setting(
        1e-3, "Final learning rate of the cosine schedule.", low=0.0, high=10.0
    )
    w_momentum: float = setting(0.9, "SGD momentum of the weights.", low=0.0, high=0.999)
    w_weight_decay: float = setting(3e-4, "Weight decay of the weights.", low=0.0, high=10.0)
    grad_clip: float = setting(5.0, "Clip the weights' gradient norm (0: off).", low=0.0, high=1e6)
    alpha_lr: float = setting(3e-3, "Adam learning rate of alpha.", low=1e-12, high=10.0)
    alpha_weight_decay: float = setting(1e-3, "Adam weight decay of alpha.", low=0.0, high=10.0)
    channels: int = setting(8, "Supernet channels of the first stage.", low=1, high=256)
    cells_per_stage: int = setting(1, "Supernet cells in each stage.", low=1, high=8)
    stages: int = setting(3, "Supernet stages.", low=1, high=4)


@dataclass(frozen=True)
class DartsEpoch:
    """One search epoch: the supernet's metrics and the architecture it would derive now.

    ``alpha`` holds softmax probabilities: one row per edge (order of :data:`EDGES`), one
    column per candidate op (in the order of the search's ``ops``).
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
    data: Dataset,
    config: DartsConfig,
    seed: int,
    device: str = "cpu",
    ops: Sequence[str] = OPS,
) -> Iterator[DartsEpoch | DartsResult]:
    """Search the cell with first-order DARTS, yielding a :class:`DartsEpoch` per epoch and a
    :class:`DartsResult` last.

    The training split is halved (seeded): every step takes one Adam step on alpha with a batch
    of the architecture half, then one SGD step on the weights (cosine learning rate) with a
    batch of the weights half. Inputs are standardized with the training split's statistics.

    Args:
        data: an image dataset; the validation split measures the supernet after each epoch.
        config: supernet size and optimizers.
        seed: seeds the split, batch order and initialization: a search is reproducible.
        device: ``"cpu"`` or a CUDA device.
        ops: the candidate operations of every edge.

    Raises:
        ValueError: the data is not images, has too few pixels for ``config.stages``, or
            ``ops`` are not distinct names of :data:`models.cells.OPS`.
        NonFiniteLossError: "non-finite loss at epoch k"; the epoch stops at the first such
            loss, without a step on it.
    """
    start = time.perf_counter()
    info = data.info
    if info.kind != "image":
        raise ValueError(f"DARTS searches image cells; dataset {info.name!r} is {info.kind}")
    error = reduction_error(config.stages, info.input_shape)
    if error:
        raise ValueError(error)
    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    scaler = fit_scaler(data.x_train, "standardize").to(device)
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
        ops,
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
