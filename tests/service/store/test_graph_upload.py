"""Uploads of graphs: an ``.npz`` of node features, edge index, graph index and labels (the
layout of PyTorch Geometric's batches) is checked and padded into the graph layout; every
problem is refused at ``file`` with its reason. (No server: the upload parser alone.)"""

import io

import numpy as np
import pytest

from models.graph_data import MAX_NODES, Graph, motifs, pack
from service.errors import SpecInvalid
from service.store.graph_upload import padded_graphs
from service.store.uploads import parse_upload


def as_batch(graphs: list[Graph]) -> dict[str, np.ndarray]:
    """Graphs as one PyTorch Geometric style batch: nodes of all graphs together."""
    offsets = np.cumsum([0] + [len(g.features) for g in graphs])
    return {
        "x": np.concatenate([g.features for g in graphs]),
        "edge_index": np.concatenate(
            [g.edges.T + o for g, o in zip(graphs, offsets, strict=False)], 1
        ),
        "graph_index": np.repeat(np.arange(len(graphs)), [len(g.features) for g in graphs]),
    }


def npz(**arrays: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    return buf.getvalue()


def some_graphs(n: int = 12) -> tuple[list[Graph], np.ndarray]:
    rng = np.random.default_rng(0)
    graphs = []
    for _ in range(n):
        size = int(rng.integers(3, 9))
        edges = np.array([(k, int(rng.integers(0, k))) for k in range(1, size)])
        graphs.append(Graph(rng.normal(size=(size, 2)).astype(np.float32), edges))
    return graphs, np.arange(n) % 3


def refused(content: bytes, match: str) -> None:
    with pytest.raises(SpecInvalid) as caught:
        parse_upload("graphs.npz", content)
    [(loc, message)] = caught.value.errors
    assert loc == ("file",)
    assert match in message, message


def test_an_upload_of_graphs_is_padded_like_the_bundled_graphs() -> None:
    graphs, y = some_graphs()
    upload = parse_upload("graphs.npz", npz(**as_batch(graphs), y=y))
    m = max(len(g.features) for g in graphs)
    assert upload.kind == "graph" and upload.task == "multiclass"
    assert upload.input_shape == (m, 2 + 2 + m) and upload.n_samples == len(graphs)
    assert np.array_equal(upload.x, pack(graphs, m))
    assert upload.y.tolist() == y.tolist()


def test_nodes_may_come_in_any_order_and_self_loops_are_ignored() -> None:
    graphs, y = some_graphs()
    batch = as_batch(graphs)
    order = np.random.default_rng(1).permutation(len(batch["x"]))  # shuffle the node rows
    where = np.argsort(order)
    loops = np.array([[0, 5], [0, 5]])
    shuffled = {
        "x": batch["x"][order],
        "graph_index": batch["graph_index"][order],
        "edge_index": np.concatenate([where[batch["edge_index"]], where[loops]], 1),
    }
    upload = parse_upload("graphs.npz", npz(**shuffled, y=y))
    expected = pack(graphs, upload.input_shape[0])
    m = upload.input_shape[0]
    for got, want in zip(upload.x, expected, strict=True):
        # The same graph, its nodes relabelled: the same (features, degree) rows.
        rows = [np.column_stack([g[:, :4], g[:, -m:].sum(1)]) for g in (got, want)]
        assert np.array_equal(*(r[np.lexsort(r.T)] for r in rows))
        assert np.trace(got[:, -m:]) == 0  # no self-loop stored


def unpack(x: np.ndarray, n_features: int) -> list[Graph]:
    """Padded graph samples back to graphs (features, edges)."""
    graphs = []
    for sample in x:
        n = int(sample[:, 0].sum())
        adj = sample[:n, -sample.shape[0] :][:, :n]
        graphs.append(Graph(sample[:n, 2 : 2 + n_features], np.argwhere(np.triu(adj, 1))))
    return graphs


def test_the_motif_generator_round_trips_through_an_upload() -> None:
    x, y = motifs(40, 1, 0)
    graphs = unpack(x, 1)
    upload = parse_upload("motifs.npz", npz(**as_batch(graphs), y=y))
    m = upload.input_shape[0]
    assert np.array_equal(upload.x, x[:, :m, [0, 1, 2, *range(3, 3 + m)]])


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"edge_index": np.array([[0, 3], [1, 4]])}, "edge 1 joins nodes 3 and 4 of different"),
        ({"edge_index": np.array([[0], [99]])}, "edge_index must name nodes 0..7"),
        ({"edge_index": np.array([[0.0], [1.0]])}, "edge_index must hold integers"),
        ({"edge_index": np.array([0, 1])}, "edge_index must be (2, edges)"),
        ({"graph_index": np.array([0, 0, 0, 0, 2, 2, 2, 2])}, "graph 1 has no node"),
        ({"graph_index": np.array([0, 0, 0, 0, 1, 1, 1, 5])}, "graph_index must name graphs 0..2"),
        ({"graph_index": np.array([0, 1])}, "graph_index must be (nodes,) = (8,)"),
        ({"x": np.zeros(8)}, "x must be (nodes, features)"),
    ],
)
def test_graphs_that_do_not_hold_together_are_refused(
    change: dict[str, np.ndarray], message: str
) -> None:
    arrays = {
        "x": np.ones((8, 1), np.float32),
        "edge_index": np.array([[0, 1, 4], [1, 2, 5]]),
        "graph_index": np.array([0, 0, 0, 0, 1, 1, 2, 2]),
        "y": np.array([0, 1, 0]),
    }
    refused(npz(**{**arrays, **change}), message)


def test_too_large_graphs_are_refused_before_padding() -> None:
    n = MAX_NODES + 1
    arrays = {"x": np.ones((n, 1)), "edge_index": np.zeros((2, 0), np.int64)}
    refused(
        npz(**arrays, graph_index=np.zeros(n, np.int64), y=np.array([0])), f"at most {MAX_NODES}"
    )
    graphs, y = some_graphs(3)
    batch = as_batch(graphs)
    with pytest.raises(SpecInvalid, match="padded to"):
        padded_graphs(batch["x"], batch["edge_index"], batch["graph_index"], y, max_values=10)


def test_other_arrays_name_both_forms() -> None:
    refused(npz(x=np.ones((10, 2)), edges=np.zeros((2, 1))), "x, edge_index, graph_index and y")
