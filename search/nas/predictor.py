"""Predictor-guided evolution, as an Optuna sampler (``predictor``).

After BANANAS (White, Neiswanger & Savani, AAAI 2021) and NPENAS (Wei et al., 2022): a small
neural predictor learns the objective from the architectures evaluated so far, and each new
architecture is the mutation of a good one that the predictor likes best.

- The first ``n_init`` architectures are random.
- Then, at every ask, an ensemble of ``n_models`` one-hidden-layer MLPs (``hidden`` units, a
  few hundred weights each, trained together as one batched network on CPU in tens of
  milliseconds) is fitted to the scores of the finished architectures (standardized; each
  member on its own bootstrap weights and initialization, so their disagreement measures the
  predictor's uncertainty). The encoding is one-hot: one input per value of each parameter, so
  it applies to any categorical space (cell edges, macro stage choices, widths).
- Candidates are the unseen one-edit mutations of the ``top_k`` best architectures, plus a few
  random unseen ones; at most ``n_candidates`` of them are scored.
- The acquisition picks the candidate: ``ucb`` (the default: mean + ``kappa`` · standard
  deviation) or ``ei`` (expected improvement over the best score, the ensemble's mean and
  standard deviation taken as a normal). On the synthetic table (10 seeds, 100 trials) ``ucb``
  reached a mean regret of 0.004 and ``ei`` 0.010.

For a noisy objective (a cell trained a few epochs scores differently under another seed),
``replicate_every: k`` makes every k-th trial after ``n_init`` evaluate once more (under the
trial's own seed) the finished architecture the ensemble rates best among those evaluated fewer
than ``1 + replicates`` times; the ensemble then fits every evaluation (the architectures ranked
by their mean), and each trial records in its user attribute ``recommended`` the architecture
the ensemble rates best among those evaluated more than once (``{"trials": [numbers],
"evaluations": n}`` names its first trials): under noise a better pick than the best single
value, as Bayesian optimization recommends under noise (measured on the cell search of
``benchmarks/nas_cells.py``).

Like every architecture sampler here (:mod:`search.nas.arch`), it never proposes an
architecture seen before, in flight included, except such a replicate. Single objective;
pruned trials take part with their last reported value. Seeded, it proposes the same
architectures for the same sequence of tells.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
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

if TYPE_CHECKING:
    import torch

Acquisition = Literal["ei", "ucb"]
ACQUISITIONS: tuple[Acquisition, ...] = ("ei", "ucb")
N_RANDOM = 20  # random unseen candidates beside the mutations
MAX_NAMED = 8  # trials of the recommended architecture named in its attribute, at most
EPOCHS = 150  # full-batch Adam steps per fit
LEARNING_RATE = 0.02
WEIGHT_DECAY = 1e-4


def one_hot(archs: list[Arch], sizes: tuple[int, ...]) -> np.ndarray:
    """Each architecture as one input per value of each parameter (1 for the chosen value)."""
    offsets = np.cumsum((0, *sizes[:-1]))
    out = np.zeros((len(archs), sum(sizes)), dtype=np.float32)
    for row, arch in enumerate(archs):
        out[row, offsets + np.asarray(arch, dtype=np.int64)] = 1.0
    return out


class Ensemble:
    """``n_models`` MLPs (inputs → ``hidden`` ReLU → 1) fitted as one batched network.

    The gradients are written out by hand and Adam runs on one flat parameter buffer: a few
    hundred weights per member make autograd's per-operation overhead the whole cost.
    """

    def __init__(self, n_inputs: int, n_models: int, hidden: int, seed: int) -> None:
        import torch

        self._torch = torch
        self._gen = torch.Generator().manual_seed(seed)
        e, d, h = n_models, n_inputs, hidden
        self._shapes = ((e, d, h), (e, 1, h), (e, h, 1), (e, 1, 1))
        sizes = [math.prod(shape) for shape in self._shapes]
        self._flat = torch.zeros(sum(sizes))
        self._grad = torch.zeros(sum(sizes))
        views = torch.split(self._flat, sizes)
        grads = torch.split(self._grad, sizes)
        self.w1, self.b1, self.w2, self.b2 = (
            v.view(shape) for v, shape in zip(views, self._shapes, strict=True)
        )
        self._g = [g.view(shape) for g, shape in zip(grads, self._shapes, strict=True)]
        self.w1.copy_((torch.rand(e, d, h, generator=self._gen) * 2 - 1) / math.sqrt(d))
        self.w2.copy_((torch.rand(e, h, 1, generator=self._gen) * 2 - 1) / math.sqrt(h))
        self.n_models = n_models
        self.n_weights = sum(sizes) // n_models

    def _hidden(self, x: torch.Tensor) -> torch.Tensor:
        return self._torch.relu(self._torch.baddbmm(self.b1, x, self.w1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Predictions of every member for ``x`` of shape ``(n_models, n, n_inputs)``: shape
        ``(n_models, n)``."""
        return self._torch.baddbmm(self.b2, self._hidden(x), self.w2).squeeze(-1)

    def fit(self, x: np.ndarray, y: np.ndarray) -> None:
        """Fit every member to ``y`` (weighted squared error, each member on its own Poisson
        bootstrap weights) by full-batch Adam with a little weight decay."""
        torch = self._torch
        xt = torch.from_numpy(x).expand(self.n_models, *x.shape)
        xt_t = xt.transpose(1, 2)
        yt = torch.from_numpy(y.astype(np.float32))
        weights = torch.poisson(torch.ones(self.n_models, len(y)), generator=self._gen)
        weights = 2 * weights / weights.sum(dim=1, keepdim=True).clamp(min=1.0)
        m, v = torch.zeros_like(self._flat), torch.zeros_like(self._flat)
        beta1, beta2, eps = 0.9, 0.999, 1e-8
        gw1, gb1, gw2, gb2 = self._g
        for step in range(1, EPOCHS + 1):
            hidden = self._hidden(xt)
            out = torch.baddbmm(self.b2, hidden, self.w2)  # (e, n, 1)
            d_out = (weights * (out.squeeze(-1) - yt)).unsqueeze(-1)  # d loss / d out
            torch.bmm(hidden.transpose(1, 2), d_out, out=gw2)
            torch.sum(d_out, dim=1, keepdim=True, out=gb2)
            d_hidden = torch.bmm(d_out, self.w2.transpose(1, 2)) * (hidden > 0)
            torch.bmm(xt_t, d_hidden, out=gw1)
            torch.sum(d_hidden, dim=1, keepdim=True, out=gb1)
            self._grad.add_(self._flat, alpha=WEIGHT_DECAY)
            m.mul_(beta1).add_(self._grad, alpha=1 - beta1)
            v.mul_(beta2).addcmul_(self._grad, self._grad, value=1 - beta2)
            step_size = LEARNING_RATE * math.sqrt(1 - beta2**step) / (1 - beta1**step)
            self._flat.addcdiv_(m, v.sqrt().add_(eps), value=-step_size)

    def predict(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The ensemble's mean and standard deviation at each row of ``x``."""
        xt = self._torch.from_numpy(x).expand(self.n_models, *x.shape)
        out = self.forward(xt).numpy().astype(np.float64)
        return out.mean(axis=0), out.std(axis=0)


def expected_improvement(mean: np.ndarray, std: np.ndarray, best: float) -> np.ndarray:
    """Expected improvement over ``best`` of normals with ``mean`` and ``std`` (maximizing)."""
    std = np.maximum(std, 1e-9)
    z = (mean - best) / std
    cdf = 0.5 * (1 + np.vectorize(math.erf)(z / math.sqrt(2)))
    pdf = np.exp(-0.5 * z**2) / math.sqrt(2 * math.pi)
    out: np.ndarray = (mean - best) * cdf + std * pdf
    return out


def fit_ensemble(
    samples: list[tuple[Arch, float]], sizes: tuple[int, ...], n_models: int, hidden: int, seed: int
) -> Ensemble:
    """An ensemble fitted to ``samples`` (architecture, score; an architecture may repeat),
    the scores standardized."""
    y = np.array([score for _, score in samples])
    y = (y - y.mean()) / (y.std() or 1.0)
    ensemble = Ensemble(sum(sizes), n_models, hidden, seed)
    ensemble.fit(one_hot([arch for arch, _ in samples], sizes), y)
    return ensemble


def recommend(
    samples: list[tuple[Arch, float]],
    sizes: tuple[int, ...],
    n_models: int = 20,
    hidden: int = 16,
    seed: int = 0,
    replicated: bool = False,
) -> Arch:
    """Of the architectures in ``samples`` (architecture, score; higher is better), the one an
    ensemble fitted to all of them rates best: under a noisy score, a better pick than the
    best single score. With ``replicated``, only architectures evaluated more than once are
    picked, when there are any (the finalists of a study with ``replicate_every``)."""
    ensemble = fit_ensemble(samples, sizes, n_models, hidden, seed)
    counts = Counter(arch for arch, _ in samples)
    return best_rated(ensemble, finalists(counts, replicated), sizes)


def finalists(counts: Mapping[Arch, int], replicated: bool) -> list[Arch]:
    """The architectures a recommendation picks from: all, or with ``replicated`` those
    evaluated more than once (all when none is)."""
    again = [arch for arch, n in counts.items() if n > 1] if replicated else []
    return again or list(counts)


def best_rated(ensemble: Ensemble, archs: list[Arch], sizes: tuple[int, ...]) -> Arch:
    """Of ``archs``, the one with the highest mean prediction of ``ensemble``."""
    mean, _ = ensemble.predict(one_hot(archs, sizes))
    return archs[int(np.argmax(mean))]


class PredictorSampler(ArchSampler):
    """Mutations of the best architectures, picked by an ensemble of small MLPs.

    Args:
        space: the searched distributions (None: inferred from the finished trials).
        n_init: random architectures before the predictor is used (>= 2).
        n_models: ensemble members.
        hidden: hidden units of each member.
        top_k: best architectures whose one-edit mutations are candidates.
        n_candidates: candidates scored by the predictor at most.
        acquisition: ``ucb`` or ``ei``.
        kappa: the weight of the standard deviation in ``ucb``.
        replicate_every: every this many trials after ``n_init``, evaluate the best-rated
            architecture once more (0: never; for noisy objectives).
        replicates: evaluations beyond its first an architecture may get.
        seed: seeds the random architectures, the ensemble and the candidates.

    Raises:
        ValueError: a setting out of range.
    """

    def __init__(
        self,
        space: Mapping[str, BaseDistribution] | None = None,
        n_init: int = 10,
        n_models: int = 5,
        hidden: int = 16,
        top_k: int = 10,
        n_candidates: int = 200,
        acquisition: Acquisition = "ucb",
        kappa: float = 1.0,
        replicate_every: int = 0,
        replicates: int = 2,
        seed: int | None = None,
    ) -> None:
        if acquisition not in ACQUISITIONS:
            raise ValueError(
                f"acquisition must be one of {', '.join(ACQUISITIONS)}, got {acquisition!r}"
            )
        for name, value, low in (
            ("n_models", n_models, 1),
            ("hidden", hidden, 1),
            ("top_k", top_k, 1),
            ("n_candidates", n_candidates, 1),
            ("replicate_every", replicate_every, 0),
            ("replicates", replicates, 1),
        ):
            if isinstance(value, bool) or not isinstance(value, int) or value < low:
                raise ValueError(f"{name} must be an int >= {low}, got {value!r}")
        if n_init < 2:
            raise ValueError(f"n_init must be >= 2 (a predictor needs data), got {n_init}")
        if not kappa >= 0:
            raise ValueError(f"kappa must be >= 0, got {kappa}")
        super().__init__(space, n_init, seed)
        self._n_models, self._hidden = n_models, hidden
        self._top_k, self._n_candidates = top_k, n_candidates
        self._acquisition: Acquisition = acquisition
        self._kappa = float(kappa)
        self._replicate_every, self._replicates = replicate_every, replicates
        self._asks = 0  # asks after n_init
        self._fitted: tuple[History, Ensemble] | None = None  # this ask's ensemble

    @property
    def _noisy(self) -> bool:
        return self._replicate_every > 0

    def _ensemble(self, history: History) -> Ensemble:
        """The ensemble fitted to ``history`` (once an ask): to each architecture's best score,
        or with replication on, to every evaluation."""
        if self._fitted is not None and self._fitted[0] is history:
            return self._fitted[1]
        if self._noisy:
            rows = [(a, score) for a, got in history.samples.items() for _, score in got]
        else:
            rows = list(history.scores.items())
        seed = int(self._rng.randint(2**31 - 1))
        ensemble = fit_ensemble(rows, history.sizes, self._n_models, self._hidden, seed)
        self._fitted = (history, ensemble)
        return ensemble

    def _rank(self, history: History) -> dict[Arch, float]:
        """What ranks the finished architectures: the best score, or the mean one under
        replication."""
        if self._noisy:
            return {a: history.mean(a) for a in history.samples}
        return history.scores

    def _incumbent(self, history: History, ensemble: Ensemble) -> float:
        """The standardized score to improve on: the best one, or under replication the
        ensemble's best rating of a finished architecture."""
        if self._noisy:
            best, _ = ensemble.predict(one_hot(list(history.samples), history.sizes))
            return float(best.max())
        y = np.array(list(history.scores.values()))
        return float((y.max() - y.mean()) / (y.std() or 1.0))

    def repeat(self, history: History, trial: FrozenTrial) -> Arch | None:
        self._asks += 1
        if not self._noisy or self._asks % self._replicate_every:
            return None
        done = [
            a
            for a, got in history.samples.items()
            if len(got) == history.trials[a] and len(got) <= self._replicates
        ]
        if not done:
            return None
        return best_rated(self._ensemble(history), done, history.sizes)

    def recommended(self, history: History) -> dict[str, Any] | None:
        if not self._noisy or not history.samples:
            return None
        counts = {arch: len(got) for arch, got in history.samples.items()}
        arch = best_rated(self._ensemble(history), finalists(counts, True), history.sizes)
        numbers = [n for n, _ in history.samples[arch]]
        # Short enough for optuna-dashboard's attribute view (search.attrs.MAX_ATTR_JSON).
        return {"trials": numbers[:MAX_NAMED], "evaluations": len(numbers)}

    def _candidates(self, history: History) -> list[Arch]:
        rank = self._rank(history)
        top = sorted(rank, key=lambda a: -rank[a])[: self._top_k]
        found: dict[Arch, None] = {}
        for arch in top:
            found.update(dict.fromkeys(history.unseen_neighbours(arch)))
        for _ in range(N_RANDOM):
            drawn = history.random_unseen(self._rng)
            if drawn is not None:
                found[drawn] = None
        out = [a for a in found if a not in history.seen]
        if len(out) > self._n_candidates:
            keep = self._rng.choice(len(out), size=self._n_candidates, replace=False)
            out = [out[int(i)] for i in sorted(keep)]
        return out

    def propose(self, history: History, trial: FrozenTrial) -> Arch | None:
        candidates = self._candidates(history)
        if not candidates:
            return None
        ensemble = self._ensemble(history)
        mean, std = ensemble.predict(one_hot(candidates, history.sizes))
        if self._acquisition == "ei":
            gain = expected_improvement(mean, std, self._incumbent(history, ensemble))
        else:
            gain = mean + self._kappa * std
        return candidates[int(np.argmax(gain))]


@dataclass(frozen=True)
class PredictorSettings:
    seed: int | None = seed_setting()
    n_init: int = setting(
        10, "Random architectures before the predictor is used.", low=2, high=MAX_TRIALS
    )
    n_models: int = setting(5, "MLPs in the ensemble.", low=1, high=20)
    hidden: int = setting(16, "Hidden units of each MLP.", low=1, high=128)
    top_k: int = setting(
        10, "Best architectures whose one-edit mutations are candidates.", low=1, high=MAX_TRIALS
    )
    n_candidates: int = setting(200, "Candidates scored per trial at most.", low=1, high=5000)
    acquisition: str = setting(
        "ucb",
        "ucb: ensemble mean + kappa * standard deviation; ei: expected improvement.",
        choices=ACQUISITIONS,
    )
    kappa: float = setting(1.0, "Weight of the standard deviation in ucb.", low=0, high=100)
    replicate_every: int = setting(
        0,
        "Every this many trials after n_init, evaluate the best-rated architecture once more "
        "under a new seed (0: never); for noisy objectives such as a few training epochs. "
        "Each trial then records the recommended architecture in its user attribute "
        "'recommended'.",
        low=0,
        high=MAX_TRIALS,
    )
    replicates: int = setting(
        2, "Evaluations beyond its first an architecture may get.", low=1, high=100
    )


def _problems(settings: Any, space: Space, n_objectives: int) -> list[str]:
    return space_problems("predictor", space)


ALGORITHM = ArchSamplerAlgorithm(
    name="predictor",
    description="Predictor-guided evolution for architecture choices (BANANAS, NPENAS): an "
    "ensemble of small MLPs on a one-hot encoding of the choices, fitted at each trial, "
    "picks among one-edit mutations of the best architectures by an upper confidence bound "
    "(mean + kappa * std) or expected improvement; "
    "random until n_init. Single objective; categorical parameters and integers of at most "
    "64 values.",
    settings=PredictorSettings,
    factory=lambda space, seed, **kw: PredictorSampler(fixed_space(space), seed=seed, **kw),
    multi_objective=False,
    problems=_problems,
)
