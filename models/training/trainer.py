"""The training loop every trial runs: per-epoch metrics out, NaN guard in, exports at the end.

``train`` is a generator: it yields, when asked, a :class:`NetworkMeasured` before training (the
network's latency), an :class:`EpochMetrics` after every epoch (learning
curves, pruning), a :class:`TrainCheckpoint` every ``checkpoint_every`` epochs, and a
:class:`TrainResult` last: the weights of the epoch that scored best on the monitored metric,
that epoch's metrics and number, and its exports (state_dict, TorchScript).
"""

import contextlib
import math
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Literal

import torch
from torch import nn

from models.data import Dataset
from models.families import build_model
from models.metrics import f1_scores
from models.training.config import TrainConfig, n_outputs, resolve_loss
from models.training.export import (
    Exported,
    State,
    final_metrics,
    fit_scaler,
    latency_ms,
    load_state,
    predict,
    save_state,
    to_cpu,
    torchscript_bytes,
    weights_bytes,
)
from models.training.results import (
    EpochMetrics,
    NetworkMeasured,
    NonFiniteLossError,
    TrainCheckpoint,
    TrainResult,
)
from models.training.steps import (
    Schedule,
    loss_fn,
    make_optimizer,
    non_finite_reason,
    penalty,
    shift_images,
)
from models.training.transfer import InitSpec, apply_init, head_names


@dataclass
class _Eval:
    loss: float
    metrics: dict[str, float]


# -- the loop ---------------------------------------------------------------------------------


class Trainer:
    """One training run, an epoch at a time: the loop behind :func:`train` and behind PBT's
    resumable members (:class:`models.checkpointing.ResumableTrainer`).

    Args:
        model_spec: ``{"family": ..., **fields}`` as checked by :func:`models.families.check_model`.
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
        init: InitSpec | None = None,
    ) -> None:
        torch.manual_seed(seed)
        self.gen = torch.Generator().manual_seed(seed)
        self.cfg, self.data, self.device = cfg, data, device
        info = data.info
        self.loss_name = resolve_loss(cfg, info)
        self.loss_fn = loss_fn(self.loss_name, cfg.huber_delta)
        self.scaler = fit_scaler(data.x_train, cfg.preprocess, info.kind).to(device)
        self.target_scaler = (
            fit_scaler(data.y_train, "standardize").to(device)
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
        groups: Any = None
        if init is not None:  # another training's weights; frozen ones stop requiring grad
            n_out = n_outputs(cfg, info)
            groups = apply_init(self.net, init, head_names(model_spec, info.input_shape, n_out))
        self.params = [p for p in self.net.parameters() if p.requires_grad]
        # Penalties skip biases and norms.
        self.weights = [p for _, p in self.net.named_parameters() if p.ndim > 1]
        self.opt = make_optimizer(groups or self.params, cfg)
        self.schedule = Schedule(cfg)
        self.amp = cfg.amp and device.startswith("cuda")
        self.epoch = 0  # epochs done
        self.last_step_epoch = 0  # the last epoch that took an optimizer step
        self.metrics: dict[str, float] = {}  # the last epoch's
        self.grad_norms: dict[str, float] = {}  # per parameter, at the last epoch's last step
        self.measured: dict[str, float] = {}  # by :meth:`measure`, before the first epoch

    def measure(self) -> NetworkMeasured:
        """Time the untrained network (no randomness drawn, no statistics updated); the result
        reports this latency instead of timing it again."""
        self.measured = {"latency_ms": latency_ms(self.net, self.x_va)}
        return NetworkMeasured(dict(self.measured))

    def _autocast(self) -> contextlib.AbstractContextManager[Any]:
        # A disabled autocast still costs its enter/exit on every step: skip it entirely.
        return torch.autocast("cuda", torch.bfloat16) if self.amp else contextlib.nullcontext()

    def _evaluate(self) -> _Eval:
        net, info = self.net, self.data.info
        net.train(False)
        with torch.no_grad(), self._autocast():
            out = predict(net, self.x_va, 4096).float()
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
            "optimizer_state": to_cpu(self.opt.state_dict()["state"]),
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

    def copy_weights(self) -> State:
        """A copy of the network's weights as they are now (CPU)."""
        return {k: v.detach().to("cpu", copy=True) for k, v in self.net.state_dict().items()}

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
        for group in opt.param_groups:  # a transferred backbone may learn at its own pace
            group["lr"] = self.schedule.lr(epoch - 1) * group.get("lr_mult", 1.0)
        net.train()
        n = len(x_tr)
        order = torch.randperm(n, generator=gen).to(device)
        total_loss = 0.0
        for start in range(0, n, cfg.batch_size):
            idx = order[start : start + cfg.batch_size]
            xb, yb = x_tr[idx], y_tr[idx]
            if cfg.augment_shift:
                xb = shift_images(xb, cfg.augment_shift, gen)
            if cfg.augment_noise:
                xb = xb + cfg.augment_noise * torch.randn(xb.shape, generator=gen).to(device)
            with self._autocast():
                loss = loss_fn(net(xb).float(), yb)
            loss_value = loss.item()
            if not math.isfinite(loss_value):
                # The previous step's gradients are still in .grad: name the true culprit.
                raise NonFiniteLossError(non_finite_reason(params, epoch, self.last_step_epoch))
            if cfg.l1 or cfg.l2:
                loss = loss + penalty(self.weights, cfg.l1, cfg.l2)
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
            "val_gap": val.loss - train_loss,  # over-fitting shows as a growing gap
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
            **final_metrics(
                *(self.net, self.x_va, self.y_va_labels, self.cfg, self.data.info),
                *(self.loss_name, self.measured.get("latency_ms")),
            ),
        }
        exported = Exported(self.scaler, self.net, self.target_scaler).train(False)
        example = torch.tensor(self.data.x_val[:2], device=self.device)
        return TrainResult(
            metrics=final,
            best_epoch=self.epoch if best_epoch is None else best_epoch,
            stopped_early=stopped_early,
            grad_norms=dict(self.grad_norms),
            state_dict=weights_bytes(exported),
            torchscript=torchscript_bytes(exported, example),
        )


def train(
    model_spec: dict[str, Any],
    cfg: TrainConfig,
    data: Dataset,
    seed: int,
    device: str = "cpu",
    monitor: tuple[str, Literal["maximize", "minimize"]] = ("val_loss", "minimize"),
    checkpoint_every: int = 0,
    resume: bytes | None = None,
    init: InitSpec | None = None,
    measure_first: bool = False,
) -> Iterator[NetworkMeasured | EpochMetrics | TrainCheckpoint | TrainResult]:
    """Train a network from its spec, yielding metrics per epoch and a result last.

    Args:
        model_spec: ``{"family": ..., **fields}`` as checked by :func:`models.families.check_model`.
        cfg: optimizer, schedule, regularization, preprocessing.
        data: raw train/validation split.
        seed: seeds weight init, batch order and augmentation: a trial is reproducible.
        device: ``"cpu"`` or a CUDA device.
        monitor: the per-epoch metric, and its direction, that picks the epoch whose weights
            are kept and exported (the result's ``best_epoch``; ties keep the earlier epoch);
            early stopping watches it too.
        checkpoint_every: yield a :class:`TrainCheckpoint` after every this many epochs
            (0: never); none after the last epoch, whose result follows at once.
        resume: a checkpoint's ``state``: continue after its epoch. With the same arguments the
            epochs after it, and the result, are exactly those of an uninterrupted run.
        init: start from another training's weights (:mod:`models.training.transfer`).
        measure_first: yield a :class:`NetworkMeasured` (the network's latency) before the
            first epoch; a consumer that stops there trains nothing.

    Raises:
        NonFiniteLossError: "non-finite loss at epoch k" (or gradient) the moment it happens.
        ValueError: ``resume`` does not fit this network.
    """
    trainer = Trainer(model_spec, cfg, data, seed, device, init)
    monitor_name, monitor_dir = monitor
    sign = 1.0 if monitor_dir == "maximize" else -1.0
    best_score, best_epoch = -math.inf, 0
    best_state: State | None = None
    best_metrics: dict[str, float] = {}
    if resume is not None:
        saved = load_state(resume)
        trainer.load(saved["trainer"])
        best_score, best_epoch = float(saved["best_score"]), int(saved["best_epoch"])
        best_metrics, best_state = dict(saved["best_metrics"]), saved["best_state"]
    if measure_first:
        yield trainer.measure()
    stopped_early = False
    while trainer.epoch < cfg.epochs:
        item = trainer.run_epoch()
        yield item
        score = sign * item.metrics[monitor_name]
        if score > best_score:
            best_score, best_epoch, best_metrics = score, item.epoch, item.metrics
            best_state = trainer.copy_weights()
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
    if best_state is None:  # resumed from a checkpoint of a release that kept no best weights
        yield trainer.result()
        return
    # The best epoch's weights are the ones exported, with that epoch's metrics.
    trainer.net.load_state_dict(best_state)
    yield trainer.result(best_metrics, best_epoch, stopped_early)
