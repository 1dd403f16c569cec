"""N-way K-shot episodes drawn from a set of classes, reproducibly.

An episode picks ``ways`` classes, then ``shots`` support and ``queries`` query samples of
each, without overlap; labels are relabelled ``0..ways-1`` in the order the classes were
drawn. The same generator seed gives the same episodes: meta-validation draws its episodes
once, so every epoch (and every trial) is scored on the same ones.
"""

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import torch


@dataclass(frozen=True)
class Episode:
    """Shapes: ``x_support`` (ways*shots, *input), ``y_support`` (ways*shots,) int64 in
    ``0..ways-1``; ``x_query`` (ways*queries, *input), ``y_query`` likewise."""

    x_support: torch.Tensor
    y_support: torch.Tensor
    x_query: torch.Tensor
    y_query: torch.Tensor


class EpisodeSampler:
    """Episodes over the samples of some classes.

    Args:
        x: (N, *input) samples (already scaled).
        y: (N,) class labels.
        classes: the classes episodes draw from.
        ways, shots, queries: the episode's shape.

    Raises:
        ValueError: fewer classes than ways, or a class with fewer than shots + queries
            samples (the message names it).
    """

    def __init__(
        self,
        x: torch.Tensor,
        y: np.ndarray,
        classes: list[int],
        ways: int,
        shots: int,
        queries: int,
    ) -> None:
        if len(classes) < ways:
            raise ValueError(f"{ways}-way episodes need {ways} classes; there are {len(classes)}")
        self.by_class = [np.flatnonzero(y == c) for c in classes]
        for c, idx in zip(classes, self.by_class, strict=True):
            if len(idx) < shots + queries:
                raise ValueError(
                    f"class {c} has {len(idx)} samples; an episode needs shots + queries = "
                    f"{shots + queries} of each class"
                )
        self.x, self.ways, self.shots, self.queries = x, ways, shots, queries

    def sample(self, rng: np.random.Generator) -> Episode:
        picked = rng.choice(len(self.by_class), self.ways, replace=False)
        support, query = [], []
        for c in picked:
            idx = rng.choice(self.by_class[c], self.shots + self.queries, replace=False)
            support.append(idx[: self.shots])
            query.append(idx[self.shots :])
        s, q = np.concatenate(support), np.concatenate(query)
        device = self.x.device
        return Episode(
            self.x[torch.from_numpy(s).to(device)],
            torch.arange(self.ways, device=device).repeat_interleave(self.shots),
            self.x[torch.from_numpy(q).to(device)],
            torch.arange(self.ways, device=device).repeat_interleave(self.queries),
        )

    def fixed(self, n: int, seed: int) -> Iterator[Episode]:
        """``n`` episodes drawn with ``seed``: the same ones every time (one at a time, so
        no more than one episode is in memory)."""
        rng = np.random.default_rng(seed)
        for _ in range(n):
            yield self.sample(rng)
