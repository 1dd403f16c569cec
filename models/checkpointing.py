"""A training run whose state can be saved and resumed, for population-based training.

Population-based training (``search.pbt``) trains a network for a few epochs, saves it, and
later resumes it — possibly in another process, possibly as the clone of another member, and
possibly with new hyperparameters (learning rate, momentum, weight decay, dropout, ...).
:class:`ResumableTrainer` is :class:`models.train.Trainer` (the loop of ``train``, so run from
scratch it computes exactly what ``train`` computes) plus :meth:`ResumableTrainer.state`:
everything the next epoch depends on (weights, optimizer moments, schedule, random
generators). A trainer built with ``state=`` continues bit for bit where the saved one stopped
when the hyperparameters are unchanged.
"""

import io
from collections.abc import Mapping
from typing import Any

import torch

from models.data import Dataset
from models.train import TrainConfig, Trainer

State = dict[str, Any]


class ResumableTrainer(Trainer):
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
        super().__init__(model_spec, cfg, data, seed, device)
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
