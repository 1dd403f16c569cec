"""The ``gnn`` family and the graph data: layout, message passing, readouts, checks, export.

Every layer type, norm and readout builds, runs forward and backward, and trains an epoch on a
small generated motif set; the network's output does not depend on how much padding a graph
has or on the order of its nodes; the layers compute what their papers say on a graph small
enough to check by hand.
"""

import io
import math
import warnings
from typing import Any

import numpy as np
import pytest
import torch

from models.data import Dataset, dataset_info, load_dataset
from models.families import build_model, check_model
from models.graph_data import (
    FIRST_FEATURE,
    MASK,
    TARGET,
    Graph,
    feature_scaling,
    motifs,
    node_samples,
    pack,
)
from models.graph_layers import LAYERS, NORMS, READOUTS, GCNLayer, GINLayer, split
from models.training.config import TrainConfig, check_training
from models.training.export import fit_scaler
from models.training.results import EpochMetrics, TrainResult
from models.training.trainer import train

SMALL_MOTIFS = {"n_samples": 60}
# A path 0-1-2 and a triangle 0-1-2 plus a pendant 3: two small graphs, features 1-D.
PATH = Graph(np.array([[1.0], [2.0], [3.0]], np.float32), np.array([[0, 1], [1, 2]]))
TRIANGLE = Graph(
    np.array([[1.0], [0.0], [-1.0], [2.0]], np.float32), np.array([[0, 1], [1, 2], [2, 0], [2, 3]])
)


def run(model: dict[str, Any], data: Dataset, **training: Any) -> list[Any]:
    return list(train(model, TrainConfig(**{"epochs": 1, **training}), data, seed=0))


def graph_batch(max_nodes: int) -> torch.Tensor:
    return torch.tensor(pack([PATH, TRIANGLE], max_nodes))


def test_pack_lays_out_mask_target_features_and_a_symmetric_adjacency() -> None:
    x = pack([PATH, Graph(PATH.features, PATH.edges, target=2)], 5)
    assert x.shape == (2, 5, FIRST_FEATURE + 1 + 5) and x.dtype == np.float32
    assert x[0, :, MASK].tolist() == [1, 1, 1, 0, 0]
    assert x[0, :, TARGET].tolist() == [0, 0, 0, 0, 0]
    assert x[1, :, TARGET].tolist() == [0, 0, 1, 0, 0]
    assert x[0, :3, FIRST_FEATURE].tolist() == [1, 2, 3]
    adj = x[0, :, FIRST_FEATURE + 1 :]
    assert np.array_equal(adj, adj.T)
    assert adj.sum() == 4 and adj[0, 1] == adj[1, 2] == 1 and adj[0, 2] == 0


def test_pack_refuses_graphs_that_do_not_fit() -> None:
    with pytest.raises(ValueError, match="graph 0 has 4 nodes; at most 3 fit"):
        pack([TRIANGLE], 3)
    with pytest.raises(ValueError, match="graph 0 has an edge to a node it does not have"):
        pack([Graph(PATH.features, np.array([[0, 7]]))], 8)


def test_scaling_touches_only_the_features_of_real_nodes() -> None:
    x = pack([PATH, TRIANGLE], 6)
    shift, scale = feature_scaling(x, "standardize")
    real = np.array([1, 2, 3, 1, 0, -1, 2], np.float32)  # the padding's zeros do not count
    assert shift[0, FIRST_FEATURE] == pytest.approx(real.mean())
    assert scale[0, FIRST_FEATURE] == pytest.approx(real.std())
    others = np.delete(np.arange(x.shape[-1]), FIRST_FEATURE)
    assert np.all(shift[0, others] == 0) and np.all(scale[0, others] == 1)
    scaled = fit_scaler(x, "standardize", "graph")(torch.tensor(x)).numpy()
    assert np.array_equal(scaled[..., others], x[..., others])  # mask and edges untouched
    assert np.all(feature_scaling(x, "none")[0] == 0)


def test_gcn_computes_the_normalized_propagation() -> None:
    layer = GCNLayer(1, 1)
    with torch.no_grad():
        layer.lin.weight.fill_(1.0)
        layer.lin.bias.zero_()
    mask, _, features, adj = split(graph_batch(4), 1)
    out = layer(features, adj, mask)[0, :3, 0]
    # Path 0-1-2 with self-loops: degrees 2, 3, 2; h' = D^-1/2 (A + I) D^-1/2 h.
    a = np.array([[1, 1, 0], [1, 1, 1], [0, 1, 1]], float)
    d = np.diag(a.sum(1) ** -0.5)
    expected = d @ a @ d @ np.array([1.0, 2.0, 3.0])
    assert np.allclose(out.detach().numpy(), expected, atol=1e-6)


def test_gin_sums_the_neighbours() -> None:
    layer = GINLayer(1, 1)
    mask, _, features, adj = split(graph_batch(5), 1)
    inner = (1 + layer.eps) * features + torch.matmul(adj, features)
    # Triangle's node 2 has neighbours 0, 1, 3: (1 + 0) * -1 + 1 + 0 + 2 = 2.
    assert float(inner[1, 2, 0].detach()) == pytest.approx(2.0)
    assert torch.allclose(layer(features, adj, mask), layer.mlp(inner))


def _same_weights(model: dict[str, Any], a: int, b: int) -> tuple[Any, Any]:
    n_in = (a, FIRST_FEATURE + 1 + a)
    net_a = build_model(model, n_in, 3).eval()
    net_b = build_model(model, (b, FIRST_FEATURE + 1 + b), 3).eval()
    net_b.load_state_dict(net_a.state_dict())  # no weight depends on the node count
    return net_a, net_b


@pytest.mark.parametrize("readout", READOUTS)
@pytest.mark.parametrize("layer", LAYERS)
def test_output_ignores_padding_and_node_order(layer: str, readout: str) -> None:
    torch.manual_seed(0)
    model = {"family": "gnn", "layer": layer, "readout": readout, "width": 8, "heads": 2}
    small, large = _same_weights(model, 4, 9)
    with torch.no_grad():
        out = small(graph_batch(4))
        assert torch.allclose(out, large(graph_batch(9)), atol=1e-5)
        order = np.array([3, 1, 0, 2])  # relabel the triangle's nodes
        inverse = np.argsort(order)
        moved = Graph(TRIANGLE.features[order], inverse[TRIANGLE.edges])
        permuted = small(torch.tensor(pack([PATH, moved], 4)))
    assert torch.allclose(out, permuted, atol=1e-5)
    assert not torch.allclose(out[0], out[1])  # the two graphs are told apart


def test_a_node_task_reads_its_target_node() -> None:
    torch.manual_seed(0)
    net = build_model({"family": "gnn", "layers": 2, "width": 8}, (4, FIRST_FEATURE + 1 + 4), 2)
    x = torch.tensor(pack([Graph(PATH.features, PATH.edges, target=t) for t in range(3)], 4))
    net.eval()
    with torch.no_grad():
        out = net(x)
        mask, _, features, adj = split(x, 1)
        h = net.embed(features) * mask.unsqueeze(-1)
        for conv in net.convs:
            h = (h + net.act(conv(h, adj, mask))) * mask.unsqueeze(-1)
        expected = net.head(h[0])  # node states of the path; row t is node t's
    assert torch.allclose(out, expected[:3], atol=1e-5)


def _forward_backward(model: dict[str, Any]) -> None:
    info = dataset_info("motifs", SMALL_MOTIFS)
    assert check_model(model, info) == []
    net = build_model(model, info.input_shape, info.n_outputs)
    x = torch.tensor(motifs(4, 1, 0)[0])
    out = net(x)
    assert out.shape == (4, info.n_outputs)
    out.square().mean().backward()
    missing = [n for n, p in net.named_parameters() if p.grad is None]
    assert missing == [], f"parameters without gradient: {missing}"


def _one_epoch(model: dict[str, Any]) -> None:
    *epochs, result = run(model, load_dataset("motifs", options=SMALL_MOTIFS))
    assert isinstance(result, TrainResult) and isinstance(epochs[0], EpochMetrics)
    assert math.isfinite(epochs[0].metrics["val_loss"]) and result.torchscript


@pytest.mark.parametrize("layer", LAYERS)
def test_every_layer_type(layer: str) -> None:
    model = {"family": "gnn", "layer": layer, "width": 8, "heads": 2, "layers": 2}
    _forward_backward(model)
    _one_epoch(model)


@pytest.mark.parametrize("readout", READOUTS)
def test_every_readout(readout: str) -> None:
    model = {"family": "gnn", "readout": readout, "width": 8, "heads": 2, "queries": 2}
    _forward_backward(model)
    _one_epoch(model)


@pytest.mark.parametrize("norm", NORMS)
@pytest.mark.parametrize("residual", [True, False])
def test_every_norm_with_and_without_residual(norm: str, residual: bool) -> None:
    model = {"family": "gnn", "norm": norm, "residual": residual, "width": 8, "dropout": 0.2}
    _forward_backward(model)
    _one_epoch(model)


def test_batch_norm_statistics_skip_the_padding() -> None:
    net = build_model({"family": "gnn", "norm": "batch", "layers": 1, "width": 4}, (4, 7), 2)
    norm = net.norms[0]
    h = torch.randn(2, 4, 4)
    mask = torch.tensor([[1, 1, 1, 0], [1, 1, 0, 0]], dtype=torch.float32)
    norm.train()
    out = norm(h, mask)
    real = out[mask > 0]
    assert torch.allclose(real.mean(0), torch.zeros(4), atol=1e-5)
    assert torch.allclose(norm.running_mean, 0.1 * h[mask > 0].mean(0), atol=1e-5)


def test_checks_name_the_field() -> None:
    motif_info = dataset_info("motifs", SMALL_MOTIFS)
    gat = {"family": "gnn", "layer": "gat", "width": 10, "heads": 4}
    assert check_model(gat, motif_info) == [("heads", "4 heads do not divide width=10")]
    attention = {"family": "gnn", "readout": "attention", "width": 10, "heads": 3}
    assert check_model(attention, motif_info) == [("heads", "3 heads do not divide width=10")]
    assert check_model({**gat, "layer": "gcn"}, motif_info) == []  # gcn has no heads
    [(field, message)] = check_model({"family": "gnn"}, dataset_info("digits"))
    assert field == "family" and message.startswith("gnn needs graph data; dataset 'digits'")
    [(field, message)] = check_model({"family": "mlp"}, motif_info)
    assert field == "family" and "dataset 'motifs' is graph" in message
    assert check_model({"family": "gnn", "layer": "gcnn"}, motif_info)[0][0] == "layer"
    assert check_training({"augment_noise": 0.1}, motif_info) == [
        ("augment_noise", "noise cannot be added to graphs' edges and padding")
    ]
    assert check_training({"augment_noise": 0.1}, dataset_info("iris")) == []


def test_builds_and_runs_on_the_meta_device() -> None:
    info = dataset_info("motifs", SMALL_MOTIFS)
    for layer in LAYERS:
        with torch.device("meta"):
            net = build_model(
                {"family": "gnn", "layer": layer, "readout": "attention"}, info.input_shape, 3
            )
            assert net(torch.empty(2, *info.input_shape)).shape == (2, 3)


def test_exports_reproduce_the_model() -> None:
    data = load_dataset("motifs", options={"n_samples": 120})
    model = {"family": "gnn", "layer": "gat", "readout": "attention", "width": 16, "norm": "batch"}
    *_, result = run(model, data, epochs=2)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        scripted = torch.jit.load(io.BytesIO(result.torchscript))
    x = torch.tensor(data.x_val)  # raw graphs: the module scales their features itself
    with torch.no_grad():
        logits = scripted(x)
    accuracy = float((logits.argmax(1).numpy() == data.y_val).mean())
    assert accuracy == pytest.approx(result.metrics["val_accuracy"], abs=1e-6)
    state = torch.load(io.BytesIO(result.state_dict), weights_only=True)
    assert state["pre.shift"].shape == (1, data.info.input_shape[1])


@pytest.mark.parametrize("name", ["motifs", "distances", "karate", "sbm"])
def test_graph_datasets_are_graphs(name: str) -> None:
    info = dataset_info(name)
    data = load_dataset(name)
    assert info.kind == data.info.kind == "graph"
    assert data.x_train.shape[1:] == info.input_shape
    x = data.x_train
    adj = x[..., -x.shape[1] :]  # the last M columns
    assert np.array_equal(adj, adj.transpose(0, 2, 1))
    assert np.all(adj * (1 - x[..., MASK])[:, None, :] == 0)  # no edge to padding
    node_task = name in ("karate", "sbm")
    assert np.all(x[..., TARGET].sum(1) == (1 if node_task else 0))


@pytest.mark.parametrize("layer", LAYERS)
def test_mixed_precision_runs_every_norm_and_readout(layer: str) -> None:
    # The trainer's amp autocasts to bfloat16 on a GPU; the CPU's autocast checks the dtypes.
    torch.manual_seed(0)
    x = torch.tensor(motifs(8, 1, 0)[0])
    for norm, readout in zip(NORMS, READOUTS, strict=True):
        model = {"family": "gnn", "layer": layer, "norm": norm, "readout": readout, "heads": 2}
        net = build_model({**model, "width": 16}, tuple(x.shape[1:]), 3)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            out = net(x)
        out.float().sum().backward()
        assert torch.isfinite(out.float()).all()
        net.eval()
        with torch.autocast("cpu", dtype=torch.bfloat16), torch.no_grad():
            evaluated = net(x).float()
        exact = net(x)
        assert (evaluated - exact).abs().max() <= 0.05 * exact.abs().max() + 0.05  # bfloat16


def test_a_node_sample_is_its_neighbourhood_nearest_first() -> None:
    path = np.zeros((5, 5), bool)
    for u in range(4):
        path[u, u + 1] = path[u + 1, u] = True
    features = np.arange(5, dtype=np.float32)[:, None]  # a node's feature is its index
    x = node_samples(path, features, hops=1, max_nodes=3)
    assert x.shape == (5, 3, FIRST_FEATURE + 1 + 3)
    assert x[2, :, FIRST_FEATURE].tolist() == [2, 1, 3]  # node 2, then its neighbours
    assert x[2, :, TARGET].tolist() == [1, 0, 0]
    assert x[0, :, MASK].tolist() == [1, 1, 0]  # an end of the path has one neighbour
    wider = node_samples(path, features, hops=4, max_nodes=3)  # cut at 3 nodes, nearest kept
    assert wider[0, :, FIRST_FEATURE].tolist() == [0, 1, 2]
    adj = wider[0, :, -3:]
    assert adj.tolist() == [[0, 1, 0], [1, 0, 1], [0, 1, 0]]
