"""An uploaded ``.npz`` of graphs, checked and padded into the graph layout of
:mod:`models.graph_data`.

The archive holds four arrays, the layout PyTorch Geometric's batches use:

- ``x`` (nodes, F): every node's features, the nodes of all graphs together;
- ``edge_index`` (2, E) integers: each column an edge between two nodes (row indices of ``x``),
  undirected; self-loops are ignored;
- ``graph_index`` (nodes,) integers: the graph (0..G-1) each node belongs to;
- ``y`` (G,): each graph's label (or target).

Every check is bounded: the arrays' sizes were checked from their headers before they were
read, and the padded size, G x M x (2 + F + M) for graphs of at most M nodes, is checked before
anything is padded.
"""

import numpy as np

from models.graph_data import FIRST_FEATURE, MASK, MAX_NODES
from service.store.upload_checks import invalid

GRAPH_ARRAYS = ("edge_index", "graph_index", "x", "y")


def _integers(a: np.ndarray, key: str) -> np.ndarray:
    if a.dtype.kind not in "iu":
        raise invalid("file", f"{key} must hold integers (node or graph indices), got {a.dtype}")
    return a.astype(np.int64)


def padded_graphs(
    x: np.ndarray, edge_index: np.ndarray, graph_index: np.ndarray, y: np.ndarray, max_values: int
) -> np.ndarray:
    """The graphs as one array (G, M, 2 + F + M), M the largest graph's node count.

    Args:
        max_values: the most values the padded array may hold (checked before it is made).

    Raises:
        SpecInvalid: at ``file``, for arrays that do not describe graphs (the message says why).
    """
    if x.ndim != 2 or x.shape[1] < 1:
        raise invalid("file", f"x must be (nodes, features) with 1 feature or more; got {x.shape}")
    n = len(x)
    if edge_index.ndim != 2 or edge_index.shape[0] != 2:
        raise invalid("file", f"edge_index must be (2, edges); got shape {edge_index.shape}")
    if graph_index.shape != (n,):
        raise invalid(
            "file",
            f"graph_index must be (nodes,) = ({n},), one graph per node; got {graph_index.shape}",
        )
    if y.ndim < 1 or len(y) < 1:
        raise invalid("file", f"y must hold one label per graph; got shape {y.shape}")
    edges, graphs = _integers(edge_index, "edge_index"), _integers(graph_index, "graph_index")
    n_graphs = len(y)
    if n and (graphs.min() < 0 or graphs.max() >= n_graphs):
        raise invalid(
            "file", f"graph_index must name graphs 0..{n_graphs - 1} (one per label of y)"
        )
    counts = np.bincount(graphs, minlength=n_graphs)
    if (counts == 0).any():
        raise invalid("file", f"graph {int(np.argmax(counts == 0))} has no node")
    m = int(counts.max())
    if m > MAX_NODES:
        raise invalid(
            "file", f"graph {int(np.argmax(counts))} has {m} nodes; at most {MAX_NODES} a graph"
        )
    if edges.size and (edges.min() < 0 or edges.max() >= n):
        raise invalid("file", f"edge_index must name nodes 0..{n - 1} (rows of x)")
    u, v = edges
    crossing = graphs[u] != graphs[v]
    if crossing.any():
        k = int(np.argmax(crossing))
        raise invalid("file", f"edge {k} joins nodes {u[k]} and {v[k]} of different graphs")
    columns = FIRST_FEATURE + x.shape[1] + m
    if n_graphs * m * columns > max_values:
        raise invalid(
            "file",
            f"{n_graphs} graphs padded to {m} nodes make {n_graphs * m * columns} values; at most "
            f"{max_values} are accepted",
        )
    order = np.argsort(graphs, kind="stable")
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    local = np.empty(n, np.int64)
    local[order] = np.arange(n) - np.repeat(starts, counts)  # each node's slot in its graph
    adj0 = FIRST_FEATURE + x.shape[1]
    out = np.zeros((n_graphs, m, columns), np.float32)
    out[graphs, local, MASK] = 1
    out[graphs, local, FIRST_FEATURE:adj0] = x
    keep = u != v  # self-loops: message passing adds its own
    u, v = u[keep], v[keep]
    out[graphs[u], local[u], adj0 + local[v]] = 1
    out[graphs[v], local[v], adj0 + local[u]] = 1
    return out
