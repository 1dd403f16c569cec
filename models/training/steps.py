"""The pieces of the training loop: optimizer, learning-rate schedule, augmentation, losses,
weight penalties and the reason a loss turned non-finite."""

import math
from collections.abc import Sequence
from typing import Any

import torch
from torch.nn import functional as F

from models.training.config import TrainConfig


def make_optimizer(params: Any, cfg: TrainConfig) -> torch.optim.Optimizer:
    if cfg.optimizer == "sgd":
        return torch.optim.SGD(
            params,
            lr=cfg.lr,
            momentum=cfg.momentum,
            nesterov=cfg.nesterov,
            weight_decay=cfg.weight_decay,
        )
    if cfg.optimizer == "rmsprop":
        return torch.optim.RMSprop(
            params, lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay
        )
    if cfg.optimizer == "adamw":
        return torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    return torch.optim.Adam(params, lr=cfg.lr, weight_decay=cfg.weight_decay)


class Schedule:
    """Learning rate per epoch: linear warm-up, then step, cosine or reduce-on-plateau."""

    def __init__(self, cfg: TrainConfig) -> None:
        self.cfg = cfg
        self.plateau_scale = 1.0
        self.best = math.inf
        self.bad_epochs = 0

    def lr(self, epoch: int) -> float:  # epoch counts from 0
        c = self.cfg
        if epoch < c.warmup_epochs:
            return c.lr * (epoch + 1) / (c.warmup_epochs + 1)
        e = epoch - c.warmup_epochs
        if c.schedule == "step":
            return c.lr * c.gamma ** (e // c.step_size)
        if c.schedule == "cosine":
            span = max(1, c.epochs - c.warmup_epochs)
            return c.lr * 0.5 * (1 + math.cos(math.pi * e / span))
        return c.lr * self.plateau_scale

    def observe(self, val_loss: float) -> None:
        if self.cfg.schedule != "plateau":
            return
        if val_loss < self.best:
            self.best, self.bad_epochs = val_loss, 0
            return
        self.bad_epochs += 1
        if self.bad_epochs >= self.cfg.plateau_patience:
            self.plateau_scale *= self.cfg.plateau_factor
            self.bad_epochs = 0


def shift_images(x: torch.Tensor, max_shift: int, gen: torch.Generator) -> torch.Tensor:
    """Shift each image by whole pixels in [-max_shift, max_shift], filling with zeros."""
    b, _, h, w = x.shape
    shifts = torch.randint(-max_shift, max_shift + 1, (b, 2), generator=gen).to(x.device)
    theta = torch.zeros(b, 2, 3, device=x.device)
    theta[:, 0, 0] = theta[:, 1, 1] = 1
    theta[:, 0, 2] = 2 * shifts[:, 0] / w
    theta[:, 1, 2] = 2 * shifts[:, 1] / h
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    return F.grid_sample(x, grid, mode="nearest", padding_mode="zeros", align_corners=False)


def loss_fn(name: str, delta: float) -> Any:
    return {
        "cross_entropy": F.cross_entropy,
        # BCE targets arrive as float already (converted once, not on every step).
        "bce": lambda out, y: F.binary_cross_entropy_with_logits(out.squeeze(1), y),
        "mse": F.mse_loss,
        "mae": F.l1_loss,
        "huber": lambda out, y: F.huber_loss(out, y, delta=delta),
    }[name]


def non_finite_reason(params: Sequence[torch.Tensor], epoch: int, last_step_epoch: int) -> str:
    """The reason for a non-finite loss: a non-finite gradient on the step before, or the loss."""
    grads = [p.grad for p in params if p.grad is not None]
    if grads and not all(bool(torch.isfinite(g).all()) for g in grads):
        return f"non-finite gradient at epoch {last_step_epoch}"
    return f"non-finite loss at epoch {epoch}"


def penalty(weights: Sequence[torch.Tensor], l1: float, l2: float) -> torch.Tensor | float:
    total: torch.Tensor | float = 0.0
    if l1:
        total = total + l1 * sum(w.abs().sum() for w in weights)
    if l2:
        total = total + l2 * sum(w.pow(2).sum() for w in weights)
    return total
