"""Attention pooling (learned queries attending to the tokens): the GNN readout's and the
transformer's ``pool: attention``."""

import io
import math
import warnings

import pytest
import torch
from torch import nn

from models.data import dataset_info, load_dataset
from models.families import build_model, check_model
from models.layers import AttentionPool
from models.training.config import TrainConfig
from models.training.results import TrainResult
from models.training.trainer import train

SMALL_WAVES = {"n_samples": 120, "length": 32}


def test_one_query_one_head_is_a_softmax_weighted_mean_of_the_values() -> None:
    pool = AttentionPool(4, heads=1, queries=1)
    with torch.no_grad():
        for lin in (pool.key, pool.value, pool.out):
            nn.init.eye_(lin.weight)
            nn.init.zeros_(lin.bias)
    x = torch.randn(3, 5, 4)
    weights = torch.softmax(x @ pool.query[0] / 2.0, dim=1)  # scaled by sqrt(4)
    expected = (weights.unsqueeze(-1) * x).sum(1)
    assert torch.allclose(pool(x), expected, atol=1e-6)


@pytest.mark.parametrize(("heads", "queries"), [(1, 1), (2, 3)])
def test_masked_tokens_change_nothing(heads: int, queries: int) -> None:
    torch.manual_seed(0)
    pool = AttentionPool(8, heads, queries)
    x = torch.randn(2, 6, 8)
    mask = torch.tensor([[1, 1, 1, 0, 0, 0], [1, 1, 1, 1, 1, 0]], dtype=torch.float32)
    noisy = x.clone()
    noisy[mask == 0] = 100.0
    out = pool(x, mask)
    assert out.shape == (2, 8)
    assert torch.allclose(out, pool(noisy, mask), atol=1e-6)
    assert torch.allclose(out[0], pool(x[:1, :3]), atol=1e-6)  # as if the padding were absent
    assert torch.isfinite(pool(x, torch.zeros(2, 6))).all()  # no token at all: zeros, not NaN


def test_heads_must_divide_the_width() -> None:
    with pytest.raises(ValueError, match="3 heads do not divide 8 features"):
        AttentionPool(8, heads=3)


def test_transformer_attention_pool_trains_and_exports() -> None:
    model = {"family": "transformer", "pool": "attention", "queries": 2, "d_model": 16}
    info = dataset_info("waveforms", SMALL_WAVES)
    assert check_model(model, info) == []
    net = build_model(model, info.input_shape, info.n_outputs)
    assert any(isinstance(m, AttentionPool) for m in net.modules())
    net(torch.randn(4, *info.input_shape)).square().mean().backward()
    missing = [n for n, p in net.named_parameters() if p.grad is None]
    assert missing == [], missing
    data = load_dataset("waveforms", options=SMALL_WAVES)
    *_, result = train(model, TrainConfig(epochs=2), data, seed=0)
    assert isinstance(result, TrainResult) and math.isfinite(result.metrics["val_loss"])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        scripted = torch.jit.load(io.BytesIO(result.torchscript))
    with torch.no_grad():
        labels = scripted(torch.tensor(data.x_val)).argmax(1).numpy()
    assert float((labels == data.y_val).mean()) == pytest.approx(
        result.metrics["val_accuracy"], abs=1e-6
    )


def test_transformer_attention_pool_checks_its_heads() -> None:
    model = {"family": "transformer", "pool": "attention", "d_model": 12, "heads": 5}
    assert check_model(model, dataset_info("iris")) == [
        ("heads", "5 heads do not divide d_model=12")
    ]
