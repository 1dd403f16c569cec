"""A training run whose state can be saved and resumed, for population-based training.

Population-based training (``search.pbt``) trains a network for a few epochs, saves it, and
later resumes it — possibly in another process, possibly as the clone of another member, and
possibly with new hyperparameters (learning rate, momentum, weight decay, dropout, ...).
:class:`ResumableTrainer` is :class:`models.training.trainer.Trainer` (the loop of
``train``, so run from scratch it computes exactly what ``train`` computes) that refuses early
stopping (PBT decides when a member ends) and can be reseeded (a clone must not replay its
parent's draws). Its :meth:`~models.training.trainer.Trainer.state` holds everything the next
epoch depends on (weights, optimizer moments, schedule, random generators); a trainer built
with ``state=`` continues bit for bit where the saved one stopped when the hyperparameters
are unchanged.
"""

from collections.abc import Mapping
from typing import Any

import torch

from models.data import Dataset
from models.training.config import TrainConfig
from models.training.export import State, load_state, save_state
from models.training.trainer import Trainer


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
            self.load(state)

    def reseed(self, seed: int) -> None:
        """Draw batch order, augmentation and dropout from ``seed`` from now on.

        A clone resumed from another member's state would otherwise replay that member's
        random draws exactly.
        """
        self.gen.manual_seed(seed)
        torch.manual_seed(seed)


__all__ = ["ResumableTrainer", "State", "load_state", "save_state"]
