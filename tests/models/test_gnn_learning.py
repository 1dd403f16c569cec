"""What the graph datasets are for: message passing learns what a node alone, or one hop,
cannot tell. Each test trains real networks on generated or bundled graphs (seconds each)."""

from typing import Any

import pytest

from models.data import Dataset, load_dataset
from models.training.config import TrainConfig
from models.training.results import TrainResult
from models.training.trainer import train

pytestmark = pytest.mark.slow  # some 60 s of training in all


def accuracy(model: dict[str, Any], data: Dataset, epochs: int, **training: Any) -> float:
    *_, result = train(model, TrainConfig(epochs=epochs, lr=0.01, **training), data, seed=0)
    assert isinstance(result, TrainResult)
    return result.metrics["val_accuracy"]


def test_distances_need_more_than_one_hop() -> None:
    data = load_dataset("distances", options={"n_samples": 800})
    gin = {"family": "gnn", "layer": "gin", "readout": "sum"}
    one_hop = accuracy({**gin, "layers": 1}, data, 20, batch_size=32)
    three_hops = accuracy({**gin, "layers": 3}, data, 30, batch_size=32)
    assert one_hop < 0.65, one_hop  # a coin flip: one hop sees the same in both classes
    assert three_hops > 0.9, three_hops


@pytest.mark.parametrize("layer", ["gcn", "sage", "gat", "gin"])
def test_motifs_are_learned_by_every_layer_type(layer: str) -> None:
    data = load_dataset("motifs")
    model = {"family": "gnn", "layer": layer, "readout": "sum"}
    assert accuracy(model, data, 15, batch_size=32) > 0.85


def test_karate_club_members_are_placed_by_their_ties() -> None:
    data = load_dataset("karate")
    assert accuracy({"family": "gnn", "layers": 2}, data, 30, batch_size=8) >= 6 / 7


def test_block_model_neighbourhoods_beat_a_node_alone() -> None:
    from sklearn.linear_model import LogisticRegression

    data = load_dataset("sbm")
    m = data.info.input_shape[0]
    features = slice(2, data.info.input_shape[1] - m)  # slot 0 is the node itself
    alone = LogisticRegression(max_iter=1000).fit(data.x_train[:, 0, features], data.y_train)
    node_alone = alone.score(data.x_val[:, 0, features], data.y_val)
    model = {"family": "gnn", "layer": "gcn", "layers": 2, "width": 32, "dropout": 0.3}
    gnn = accuracy(model, data, 20, batch_size=32)
    assert gnn > node_alone + 0.1, (gnn, node_alone)
