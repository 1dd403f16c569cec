"""A training asked to measure its network first times it before the first epoch: the run that
follows is exactly the unmeasured one, and its result reports that same latency."""

from models.data import load_dataset
from models.training.config import TrainConfig
from models.training.results import EpochMetrics, NetworkMeasured, TrainResult
from models.training.trainer import train

MODEL = {"family": "mlp", "width": 32, "hidden_layers": 1, "dropout": 0.2}
CFG = TrainConfig(epochs=4, lr=0.01)


def test_the_latency_comes_first_and_changes_nothing_of_the_run() -> None:
    data = load_dataset("iris")
    measured, *rest = list(train(MODEL, CFG, data, seed=3, measure_first=True))
    plain = list(train(MODEL, CFG, data, seed=3))
    assert isinstance(measured, NetworkMeasured)
    assert set(measured.metrics) == {"latency_ms"} and measured.metrics["latency_ms"] > 0
    epochs = [item for item in rest if isinstance(item, EpochMetrics)]
    assert epochs == [item for item in plain if isinstance(item, EpochMetrics)]
    assert len(epochs) == CFG.epochs
    result, unmeasured = rest[-1], plain[-1]
    assert isinstance(result, TrainResult) and isinstance(unmeasured, TrainResult)
    assert result.state_dict == unmeasured.state_dict  # the same weights, bit for bit
    assert result.metrics["latency_ms"] == measured.metrics["latency_ms"]  # not timed again
    same = {k: v for k, v in result.metrics.items() if k != "latency_ms"}
    assert same == {k: v for k, v in unmeasured.metrics.items() if k != "latency_ms"}
