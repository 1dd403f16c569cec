"""The resumable trainer PBT relies on: epoch by epoch it matches ``train``, resumes from a
saved state bit for bit, takes new hyperparameters on resume, and refuses a state that does
not fit the network. No Ray runs here.
"""

from dataclasses import replace

import pytest

from models.checkpointing import ResumableTrainer, load_state, save_state
from models.data import load_dataset
from models.training.config import TrainConfig
from models.training.results import EpochMetrics
from models.training.trainer import train


def test_resumable_trainer_matches_train_and_resumes_bit_for_bit() -> None:
    digits = load_dataset("digits")
    model = {"family": "mlp", "hidden_layers": 1, "width": 32, "dropout": 0.1}
    cfg = TrainConfig(epochs=4, lr=0.05, optimizer="sgd", momentum=0.9)
    expected = [m.metrics for m in train(model, cfg, digits, 3) if isinstance(m, EpochMetrics)]

    trainer = ResumableTrainer(model, cfg, digits, 3)
    first = [trainer.run_epoch().metrics for _ in range(2)]
    saved = save_state(trainer.state())
    resumed = ResumableTrainer(model, cfg, digits, 99, state=load_state(saved))
    assert resumed.epoch == 2
    rest = [resumed.run_epoch().metrics for _ in range(2)]
    assert first + rest == expected

    # New hyperparameters take effect on resume; the momentum buffers carry over.
    faster = ResumableTrainer(model, replace(cfg, lr=0.2), digits, 3, state=load_state(saved))
    assert faster.run_epoch().metrics["lr"] == 0.2
    with pytest.raises(ValueError, match="do not fit this network"):
        ResumableTrainer({**model, "width": 16}, cfg, digits, 3, state=load_state(saved))
