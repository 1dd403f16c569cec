"""How a network is trained: the training config, its checks against a dataset, the loss."""

from dataclasses import dataclass
from typing import Any

from models.data import DatasetInfo
from models.fields import FieldErrors, check, describe, setting

OPTIMIZERS = ("sgd", "rmsprop", "adam", "adamw")
LOSSES = ("auto", "cross_entropy", "bce", "mse", "mae", "huber")
SCHEDULES = ("none", "step", "cosine", "plateau")
PREPROCESS = ("standardize", "minmax", "none")


@dataclass(frozen=True)
class TrainConfig:
    """How to fit a network."""

    epochs: int = setting(10, "Training epochs.", low=1, high=10_000)
    batch_size: int = setting(64, "Mini-batch size.", low=1, high=1 << 20)
    optimizer: str = setting("adam", "Optimizer.", choices=OPTIMIZERS)
    lr: float = setting(1e-3, "Learning rate.", low=1e-12, high=1e12)
    momentum: float = setting(0.0, "Momentum (sgd, rmsprop).", low=0.0, high=0.999)
    nesterov: bool = setting(False, "Nesterov momentum (sgd with momentum > 0).")
    weight_decay: float = setting(
        0.0, "Weight decay of the optimizer (decoupled for adamw).", low=0.0, high=10.0
    )
    l1: float = setting(0.0, "L1 penalty on weights, added to the loss.", low=0.0, high=10.0)
    l2: float = setting(
        0.0, "L2 penalty on weights, added to the loss (with l1: elastic net).", low=0.0, high=10.0
    )
    loss: str = setting(
        "auto", "Loss; auto: cross_entropy, bce (binary) or mse (regression).", choices=LOSSES
    )
    huber_delta: float = setting(1.0, "Delta of the Huber loss.", low=1e-6, high=1e6)
    schedule: str = setting("none", "Learning-rate schedule.", choices=SCHEDULES)
    step_size: int = setting(10, "Epochs between decays (step).", low=1, high=10_000)
    gamma: float = setting(0.1, "Decay factor (step).", low=1e-6, high=1.0)
    warmup_epochs: int = setting(0, "Linear warm-up epochs before the schedule.", low=0, high=1000)
    plateau_patience: int = setting(
        3, "Epochs without improvement before a decay (plateau).", low=1, high=1000
    )
    plateau_factor: float = setting(0.5, "Decay factor (plateau).", low=1e-6, high=0.999)
    clip_norm: float = setting(0.0, "Clip the gradient norm to this (0: off).", low=0.0, high=1e6)
    clip_value: float = setting(0.0, "Clip each gradient to ±this (0: off).", low=0.0, high=1e6)
    early_stopping_patience: int = setting(
        0,
        "Stop after this many epochs without improvement (0: off); either way the best "
        "epoch's weights are the ones kept.",
        low=0,
        high=10_000,
    )
    preprocess: str = setting(
        "standardize", "Input scaling, fitted on the training split.", choices=PREPROCESS
    )
    augment_shift: int = setting(0, "Random image shift in pixels while training.", low=0, high=8)
    augment_noise: float = setting(
        0.0, "Std of Gaussian input noise while training.", low=0.0, high=10.0
    )
    amp: bool = setting(False, "Mixed precision (bfloat16 autocast) on a GPU; ignored on CPU.")
    mc_samples: int = setting(
        20, "Forward passes for the MC-dropout metrics.", low=2, high=500, searchable=False
    )


def training_fields() -> dict[str, dict[str, Any]]:
    return describe(TrainConfig)


def loss_for(loss: str, task: str) -> str:
    """The loss a training config's ``loss`` names on a ``task`` dataset (``auto``: by task)."""
    if loss != "auto":
        return loss
    return {"multiclass": "cross_entropy", "binary": "bce", "regression": "mse"}[task]


def resolve_loss(cfg: TrainConfig, info: DatasetInfo) -> str:
    return loss_for(cfg.loss, info.task)


def n_outputs(cfg: TrainConfig, info: DatasetInfo) -> int:
    """Units of the network's head: one logit for BCE, one per class, one per target."""
    return 1 if resolve_loss(cfg, info) == "bce" else info.n_outputs


def check_training(values: dict[str, Any], info: DatasetInfo) -> FieldErrors:
    """Every reason a training spec cannot run on ``info``'s data, as (field, message)."""
    cfg, errors = check(TrainConfig, values)
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
    if cfg.augment_noise and info.kind == "graph":  # noise would blur the edges and padding
        errors.append(("augment_noise", "noise cannot be added to graphs' edges and padding"))
    if cfg.nesterov and not (cfg.optimizer == "sgd" and cfg.momentum > 0):
        errors.append(("nesterov", "nesterov needs optimizer sgd with momentum > 0"))
    return errors
