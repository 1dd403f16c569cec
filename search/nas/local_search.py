"""Local search over one-edit neighbourhoods, as an Optuna sampler (``local_search``).

White, Nolen, Ravi & Savani ("Exploring the loss landscape in neural architecture search",
UAI 2021) show that plain local search is a strong baseline on NAS benchmarks: architecture
landscapes are locally smooth, so small edits of a good architecture are often better.

The sampler starts with ``n_init`` random architectures, then walks from the best of them
(the *incumbent*) through its neighbourhood: every architecture that differs in exactly one
parameter (a categorical or integer choice takes another of its values).

- ``mode: first`` (first improvement): propose unseen neighbours of the incumbent in random
  order; as soon as one scores better it becomes the incumbent.
- ``mode: best`` (best improvement): propose the whole neighbourhood of the incumbent; when
  every neighbour has finished, move to the best of them if it beats the incumbent.

When the incumbent's neighbourhood is exhausted (every neighbour finished, none better: a local
optimum) the search restarts from a new random architecture; the incumbent is then the best of
the trials since the restart. No architecture is ever proposed twice (see
:mod:`search.nas.arch`): with parallel workers, neighbours in flight count as seen, and while the
incumbent's last neighbours are in flight the sampler explores the neighbourhood of the next
best architecture of the current walk instead of waiting. Single objective; a pruned trial takes
part with its last reported value, a failed one counts as seen and never as an improvement.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from optuna.distributions import BaseDistribution
from optuna.trial import FrozenTrial

from models.fields import setting
from search.nas.arch import (
    Arch,
    ArchSampler,
    ArchSamplerAlgorithm,
    History,
    fixed_space,
    space_problems,
)
from search.samplers.base import Space, seed_setting
from search.spec import MAX_TRIALS

Mode = Literal["first", "best"]
MODES: tuple[Mode, ...] = ("first", "best")


class LocalSearchSampler(ArchSampler):
    """Local search with random restarts over one-edit neighbourhoods.

    Args:
        space: the searched distributions (None: inferred from the finished trials).
        n_init: random architectures before the walk starts.
        mode: ``first`` or ``best`` improvement.
        seed: seeds the random architectures and the order of the neighbours.

    Raises:
        ValueError: a setting out of range.
    """

    def __init__(
        self,
        space: Mapping[str, BaseDistribution] | None = None,
        n_init: int = 10,
        mode: Mode = "first",
        seed: int | None = None,
    ) -> None:
        if mode not in MODES:
            raise ValueError(f"mode must be one of {', '.join(MODES)}, got {mode!r}")
        super().__init__(space, n_init, seed)
        self._mode = mode
        self._run_start = 0  # trials numbered from here make the current walk
        self._center: Arch | None = None  # best improvement: the incumbent
        self.restarts = 0

    @property
    def mode(self) -> Mode:
        """First or best improvement."""
        return self._mode

    def _walk(self, history: History) -> list[Arch]:
        """The scored architectures of the current walk, best first."""
        run = [a for a, n in history.first.items() if n >= self._run_start]
        return sorted(run, key=lambda a: (-history.scores[a], history.first[a]))

    def _pick(self, choices: list[Arch]) -> Arch:
        return choices[int(self._rng.randint(len(choices)))]

    def _restart(self, trial: FrozenTrial) -> None:
        self._run_start, self._center = trial.number, None
        self.restarts += 1

    def _speculate(self, history: History, walk: list[Arch]) -> Arch | None:
        """An unseen neighbour of the best architecture of the walk that has one."""
        for arch in walk:
            unseen = history.unseen_neighbours(arch)
            if unseen:
                return self._pick(unseen)
        return None

    def propose(self, history: History, trial: FrozenTrial) -> Arch | None:
        walk = self._walk(history)
        if not walk:  # a restart's random architecture has not finished yet
            return None
        if self._mode == "first" or self._center not in history.scores:
            self._center = walk[0]
        center = self._center
        assert center is not None
        unseen = history.unseen_neighbours(center)
        if unseen:
            return self._pick(unseen)
        neighbours = history.neighbours(center)
        if all(a in history.finished for a in neighbours):
            better = history.best(neighbours)
            if (
                self._mode == "best"
                and better is not None
                and history.scores[better] > history.scores[center]
            ):
                self._center = better  # move; its neighbourhood is searched next
                unseen = history.unseen_neighbours(better)
                return self._pick(unseen) if unseen else self._speculate(history, walk)
            self._restart(trial)  # a local optimum
            return None
        return self._speculate(history, walk)


@dataclass(frozen=True)
class LocalSearchSettings:
    seed: int | None = seed_setting()
    n_init: int = setting(
        10, "Random architectures before the walk starts.", low=1, high=MAX_TRIALS
    )
    mode: str = setting(
        "first",
        "first: move to the first better neighbour; best: search the whole neighbourhood, "
        "then move to its best.",
        choices=MODES,
    )


def _problems(settings: Any, space: Space, n_objectives: int) -> list[str]:
    return space_problems("local_search", space)


ALGORITHM = ArchSamplerAlgorithm(
    name="local_search",
    description="Local search for architecture choices: from the best of n_init random "
    "architectures, one-edit neighbours (one categorical or integer choice changed) until "
    "none is better, then a random restart; never an architecture twice, in-flight ones "
    "included. Single objective; categorical parameters and integers of at most 64 values.",
    settings=LocalSearchSettings,
    factory=lambda space, seed, n_init, mode: LocalSearchSampler(
        fixed_space(space), n_init=n_init, mode=mode, seed=seed
    ),
    multi_objective=False,
    problems=_problems,
)
