"""Short trainings that tell a data problem from a model problem, and the learning-rate range
test. Each works on a copy of the network and stops within a fixed number of steps."""

import copy
import math
from collections.abc import Callable
from dataclasses import replace
from typing import Any

import torch
from torch import nn

from models.training.config import TrainConfig
from models.training.steps import make_optimizer

LossFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def _accuracy(out: torch.Tensor, y: torch.Tensor, loss: str) -> float:
    labels = (out.squeeze(1) > 0).long() if loss == "bce" else out.argmax(dim=1)
    return float((labels == y.long()).float().mean())


def overfit_tiny(
    net: nn.Module,
    cfg: TrainConfig,
    x: torch.Tensor,
    y: torch.Tensor,
    loss_fn: LossFn,
    loss_name: str,
    max_steps: int = 300,
    x_val: torch.Tensor | None = None,
    y_val: torch.Tensor | None = None,
) -> dict[str, Any]:
    """Train a copy of ``net`` on one small batch (``x``, ``y``) with the spec's optimizer and
    learning rate until it has memorized it (or ``max_steps``): a network that cannot fit a
    handful of samples has a model or optimization problem, whatever the data.

    Returns:
        ``samples``, ``steps``, ``loss_start``, ``loss_end``, ``loss_min``, ``train_accuracy``
        and, given ``x_val`` and ``y_val``, ``val_accuracy`` (classification: what a handful
        of samples already teaches about the others), ``diverged`` (the loss became
        non-finite or grew tenfold).
    """
    net = copy.deepcopy(net).train()
    opt = make_optimizer([p for p in net.parameters() if p.requires_grad], cfg)
    start = end = lowest = math.nan
    diverged = False
    steps = 0
    for steps in range(1, max_steps + 1):
        loss = loss_fn(net(x).float(), y)
        value = float(loss.detach())
        if steps == 1:
            start = lowest = value
        if not math.isfinite(value) or value > 10 * max(start, 1e-3):
            diverged, end = True, value
            break
        end, lowest = value, min(lowest, value)
        opt.zero_grad(set_to_none=True)
        loss.backward()  # type: ignore[no-untyped-call]
        opt.step()
        if value < 0.01:
            break
    out: dict[str, Any] = {
        "samples": len(x),
        "steps": steps,
        "loss_start": start,
        "loss_end": end,
        "loss_min": lowest,
        "diverged": diverged,
    }
    if loss_name in ("cross_entropy", "bce") and not diverged:
        net.train(False)
        with torch.no_grad():
            out["train_accuracy"] = _accuracy(net(x).float(), y, loss_name)
            if x_val is not None and y_val is not None:
                pred = torch.cat([net(x_val[i : i + 4096]) for i in range(0, len(x_val), 4096)])
                out["val_accuracy"] = _accuracy(pred.float(), y_val, loss_name)
    return out


def short_fit(
    net: nn.Module,
    cfg: TrainConfig,
    x_tr: torch.Tensor,
    y_tr: torch.Tensor,
    x_va: torch.Tensor,
    y_va: torch.Tensor,
    loss_fn: LossFn,
    loss_name: str,
    max_steps: int = 400,
    gen: torch.Generator | None = None,
) -> dict[str, Any]:
    """Train a copy of ``net`` on the whole training split for at most ``max_steps`` batches
    (at most 3 epochs), then score the validation split: whether what it learns carries over.

    Returns:
        ``steps``, ``train_loss`` (last epoch's mean), ``val_loss``, ``val_accuracy``
        (classification), ``diverged``.
    """
    net = copy.deepcopy(net).train()
    opt = make_optimizer([p for p in net.parameters() if p.requires_grad], cfg)
    n, batch = len(x_tr), min(cfg.batch_size, len(x_tr))
    steps, total, seen = 0, 0.0, 0
    diverged = False
    for _ in range(3):
        order = torch.randperm(n, generator=gen).to(x_tr.device)
        total, seen = 0.0, 0
        for begin in range(0, n, batch):
            idx = order[begin : begin + batch]
            loss = loss_fn(net(x_tr[idx]).float(), y_tr[idx])
            if not math.isfinite(float(loss.detach())):
                diverged = True
                break
            opt.zero_grad(set_to_none=True)
            loss.backward()  # type: ignore[no-untyped-call]
            opt.step()
            total, seen, steps = total + float(loss.detach()) * len(idx), seen + len(idx), steps + 1
            if steps >= max_steps:
                break
        if diverged or steps >= max_steps:
            break
    out: dict[str, Any] = {"steps": steps, "diverged": diverged}
    if diverged:
        return out
    net.train(False)
    with torch.no_grad():
        pred = torch.cat([net(x_va[i : i + 4096]) for i in range(0, len(x_va), 4096)]).float()
        out["train_loss"] = total / max(1, seen)
        out["val_loss"] = float(loss_fn(pred, y_va))
        if loss_name in ("cross_entropy", "bce"):
            out["val_accuracy"] = _accuracy(pred, y_va, loss_name)
    return out


def lr_range_test(
    net: nn.Module,
    cfg: TrainConfig,
    x: torch.Tensor,
    y: torch.Tensor,
    loss_fn: LossFn,
    low: float = 1e-6,
    high: float = 10.0,
    steps: int = 100,
    gen: torch.Generator | None = None,
) -> dict[str, Any]:
    """Leslie Smith's range test: train a copy of ``net`` with the learning rate growing
    exponentially from ``low`` to ``high``, one mini-batch per step, until the loss (smoothed)
    is four times its lowest or non-finite.

    Returns:
        ``lrs`` and ``losses`` (smoothed) per step; ``best_lr`` (lowest loss); ``diverge_lr``
        (where the loss ran away; None if it never did); ``suggested`` bounds for the
        learning rate, a decade and a half below ``best_lr`` up to a third of it.
    """
    net = copy.deepcopy(net).train()
    opt = make_optimizer(
        [p for p in net.parameters() if p.requires_grad], replace(cfg, lr=low, weight_decay=0.0)
    )
    ratio = (high / low) ** (1 / max(1, steps - 1))
    batch = min(cfg.batch_size, len(x))
    lrs: list[float] = []
    losses: list[float] = []
    smooth, best, best_lr, diverge_lr = 0.0, math.inf, low, None
    for step in range(steps):
        lr = low * ratio**step
        for group in opt.param_groups:
            group["lr"] = lr
        idx = torch.randint(0, len(x), (batch,), generator=gen).to(x.device)
        loss = loss_fn(net(x[idx]).float(), y[idx])
        value = float(loss.detach())
        if not math.isfinite(value):
            diverge_lr = lr
            break
        smooth = 0.9 * smooth + 0.1 * value
        corrected = smooth / (1 - 0.9 ** (step + 1))  # the average's start-up bias removed
        lrs.append(lr)
        losses.append(corrected)
        if corrected < best:
            best, best_lr = corrected, lr
        if step > 5 and corrected > 4 * best:
            diverge_lr = lr
            break
        opt.zero_grad(set_to_none=True)
        loss.backward()  # type: ignore[no-untyped-call]
        opt.step()
    return {
        "lrs": lrs,
        "losses": losses,
        "best_lr": best_lr,
        "diverge_lr": diverge_lr,
        "suggested": [best_lr / 30, best_lr / 3],
    }
