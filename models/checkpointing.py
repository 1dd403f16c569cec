"""The training loop of :func:`models.train.train`, one epoch at a time, with a resumable state.

Population-based training (``search.pbt``) trains a network for a few epochs, saves it, and
later resumes it — possibly in another process, possibly as the clone of another member, and
possibly with new hyperparameters (learning rate, momentum, weight decay, dropout, ...).
:class:`ResumableTrainer` is that loop: run from scratch, it computes exactly what ``train``
computes (same seed, same numbers); :meth:`ResumableTrainer.state` captures everything the
next epoch depends on (weights, optimizer moments, schedule, random generators), and a trainer
built with ``state=`` continues bit for bit where the saved one stopped when the
hyperparameters are unchanged.

``train`` itself stays untouched: other code and a benchmark rely on it being exactly as it is.
"""

import contextlib
import io
import math
from collections.abc import Mapping
from typing import Any

import torch
from torch import nn

from models.builder import build_model
from models.data import Dataset
from models.metrics import f1_scores
from models.train import (
    EpochMetrics,
    Exported,
    NonFiniteLossError,
    TrainConfig,
    TrainResult,
    _Eval,
    _final_metrics,
    _fit_scaler,
    _loss_fn,
    _non_finite,
    _optimizer,
    _penalty,
    _predict,
    _save_state,
    _save_torchscript,
    _Schedule,
    _shift_images,
    n_outputs,
    resolve_loss,
)

State = dict[str, Any]


class ResumableTrainer:
    """Trains a network epoch by epoch; its state can be saved and resumed.

    Args:
        model_spec: ``{"family": ..., **fields}``.
        cfg: the hyperparameters of the epochs to come. When resuming, they may differ from
            the ones that produced ``state`` (that is what PBT's explore step does) as long as
            the network keeps its shape: the weights load strictly.
        data: raw train/validation split.
        seed: seeds weight init, batch order and augmentation, as in ``train``.
        device: ``"cpu"`` or a CUDA device.
        state: a :meth:`state` to resume from (``None``: start from scratch).

    Raises:
        ValueError: ``cfg`` asks for early stopping, which a resumable run does not do (the
            caller decides when a run ends), or ``state`` does not fit the network.
    """

    def __init__(
        self,
        model_spec: Mapping[str, Any],
        cfg: TrainConfig,
        data: Dataset,
        seed: int,
        device: str = "cpu",
        state: State | None = None,
    ) -> None:
        if cfg.early_stopping_patience:
            raise ValueError("a resumable training does not stop early: set patience to 0")
        # The same calls in the same order as `train`, so a fresh run draws the same numbers.
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
        self.last_step_epoch = 0
        self.metrics: dict[str, float] = {}
        self.grad_norms: dict[str, float] = {}
        if state is not None:
            self._load(state)

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

    def _load(self, state: State) -> None:
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

    def reseed(self, seed: int) -> None:
        """Draw batch order, augmentation and dropout from ``seed`` from now on.

        A clone resumed from another member's state would otherwise replay that member's
        random draws exactly.
        """
        self.gen.manual_seed(seed)
        torch.manual_seed(seed)

    # -- training -------------------------------------------------------------------------

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

    def run_epoch(self) -> EpochMetrics:
        """Train one more epoch and return its metrics.

        Raises:
            NonFiniteLossError: the loss or a gradient turned NaN or infinite.
        """
        cfg, net, params = self.cfg, self.net, self.params
        epoch = self.epoch + 1
        for group in self.opt.param_groups:
            group["lr"] = self.schedule.lr(epoch - 1)
        net.train()
        n = len(self.x_tr)
        order = torch.randperm(n, generator=self.gen).to(self.device)
        total_loss = 0.0
        for start in range(0, n, cfg.batch_size):
            idx = order[start : start + cfg.batch_size]
            xb, yb = self.x_tr[idx], self.y_tr[idx]
            if cfg.augment_shift:
                xb = _shift_images(xb, cfg.augment_shift, self.gen)
            if cfg.augment_noise:
                xb = xb + cfg.augment_noise * torch.randn(xb.shape, generator=self.gen).to(
                    self.device
                )
            with self._autocast():
                loss = self.loss_fn(net(xb).float(), yb)
            loss_value = loss.item()
            if not math.isfinite(loss_value):
                raise NonFiniteLossError(_non_finite(params, epoch, self.last_step_epoch))
            if cfg.l1 or cfg.l2:
                loss = loss + _penalty(self.weights, cfg.l1, cfg.l2)
            self.opt.zero_grad(set_to_none=True)
            loss.backward()  # type: ignore[no-untyped-call]
            if cfg.clip_norm:
                norm = float(nn.utils.clip_grad_norm_(params, cfg.clip_norm))
                if not math.isfinite(norm):
                    raise NonFiniteLossError(f"non-finite gradient at epoch {epoch}")
            if cfg.clip_value:
                nn.utils.clip_grad_value_(params, cfg.clip_value)
            self.opt.step()
            self.last_step_epoch = epoch
            total_loss += loss_value * len(idx)
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
            "gap": val.loss - train_loss,
            "grad_norm": last_norm,
            "lr": self.opt.param_groups[0]["lr"],
            **val.metrics,
        }
        self.schedule.observe(val.loss)
        self.epoch = epoch
        return EpochMetrics(epoch, dict(self.metrics))

    def result(self) -> TrainResult:
        """The final metrics and exports of the weights as they are now.

        Moves the network to the CPU (the TorchScript export traces it there): call it last.
        """
        final = {
            **self.metrics,
            **_final_metrics(
                self.net, self.x_va, self.y_va_labels, self.cfg, self.data.info, self.loss_name
            ),
        }
        exported = Exported(self.scaler, self.net, self.target_scaler).train(False)
        example = torch.tensor(self.data.x_val[:2], device=self.device)
        return TrainResult(
            metrics=final,
            best_epoch=self.epoch,
            stopped_early=False,
            grad_norms=dict(self.grad_norms),
            state_dict=_save_state(exported),
            torchscript=_save_torchscript(exported, example),
        )


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


__all__ = ["ResumableTrainer", "State", "load_state", "save_state"]
