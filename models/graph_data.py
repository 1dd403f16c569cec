"""Graphs as fixed-shape arrays, and the graph datasets a study can name without a download.

The trainer batches arrays ``x`` (N, *input_shape); a graph sample is one padded graph of at
most ``M`` nodes, an array (M, 2 + F + M) whose row ``i`` is node slot ``i``:

- column 0 (:data:`MASK`): 1 for a real node, 0 for padding;
- column 1 (:data:`TARGET`): 1 on the node whose label the sample carries (node tasks: the
  sample is the node's neighbourhood and its label the node's), all 0 for a graph task;
- columns 2 .. 2+F: the node's features;
- columns 2+F .. 2+F+M: the node's adjacency row (1 where an edge joins slot ``i`` to slot j).

A graph dataset's kind is ``graph`` and its ``input_shape`` is (M, 2 + F + M). Preprocessing
scales the feature columns only, with statistics over the real nodes (:func:`feature_scaling`).
"""

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from models.fields import setting

MASK, TARGET, FIRST_FEATURE = 0, 1, 2
MAX_NODES = 128  # the largest padded graph: a sample costs M x (2 + F + M) floats
Arrays = tuple[np.ndarray, np.ndarray]


@dataclass(frozen=True)
class Graph:
    """One graph: node features (n, F), undirected edges (E, 2) of node indices, and the node
    whose label a node-task sample carries (None for a graph task)."""

    features: np.ndarray
    edges: np.ndarray
    target: int | None = None


def feature_count(input_shape: tuple[int, ...]) -> int:
    """F, the node features of a graph sample of shape (M, 2 + F + M)."""
    m, columns = input_shape
    return columns - FIRST_FEATURE - m


def pack(graphs: Sequence[Graph], max_nodes: int) -> np.ndarray:
    """Graphs as one float32 array (N, M, 2 + F + M), M = ``max_nodes`` (see the module).

    Raises:
        ValueError: a graph has more than ``max_nodes`` nodes, an edge names a missing node, or
            the graphs' feature counts differ.
    """
    n_features = graphs[0].features.shape[1] if graphs else 0
    adj0 = FIRST_FEATURE + n_features
    x = np.zeros((len(graphs), max_nodes, adj0 + max_nodes), np.float32)
    for i, g in enumerate(graphs):
        n = len(g.features)
        if n > max_nodes:
            raise ValueError(f"graph {i} has {n} nodes; at most {max_nodes} fit")
        if g.features.shape[1] != n_features:
            raise ValueError(f"graph {i} has {g.features.shape[1]} features, not {n_features}")
        edges = np.asarray(g.edges, np.int64).reshape(-1, 2)
        if len(edges) and (edges.min() < 0 or edges.max() >= n):
            raise ValueError(f"graph {i} has an edge to a node it does not have")
        x[i, :n, MASK] = 1
        if g.target is not None:
            x[i, g.target, TARGET] = 1
        x[i, :n, FIRST_FEATURE:adj0] = g.features
        x[i, edges[:, 0], adj0 + edges[:, 1]] = 1
        x[i, edges[:, 1], adj0 + edges[:, 0]] = 1
    return x


def feature_scaling(x: np.ndarray, how: str) -> tuple[np.ndarray, np.ndarray]:
    """Shift and scale (1, C) for graph samples ``x`` (N, M, C): the feature columns get the
    statistics of the real nodes' features (``standardize``: mean and std; ``minmax``: min and
    range), the mask, target and adjacency columns are left as they are."""
    m, columns = x.shape[1:]
    n_features = feature_count((m, columns))
    shift = np.zeros((1, columns), np.float32)
    scale = np.ones((1, columns), np.float32)
    feats = x[..., FIRST_FEATURE : FIRST_FEATURE + n_features][x[..., MASK] > 0]
    if len(feats) and how in ("standardize", "minmax"):
        if how == "standardize":
            lo, size = feats.mean(axis=0), feats.std(axis=0)
        else:
            lo, size = feats.min(axis=0), feats.max(axis=0) - feats.min(axis=0)
        shift[0, FIRST_FEATURE : FIRST_FEATURE + n_features] = lo
        scale[0, FIRST_FEATURE : FIRST_FEATURE + n_features] = np.where(size == 0, 1.0, size)
    return shift, scale


# -- generated graph classification ------------------------------------------------------------

MAX_GRAPHS = 20_000
_SEED = "Seed of the generator."
_GRAPHS = "Graphs generated."


def _random_tree(n: int, rng: np.random.Generator) -> list[tuple[int, int]]:
    """A random recursive tree on n nodes: node k joins a node before it."""
    return [(k, int(rng.integers(0, k))) for k in range(1, n)]


def _motif(kind: int, start: int, size: int) -> list[tuple[int, int]]:
    nodes = list(range(start, start + size))
    if kind == 0:  # cycle
        return [(nodes[i], nodes[(i + 1) % size]) for i in range(size)]
    if kind == 1:  # star: the first node is the hub
        return [(nodes[0], v) for v in nodes[1:]]
    return [(u, v) for i, u in enumerate(nodes) for v in nodes[i + 1 :]]  # clique


def _degrees(n: int, edges: np.ndarray) -> np.ndarray:
    adj = np.zeros((n, n), bool)
    adj[edges[:, 0], edges[:, 1]] = adj[edges[:, 1], edges[:, 0]] = True
    np.fill_diagonal(adj, False)
    degrees: np.ndarray = adj.sum(axis=1, keepdims=True).astype(np.float32)
    return degrees


@dataclass(frozen=True)
class MotifOptions:
    n_samples: int = setting(600, _GRAPHS, low=30, high=MAX_GRAPHS)
    noise_edges: int = setting(2, "Random edges added to each graph.", low=0, high=20)
    seed: int = setting(0, _SEED, low=0, high=2**31 - 1)


MOTIF_NODES = 24  # background tree of up to 16 nodes + a motif of up to 8


def motifs(n_samples: int, noise_edges: int, seed: int) -> Arrays:
    """Graph classification: a random tree (6-16 nodes) with a motif attached; the class is
    the motif: a cycle (0), a star (1) or a clique (2), each of 4-8 nodes (cliques 4-6), with
    ``noise_edges`` random edges on top. Node feature: the degree."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 3, n_samples)
    graphs = []
    for label in y:
        base = int(rng.integers(6, 17))
        size = int(rng.integers(4, 7 if label == 2 else 9))
        edges = _random_tree(base, rng) + _motif(int(label), base, size)
        edges.append((int(rng.integers(0, base)), base + int(rng.integers(0, size))))
        n = base + size
        edges += [(int(u), int(v)) for u, v in rng.integers(0, n, (noise_edges, 2)) if u != v]
        arr = np.array(edges, np.int64)
        graphs.append(Graph(_degrees(n, arr), arr))
    return pack(graphs, MOTIF_NODES), y


@dataclass(frozen=True)
class DistanceOptions:
    n_samples: int = setting(800, _GRAPHS, low=30, high=MAX_GRAPHS)
    seed: int = setting(0, _SEED, low=0, high=2**31 - 1)


DISTANCE_NODES = 20


def distances(n_samples: int, seed: int) -> Arrays:
    """Graph classification no 1-layer model can win: a cycle of 12-20 nodes with two marked
    nodes (feature 1, the others 0); class 0 when they are 3 or 4 edges apart, class 1 when 5
    or 6. Every node has two neighbours and no node has both marks within one hop, in either
    class: one round of message passing sees the same in both. Two rounds see a node within
    two hops of both marks exactly in class 0."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, n_samples)
    graphs = []
    for label in y:
        n = int(rng.integers(12, DISTANCE_NODES + 1))
        ring = np.arange(n)
        edges = np.stack([ring, (ring + 1) % n], axis=1)
        apart = int(rng.integers(3, 5) if label == 0 else rng.integers(5, 7))
        a = int(rng.integers(0, n))
        features = np.zeros((n, 1), np.float32)
        features[[a, (a + apart) % n], 0] = 1
        graphs.append(Graph(features, edges))
    return pack(graphs, DISTANCE_NODES), y


# -- node classification ---------------------------------------------------------------------


def _ego(adj: np.ndarray, node: int, hops: int, max_nodes: int) -> np.ndarray:
    """The node, then its neighbours hop by hop (each hop in index order), at most
    ``max_nodes``: a hop stops the search once enough nodes are found, so a node's sample costs
    at most ``hops`` vectorized passes over the adjacency rows of its frontier."""
    order = [np.array([node])]
    seen = np.zeros(len(adj), bool)
    seen[node] = True
    frontier, count = order[0], 1
    for _ in range(hops):
        if count >= max_nodes or not len(frontier):
            break
        nxt = np.flatnonzero(adj[frontier].any(axis=0) & ~seen)
        seen[nxt] = True
        order.append(nxt)
        frontier, count = nxt, count + len(nxt)
    return np.concatenate(order)[:max_nodes]


def node_samples(adj: np.ndarray, features: np.ndarray, hops: int, max_nodes: int) -> np.ndarray:
    """One sample per node: its ``hops``-hop neighbourhood (at most ``max_nodes`` nodes,
    nearest first), the node itself marked as the target in slot 0."""
    graphs = []
    for node in range(len(adj)):
        keep = _ego(adj, node, hops, max_nodes)
        sub = adj[np.ix_(keep, keep)]
        edges = np.argwhere(np.triu(sub, 1))
        graphs.append(Graph(features[keep], edges, target=0))
    return pack(graphs, max_nodes)


def karate() -> Arrays:
    """Zachary's karate club (34 members, networkx's bundled copy): which club each member
    joined (0: Mr. Hi's, 1: the officer's). Features: each member's one-hot identity; each
    sample is the whole graph with its member marked as the target."""
    import networkx as nx

    g = nx.karate_club_graph()
    n = g.number_of_nodes()
    adj = nx.to_numpy_array(g, nodelist=range(n), weight=None) > 0
    y = np.array([g.nodes[v]["club"] != "Mr. Hi" for v in range(n)], np.int64)
    return node_samples(adj, np.eye(n, dtype=np.float32), hops=n, max_nodes=n), y


@dataclass(frozen=True)
class BlockModelOptions:
    n_samples: int = setting(400, "Nodes of the graph: one sample each.", low=30, high=3000)
    blocks: int = setting(3, "Communities (the classes).", low=2, high=10)
    p_in: float = setting(0.05, "Edge probability inside a community.", low=0.0, high=1.0)
    p_out: float = setting(0.005, "Edge probability between communities.", low=0.0, high=1.0)
    n_features: int = setting(8, "Node features.", low=1, high=64)
    feature_noise: float = setting(
        2.0,
        "Std of the noise on the features (their class means are unit vectors).",
        low=0.0,
        high=100.0,
    )
    hops: int = setting(2, "Hops of each node's neighbourhood sample.", low=1, high=4)
    max_nodes: int = setting(32, "Nodes kept of a neighbourhood (nearest first).", low=2, high=64)
    seed: int = setting(0, _SEED, low=0, high=2**31 - 1)


def block_model(
    n_samples: int,
    blocks: int,
    p_in: float,
    p_out: float,
    n_features: int,
    feature_noise: float,
    hops: int,
    max_nodes: int,
    seed: int,
) -> Arrays:
    """Node classification on a stochastic block model: the class is the node's community;
    features are the community's mean (a random unit vector) plus Gaussian noise, so a node
    alone is hard to place and its neighbourhood (mostly its own community) tells."""
    rng = np.random.default_rng(seed)
    n_nodes = n_samples
    y = rng.permutation(np.arange(n_nodes) % blocks)  # every community, near equal sizes
    prob = np.where(y[:, None] == y[None, :], p_in, p_out)
    upper = np.triu(rng.random((n_nodes, n_nodes)) < prob, 1)
    adj = upper | upper.T
    means = rng.normal(size=(blocks, n_features))
    means /= np.linalg.norm(means, axis=1, keepdims=True)
    features = means[y] + rng.normal(0, feature_noise, (n_nodes, n_features))
    return node_samples(adj, features.astype(np.float32), hops, max_nodes), y
