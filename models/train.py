"""The training loop every trial runs: per-epoch metrics out, NaN guard in, exports at the end.

``train`` is a generator: it yields an :class:`EpochMetrics` after every epoch (learning
curves, pruning) and a :class:`TrainResult` last (final metrics, weights, TorchScript).
"""

import contextlib
import copy
import io
import math
import time
import warnings
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from models.builder import build_model
from models.data import Dataset, DatasetInfo
from models.knobs import FieldErrors, describe, knob, validate
from models.layers import DropConnectLinear
from models.metrics import METRICS, expected_calibration_error, f1_scores

State = dict[str, Any]

OPTIMIZERS = ("sgd", "rmsprop", "adam", "adamw")
LOSSES = ("auto", "cross_entropy", "bce", "mse", "mae", "huber")
SCHEDULES = ("none", "step", "cosine", "plateau")
PREPROCESS = ("standardize", "minmax", "none")


class NonFiniteLossError(FloatingPointError):
    """The loss or a gradient turned NaN or infinite; going on would only waste the budget."""


@dataclass(frozen=True)
class TrainConfig:
    """How to fit a network."""

    epochs: int = knob(10, "Training epochs.", low=1, high=10_000)
    batch_size: int = knob(64, "Mini-batch size.", low=1, high=1 << 20)
    optimizer: str = knob("adam", "Optimizer.", choices=OPTIMIZERS)
    lr: float = knob(1e-3, "Learning rate.", low=1e-12, high=1e12)
    momentum: float = knob(0.0, "Momentum (sgd, rmsprop).", low=0.0, high=0.999)
    nesterov: bool = knob(False, "Nesterov momentum (sgd with momentum > 0).")
    weight_decay: float = knob(
        0.0, "Weight decay of the optimizer (decoupled for adamw).", low=0.0, high=10.0
    )
    l1: float = knob(0.0, "L1 penalty on weights, added to the loss.", low=0.0, high=10.0)
    l2: float = knob(
        0.0, "L2 penalty on weights, added to the loss (with l1: elastic net).", low=0.0, high=10.0
    )
    loss: str = knob(
        "auto", "Loss; auto: cross_entropy, bce (binary) or mse (regression).", choices=LOSSES
    )
    huber_delta: float = knob(1.0, "Delta of the Huber loss.", low=1e-6, high=1e6)
    schedule: str = knob("none", "Learning-rate schedule.", choices=SCHEDULES)
    step_size: int = knob(10, "Epochs between decays (step).", low=1, high=10_000)
    gamma: float = knob(0.1, "Decay factor (step).", low=1e-6, high=1.0)
    warmup_epochs: int = knob(0, "Linear warm-up epochs before the schedule.", low=0, high=1000)
    plateau_patience: int = knob(
        3, "Epochs without improvement before a decay (plateau).", low=1, high=1000
    )
    plateau_factor: float = knob(0.5, "Decay factor (plateau).", low=1e-6, high=0.999)
    clip_norm: float = knob(0.0, "Clip the gradient norm to this (0: off).", low=0.0, high=1e6)
    clip_value: float = knob(0.0, "Clip each gradient to ±this (0: off).", low=0.0, high=1e6)
    early_stopping_patience: int = knob(
        0,
        "Stop after this many epochs without improvement and keep the best weights (0: off).",
        low=0,
        high=10_000,
    )
    preprocess: str = knob(
        "standardize", "Input scaling, fitted on the training split.", choices=PREPROCESS
    )
    augment_shift: int = knob(0, "Random image shift in pixels while training.", low=0, high=8)
    augment_noise: float = knob(
        0.0, "Std of Gaussian input noise while training.", low=0.0, high=10.0
    )
    amp: bool = knob(False, "Mixed precision (bfloat16 autocast) on a GPU; ignored on CPU.")
    mc_samples: int = knob(
        20, "Forward passes for the MC-dropout metrics.", low=2, high=500, searchable=False
    )


def training_fields() -> dict[str, dict[str, Any]]:
    return describe(TrainConfig)


def resolve_loss(cfg: TrainConfig, info: DatasetInfo) -> str:
    if cfg.loss != "auto":
        return cfg.loss
    return {"multiclass": "cross_entropy", "binary": "bce", "regression": "mse"}[info.task]


def n_outputs(cfg: TrainConfig, info: DatasetInfo) -> int:
    """Units of the network's head: one logit for BCE, one per class, one per target."""
    return 1 if resolve_loss(cfg, info) == "bce" else info.n_outputs


def check_training(values: dict[str, Any], info: DatasetInfo) -> FieldErrors:
    """Every reason a training spec cannot run on ``info``'s data, as (field, message)."""
    cfg, errors = validate(TrainConfig, values)
    if cfg is None:
        return errors
    loss = resolve_loss(cfg, info)
    if loss == "cross_entropy" and info.task == "regression":
        errors.append(("loss", "cross_entropy needs class labels; this dataset is regression"))
    if loss == "bce" and info.task != "binary":
        errors.append(("loss", f"bce needs a binary dataset; this one is {info.task}"))
    if loss in ("mse", "mae", "huber") and info.task != "regression":
        errors.append(("loss", f"{loss} needs a regression dataset; this one is {info.task}"))
    if cfg.augment_shift and info.kind != "image":
        errors.append(("augment_shift", f"shifts need image data; this dataset is {info.kind}"))
    if cfg.nesterov and not (cfg.optimizer == "sgd" and cfg.momentum > 0):
        errors.append(("nesterov", "nesterov needs optimizer sgd with momentum > 0"))
    return errors


# -- pieces of the loop -----------------------------------------------------------------------


class Standardize(nn.Module):
    """Input scaling fitted on the training split, kept as buffers so exports carry it."""

    shift: torch.Tensor
    scale: torch.Tensor

    def __init__(self, shift: torch.Tensor, scale: torch.Tensor) -> None:
        super().__init__()
        self.register_buffer("shift", shift)
        self.register_buffer("scale", scale)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.shift) / self.scale


class Exported(nn.Module):
    """What a user downloads: raw inputs in, predictions out (logits for classification,
    targets in their original units for regression)."""

    def __init__(self, pre: Standardize, net: nn.Module, post: Standardize | None) -> None:
        super().__init__()
        self.pre, self.net = pre, net
        self.post = post or nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.net(self.pre(x))
        if isinstance(self.post, Standardize):  # undo target scaling: y = out * std + mean
            out = out * self.post.scale + self.post.shift
        return out  # type: ignore[no-any-return]


def _fit_scaler(x: np.ndarray, how: str) -> Standardize:
    if how == "standardize":
        shift, scale = x.mean(axis=0), x.std(axis=0)
    elif how == "minmax":
        shift, scale = x.min(axis=0), x.max(axis=0) - x.min(axis=0)
    else:
        shift, scale = np.zeros(x.shape[1:], np.float32), np.ones(x.shape[1:], np.float32)
    scale = np.where(scale == 0, 1.0, scale)  # constant features (digits' borders)
    return Standardize(
        torch.tensor(shift, dtype=torch.float32), torch.tensor(scale, dtype=torch.float32)
    )


def _optimizer(params: Any, cfg: TrainConfig) -> torch.optim.Optimizer:
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


class _Schedule:
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


def _shift_images(x: torch.Tensor, max_shift: int, gen: torch.Generator) -> torch.Tensor:
    """Shift each image by whole pixels in [-max_shift, max_shift], filling with zeros."""
    b, _, h, w = x.shape
    shifts = torch.randint(-max_shift, max_shift + 1, (b, 2), generator=gen).to(x.device)
    theta = torch.zeros(b, 2, 3, device=x.device)
    theta[:, 0, 0] = theta[:, 1, 1] = 1
    theta[:, 0, 2] = 2 * shifts[:, 0] / w
    theta[:, 1, 2] = 2 * shifts[:, 1] / h
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    return F.grid_sample(x, grid, mode="nearest", padding_mode="zeros", align_corners=False)


def _loss_fn(name: str, delta: float) -> Any:
    return {
        "cross_entropy": F.cross_entropy,
        # BCE targets arrive as float already (converted once, not on every step).
        "bce": lambda out, y: F.binary_cross_entropy_with_logits(out.squeeze(1), y),
        "mse": F.mse_loss,
        "mae": F.l1_loss,
        "huber": lambda out, y: F.huber_loss(out, y, delta=delta),
    }[name]


def _non_finite(params: Sequence[torch.Tensor], epoch: int, last_step_epoch: int) -> str:
    """The reason for a non-finite loss: a non-finite gradient on the step before, or the loss."""
    grads = [p.grad for p in params if p.grad is not None]
    if grads and not all(bool(torch.isfinite(g).all()) for g in grads):
        return f"non-finite gradient at epoch {last_step_epoch}"
    return f"non-finite loss at epoch {epoch}"


def _penalty(weights: Sequence[torch.Tensor], l1: float, l2: float) -> torch.Tensor | float:
    total: torch.Tensor | float = 0.0
    if l1:
        total = total + l1 * sum(w.abs().sum() for w in weights)
    if l2:
        total = total + l2 * sum(w.pow(2).sum() for w in weights)
    return total


# -- results ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class EpochMetrics:
    """One point of the learning curves."""

    epoch: int
    metrics: dict[str, float]

    def as_dict(self) -> dict[str, float]:
        return {"epoch": self.epoch, **self.metrics}


@dataclass(frozen=True)
class TrainResult:
    """A finished training: the metrics of the kept weights, and the exports."""

    metrics: dict[str, float]
    best_epoch: int
    stopped_early: bool
    grad_norms: dict[str, float]
    state_dict: bytes = field(repr=False)
    torchscript: bytes = field(repr=False)
    export: dict[str, Any] = field(default_factory=dict)


@dataclass
class _Eval:
    loss: float
    metrics: dict[str, float]


def _predict(model: nn.Module, x: torch.Tensor, batch: int) -> torch.Tensor:
    return torch.cat([model(x[i : i + batch]) for i in range(0, len(x), batch)])


def _to_cpu(value: Any) -> Any:
    if isinstance(value, torch.Tensor):
        return value.detach().cpu()
    if isinstance(value, dict):
        return {k: _to_cpu(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return type(value)(_to_cpu(v) for v in value)
    return value


def save_state(state: State) -> bytes:
    """A trainer state as bytes (``torch.save``)."""
    buf = io.BytesIO()
    torch.save(state, buf)
    return buf.getvalue()


def load_state(raw: bytes) -> State:
    """A state written by :func:`save_state`; only tensors and plain values are accepted."""
    state: State = torch.load(io.BytesIO(raw), map_location="cpu", weights_only=True)
    return state


# -- the loop ---------------------------------------------------------------------------------


class Trainer:
    """One training run, an epoch at a time: the loop behind :func:`train` and behind PBT's
    resumable members (:class:`models.checkpointing.ResumableTrainer`).

    Args:
        model_spec: ``{"family": ..., **fields}`` as checked by :func:`models.builder.check_model`.
        cfg: optimizer, schedule, regularization, preprocessing.
        data: raw train/validation split.
        seed: seeds weight init, batch order and augmentation: a trial is reproducible.
        device: ``"cpu"`` or a CUDA device.
    """

    def __init__(
        self,
        model_spec: Mapping[str, Any],
        cfg: TrainConfig,
        data: Dataset,
        seed: int,
        device: str = "cpu",
    ) -> None:
        torch.manual_seed(seed)
        self.gen = torch.Generator().manual_seed(seed)
        self.cfg, self.data, self.device = cfg, data, device
        info = data.info
        self.loss_name = resolve_loss(cfg, info)
        self.loss_fn = _loss_fn(self.loss_name, cfg.huber_delta)
        self.scaler = _fit_scaler(data.x_train, cfg.preprocess).to(device)
        self.target_scaler = (
            _fit_scaler(data.y_train, "standardize").to(device)
            if info.task == "regression"
            else None
        )
        self.net = build_model(dict(model_spec), info.input_shape, n_outputs(cfg, info)).to(device)
        # torch.tensor copies: arrays read from Ray's object store are read-only views.
        self.x_tr = self.scaler(torch.tensor(data.x_train, device=device))
        self.x_va = self.scaler(torch.tensor(data.x_val, device=device))
        self.y_tr = torch.tensor(data.y_train, device=device)
        self.y_va = torch.tensor(data.y_val, device=device)
        if self.target_scaler is not None:
            self.y_tr = self.target_scaler(self.y_tr)
        self.y_va_labels = self.y_va  # class indices, for accuracy and F1
        if self.loss_name == "bce":
            self.y_tr, self.y_va = self.y_tr.float(), self.y_va.float()
        self.params = [p for p in self.net.parameters() if p.requires_grad]
        # Penalties skip biases and norms.
        self.weights = [p for _, p in self.net.named_parameters() if p.ndim > 1]
        self.opt = _optimizer(self.params, cfg)
        self.schedule = _Schedule(cfg)
        self.amp = cfg.amp and device.startswith("cuda")
        self.epoch = 0  # epochs done
        self.last_step_epoch = 0  # the last epoch that took an optimizer step
        self.metrics: dict[str, float] = {}  # the last epoch's
        self.grad_norms: dict[str, float] = {}  # per parameter, at the last epoch's last step

    def _autocast(self) -> contextlib.AbstractContextManager[Any]:
        # A disabled autocast still costs its enter/exit on every step: skip it entirely.
        return torch.autocast("cuda", torch.bfloat16) if self.amp else contextlib.nullcontext()

    def _evaluate(self) -> _Eval:
        net, info = self.net, self.data.info
        net.train(False)
        with torch.no_grad(), self._autocast():
            out = _predict(net, self.x_va, 4096).float()
        if info.task == "regression":
            assert self.target_scaler is not None
            loss = float(self.loss_fn(out, self.target_scaler(self.y_va)))
            pred = out * self.target_scaler.scale + self.target_scaler.shift  # original units
            err = pred - self.y_va
            return _Eval(
                loss,
                {"val_rmse": float(err.pow(2).mean().sqrt()), "val_mae": float(err.abs().mean())},
            )
        loss = float(self.loss_fn(out, self.y_va))
        labels = (out.squeeze(1) > 0).long() if self.loss_name == "bce" else out.argmax(dim=1)
        f1 = f1_scores(labels, self.y_va_labels, info.n_outputs)
        metrics = {
            "val_accuracy": float((labels == self.y_va_labels).float().mean()),
            "val_f1_macro": float(f1.mean()),
        }
        if info.task == "binary":
            metrics["val_f1"] = float(f1[1])
        return _Eval(loss, metrics)

    # -- state ----------------------------------------------------------------------------

    def state(self) -> State:
        """Everything the next epoch depends on, as tensors and plain values (CPU)."""
        state: State = {
            "epoch": self.epoch,
            "last_step_epoch": self.last_step_epoch,
            "model": {k: v.detach().cpu() for k, v in self.net.state_dict().items()},
            "optimizer": self.cfg.optimizer,
            "optimizer_state": _to_cpu(self.opt.state_dict()["state"]),
            "plateau": [
                self.schedule.plateau_scale,
                self.schedule.best,
                self.schedule.bad_epochs,
            ],
            "rng": self.gen.get_state(),
            "torch_rng": torch.get_rng_state(),
            "metrics": dict(self.metrics),
            "grad_norms": dict(self.grad_norms),
        }
        if self.device.startswith("cuda"):
            state["cuda_rng"] = torch.cuda.get_rng_state()
        return state

    def load(self, state: State) -> None:
        """Continue from a :meth:`state`: the next epoch is the one after it.

        Raises:
            ValueError: the saved weights do not fit this network.
        """
        try:
            self.net.load_state_dict(state["model"])
        except RuntimeError as exc:  # a changed width or depth: the weights cannot carry over
            raise ValueError(f"the saved weights do not fit this network: {exc}") from exc
        if state["optimizer"] == self.cfg.optimizer:
            # Keep the moments (momentum buffers, Adam's averages), take the new
            # hyperparameters: loading the whole state_dict would restore the old lr, momentum
            # and weight decay along with them.
            current = self.opt.state_dict()
            current["state"] = state["optimizer_state"]
            self.opt.load_state_dict(current)
        # A different optimizer starts with fresh moments: the old ones mean nothing to it.
        self.schedule.plateau_scale = float(state["plateau"][0])
        self.schedule.best = float(state["plateau"][1])
        self.schedule.bad_epochs = int(state["plateau"][2])
        self.gen.set_state(state["rng"])
        torch.set_rng_state(state["torch_rng"])
        if "cuda_rng" in state and self.device.startswith("cuda"):
            torch.cuda.set_rng_state(state["cuda_rng"])
        self.epoch = int(state["epoch"])
        self.last_step_epoch = int(state["last_step_epoch"])
        self.metrics = dict(state["metrics"])
        self.grad_norms = dict(state["grad_norms"])

    def run_epoch(self) -> EpochMetrics:
        """Train one more epoch and return its metrics.

        Raises:
            NonFiniteLossError: "non-finite loss at epoch k" (or gradient) the moment it happens.
        """
        cfg, net, params, opt, device, gen = (
            self.cfg,
            self.net,
            self.params,
            self.opt,
            self.device,
            self.gen,
        )
        loss_fn, x_tr, y_tr = self.loss_fn, self.x_tr, self.y_tr
        epoch = self.epoch + 1
        for group in opt.param_groups:
            group["lr"] = self.schedule.lr(epoch - 1)
        net.train()
        n = len(x_tr)
        order = torch.randperm(n, generator=gen).to(device)
        total_loss = 0.0
        for start in range(0, n, cfg.batch_size):
            idx = order[start : start + cfg.batch_size]
            xb, yb = x_tr[idx], y_tr[idx]
            if cfg.augment_shift:
                xb = _shift_images(xb, cfg.augment_shift, gen)
            if cfg.augment_noise:
                xb = xb + cfg.augment_noise * torch.randn(xb.shape, generator=gen).to(device)
            with self._autocast():
                loss = loss_fn(net(xb).float(), yb)
            loss_value = loss.item()
            if not math.isfinite(loss_value):
                # The previous step's gradients are still in .grad: name the true culprit.
                raise NonFiniteLossError(_non_finite(params, epoch, self.last_step_epoch))
            if cfg.l1 or cfg.l2:
                loss = loss + _penalty(self.weights, cfg.l1, cfg.l2)
            opt.zero_grad(set_to_none=True)
            loss.backward()  # type: ignore[no-untyped-call]
            if cfg.clip_norm:
                # Clipping computes the global norm anyway: check it on every step.
                norm = float(nn.utils.clip_grad_norm_(params, cfg.clip_norm))
                if not math.isfinite(norm):
                    raise NonFiniteLossError(f"non-finite gradient at epoch {epoch}")
            if cfg.clip_value:
                nn.utils.clip_grad_value_(params, cfg.clip_value)
            opt.step()
            self.last_step_epoch = epoch
            total_loss += loss_value * len(idx)
        # Without clipping, gradients are not inspected per step (a norm over every gradient
        # costs ~20% of a small model's step). A non-finite gradient still stops the trial at
        # the next step: it makes the weights, and so the next loss, non-finite.
        self.grad_norms = {
            name: float(p.grad.norm()) for name, p in net.named_parameters() if p.grad is not None
        }
        last_norm = math.sqrt(sum(v * v for v in self.grad_norms.values()))
        if not math.isfinite(last_norm):
            raise NonFiniteLossError(f"non-finite gradient at epoch {epoch}")
        val = self._evaluate()
        if not math.isfinite(val.loss):
            raise NonFiniteLossError(f"non-finite loss at epoch {epoch}")
        train_loss = total_loss / n
        self.metrics = {
            "train_loss": train_loss,
            "val_loss": val.loss,
            "gap": val.loss - train_loss,  # over-fitting shows as a growing gap
            "grad_norm": last_norm,  # global gradient norm at the epoch's last step
            "lr": opt.param_groups[0]["lr"],
            **val.metrics,
        }
        self.schedule.observe(val.loss)
        self.epoch = epoch
        return EpochMetrics(epoch, dict(self.metrics))

    def result(
        self,
        metrics: Mapping[str, float] | None = None,
        best_epoch: int | None = None,
        stopped_early: bool = False,
    ) -> TrainResult:
        """The final metrics and exports of the weights as they are now.

        Args:
            metrics: the per-epoch metrics to report (default: the last epoch's).
            best_epoch: the epoch whose weights these are (default: the last).
            stopped_early: whether early stopping ended the run.

        Moves the network to the CPU (the TorchScript export traces it there): call it last.
        """
        final = {
            **(self.metrics if metrics is None else metrics),
            **_final_metrics(
                self.net, self.x_va, self.y_va_labels, self.cfg, self.data.info, self.loss_name
            ),
        }
        exported = Exported(self.scaler, self.net, self.target_scaler).train(False)
        example = torch.tensor(self.data.x_val[:2], device=self.device)
        return TrainResult(
            metrics=final,
            best_epoch=self.epoch if best_epoch is None else best_epoch,
            stopped_early=stopped_early,
            grad_norms=dict(self.grad_norms),
            state_dict=_save_state(exported),
            torchscript=_save_torchscript(exported, example),
        )


@dataclass(frozen=True)
class TrainCheckpoint:
    """Everything :func:`train` needs to continue after ``epoch`` (``resume=state``)."""

    epoch: int
    state: bytes = field(repr=False)

    @classmethod
    def read(cls, state: bytes) -> "TrainCheckpoint":
        """A checkpoint from its ``state`` alone: the epoch is read from inside it."""
        return cls(int(load_state(state)["trainer"]["epoch"]), state)


def train(
    model_spec: dict[str, Any],
    cfg: TrainConfig,
    data: Dataset,
    seed: int,
    device: str = "cpu",
    monitor: tuple[str, Literal["maximize", "minimize"]] = ("val_loss", "minimize"),
    checkpoint_every: int = 0,
    resume: bytes | None = None,
) -> Iterator[EpochMetrics | TrainCheckpoint | TrainResult]:
    """Train a network from its spec, yielding metrics per epoch and a result last.

    Args:
        model_spec: ``{"family": ..., **fields}`` as checked by :func:`models.builder.check_model`.
        cfg: optimizer, schedule, regularization, preprocessing.
        data: raw train/validation split.
        seed: seeds weight init, batch order and augmentation: a trial is reproducible.
        device: ``"cpu"`` or a CUDA device.
        monitor: the per-epoch metric early stopping watches, and its direction.
        checkpoint_every: yield a :class:`TrainCheckpoint` after every this many epochs
            (0: never); none after the last epoch, whose result follows at once.
        resume: a checkpoint's ``state``: continue after its epoch. With the same arguments the
            epochs after it, and the result, are exactly those of an uninterrupted run.

    Raises:
        NonFiniteLossError: "non-finite loss at epoch k" (or gradient) the moment it happens.
        ValueError: ``resume`` does not fit this network.
    """
    trainer = Trainer(model_spec, cfg, data, seed, device)
    monitor_name, monitor_dir = monitor
    sign = 1.0 if monitor_dir == "maximize" else -1.0
    best_score, best_epoch = -math.inf, 0
    best_state: dict[str, Any] | None = None
    best_metrics: dict[str, float] = {}
    if resume is not None:
        saved = load_state(resume)
        trainer.load(saved["trainer"])
        best_score, best_epoch = float(saved["best_score"]), int(saved["best_epoch"])
        best_metrics, best_state = dict(saved["best_metrics"]), saved["best_state"]
    stopped_early = False
    while trainer.epoch < cfg.epochs:
        item = trainer.run_epoch()
        yield item
        score = sign * item.metrics[monitor_name]
        if score > best_score:
            best_score, best_epoch, best_metrics = score, item.epoch, item.metrics
            if cfg.early_stopping_patience:
                best_state = _to_cpu(copy.deepcopy(trainer.net.state_dict()))
        elif cfg.early_stopping_patience and item.epoch - best_epoch >= cfg.early_stopping_patience:
            stopped_early = True
            break
        if checkpoint_every and item.epoch % checkpoint_every == 0 and item.epoch < cfg.epochs:
            state = {
                "trainer": trainer.state(),
                "best_score": best_score,
                "best_epoch": best_epoch,
                "best_metrics": best_metrics,
                "best_state": best_state,
            }
            yield TrainCheckpoint(item.epoch, save_state(state))
    if best_state is None:
        yield trainer.result()
        return
    trainer.net.load_state_dict(best_state)  # early stopping keeps the best epoch's weights
    yield trainer.result(best_metrics, best_epoch, stopped_early)


def _final_metrics(
    net: nn.Module, x: torch.Tensor, y: torch.Tensor, cfg: TrainConfig, info: DatasetInfo, loss: str
) -> dict[str, float]:
    out = {"param_count": float(sum(p.numel() for p in net.parameters() if p.requires_grad))}
    net.train(False)
    with torch.no_grad():
        _predict(net, x, 4096)  # warm-up: first calls allocate
        runs = []
        for _ in range(3):
            t0 = time.perf_counter()
            _predict(net, x, 4096)
            if x.is_cuda:
                torch.cuda.synchronize()
            runs.append(time.perf_counter() - t0)
    out["latency_ms"] = 1000 * min(runs) / len(x)
    if info.task != "regression":
        out.update(_mc_dropout(net, x, y, cfg.mc_samples, loss))
    return out


def _mc_dropout(
    net: nn.Module, x: torch.Tensor, y: torch.Tensor, samples: int, loss: str
) -> dict[str, float]:
    """Predictive NLL and ECE of the MC-dropout ensemble: dropout stays on at test time while
    batch norm uses its running statistics."""
    net.train(False)
    for m in net.modules():
        if isinstance(m, nn.Dropout | nn.Dropout1d | nn.Dropout2d | DropConnectLinear):
            m.train()
    with torch.no_grad():
        probs = torch.zeros(len(x), 2 if loss == "bce" else int(y.max()) + 1, device=x.device)
        for _ in range(samples):
            out = _predict(net, x, 4096).float()
            if loss == "bce":
                p1 = torch.sigmoid(out.squeeze(1))
                p = torch.stack([1 - p1, p1], dim=1)
            else:
                p = torch.softmax(out, dim=1)
            probs[:, : p.shape[1]] += p
        probs /= samples
    net.train(False)
    nll = float(-torch.log(probs[torch.arange(len(y)), y].clamp(min=1e-12)).mean())
    return {"mc_nll": nll, "mc_ece": expected_calibration_error(probs, y)}


def _save_state(model: nn.Module) -> bytes:
    buf = io.BytesIO()
    torch.save({k: v.cpu() for k, v in model.state_dict().items()}, buf)
    return buf.getvalue()


def _save_torchscript(model: nn.Module, example: torch.Tensor) -> bytes:
    buf = io.BytesIO()
    with warnings.catch_warnings():  # TorchScript is deprecated upstream, still what users load
        warnings.simplefilter("ignore")
        # No trace check: attention's fused fast path records a different (equivalent) graph
        # on each call; tests compare the exported outputs with the eager model instead.
        with torch.no_grad():
            traced = torch.jit.trace(  # type: ignore[no-untyped-call]
                model.cpu().train(False), example.cpu(), check_trace=False
            )
        torch.jit.save(traced, buf)
    return buf.getvalue()


__all__ = [
    "METRICS",
    "EpochMetrics",
    "NonFiniteLossError",
    "State",
    "TrainCheckpoint",
    "TrainConfig",
    "TrainResult",
    "Trainer",
    "load_state",
    "save_state",
    "train",
]
