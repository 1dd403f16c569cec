"""Training on a GPU (skipped where CUDA is missing): same results, mixed precision works."""

import io
import math

import pytest
import torch

from models.data import load_dataset
from models.training.config import TrainConfig
from models.training.results import TrainResult
from models.training.trainer import train

pytestmark = pytest.mark.gpu


@pytest.mark.parametrize("amp", [False, True])
def test_cnn_trains_on_the_gpu(amp: bool) -> None:
    data = load_dataset("digits")
    events = list(
        train(
            {"family": "cnn", "stages": 3},
            TrainConfig(epochs=8, amp=amp, schedule="cosine", lr=3e-3),
            data,
            0,
            "cuda",
        )
    )
    result = events[-1]
    assert isinstance(result, TrainResult)
    assert result.metrics["val_accuracy"] > 0.95
    assert math.isfinite(result.metrics["latency_ms"])
    # The exported model is moved to the CPU: it loads anywhere.
    state = torch.load(io.BytesIO(result.state_dict), weights_only=True)
    assert all(t.device.type == "cpu" for t in state.values())
