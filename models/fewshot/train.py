"""Meta-training: episodes from the meta-training classes, scored every epoch on fixed
episodes from the held-out meta-validation classes.

``meta_train`` is a generator like :func:`models.training.trainer.train`: an
:class:`EpochMetrics` per epoch (``val_episode_accuracy``: the mean query accuracy over the
meta-validation episodes; ``train_loss``: the mean meta-training query loss), then a
:class:`FewShotResult` with the best epoch's accuracy and its 95% interval's half-width
(``val_episode_ci95`` = 1.96 · std / √episodes).
"""

import math
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch.nn import functional as F

from models.data import Dataset
from models.families import build_model
from models.fewshot.config import FewShotConfig, split_classes
from models.fewshot.episodes import EpisodeSampler
from models.fewshot.methods import MetaModel, episode_logits
from models.training.results import EpochMetrics, NonFiniteLossError

Z95 = 1.96  # the normal quantile of a two-sided 95% interval


@dataclass(frozen=True)
class FewShotResult:
    metrics: dict[str, float]
    best_epoch: int


def build_meta_model(
    model_spec: Mapping[str, Any], input_shape: tuple[int, ...], cfg: FewShotConfig
) -> MetaModel:
    """The embedding (the catalog network with ``embedding_dim`` outputs) and its method."""
    embedding = build_model(dict(model_spec), input_shape, cfg.embedding_dim)
    return MetaModel(embedding, cfg)


def samplers(
    data: Dataset, cfg: FewShotConfig, device: str
) -> tuple[EpisodeSampler, EpisodeSampler]:
    """Meta-training and meta-validation samplers over every sample (both splits of the
    dataset), scaled with the meta-training classes' statistics.

    Raises:
        ValueError: too few classes for the ways, or too few samples of a class.
    """
    x = np.concatenate([data.x_train, data.x_val])
    y = np.concatenate([data.y_train, data.y_val])
    train_classes, val_classes = split_classes(cfg, data.n_classes)
    # One mean and scale over every input element: per-element scaling would blow up the
    # near-constant elements (an image's border) that carry no class and swamp the distances.
    seen = x[np.isin(y, train_classes)]
    shift, scale = float(seen.mean()), float(seen.std()) or 1.0
    xt = (torch.tensor(x, device=device) - shift) / scale
    shape = (cfg.ways, cfg.shots, cfg.queries)
    return EpisodeSampler(xt, y, train_classes, *shape), EpisodeSampler(xt, y, val_classes, *shape)


def evaluate(model: MetaModel, sampler: EpisodeSampler, n: int, seed: int) -> tuple[float, float]:
    """Mean query accuracy over ``n`` fixed episodes, and its 95% interval's half-width."""
    model.train(False)
    accs = []
    with torch.no_grad():
        for ep in sampler.fixed(n, seed):
            logits = episode_logits(model, ep, meta_train=False)
            accs.append(float((logits.argmax(dim=1) == ep.y_query).float().mean()))
    model.train(True)
    a = np.asarray(accs)
    return float(a.mean()), float(Z95 * a.std(ddof=1) / math.sqrt(len(a)))


def meta_train(
    model_spec: Mapping[str, Any], cfg: FewShotConfig, data: Dataset, seed: int, device: str = "cpu"
) -> Iterator[EpochMetrics | FewShotResult]:
    """Meta-train an embedding on ``data``'s meta-training classes (see the module docstring).

    Raises:
        ValueError: the episodes cannot be drawn (too few classes or samples).
        NonFiniteLossError: the meta-loss turned non-finite.
    """
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    train_s, val_s = samplers(data, cfg, device)
    model = build_meta_model(model_spec, data.info.input_shape, cfg).to(device)
    opt = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=cfg.lr)
    val_seed = seed + 7919  # the meta-validation episodes: fixed per trial seed
    best, best_epoch, best_ci = -1.0, 0, 0.0
    for epoch in range(1, cfg.epochs + 1):
        model.train(True)
        losses = []
        for _ in range(math.ceil(cfg.episodes_per_epoch / cfg.meta_batch)):
            opt.zero_grad(set_to_none=True)
            total = torch.zeros((), device=device)
            for _ in range(cfg.meta_batch):
                ep = train_s.sample(rng)
                total = total + F.cross_entropy(episode_logits(model, ep, True), ep.y_query)
            loss = total / cfg.meta_batch
            if not math.isfinite(loss.item()):
                raise NonFiniteLossError(f"non-finite loss at epoch {epoch}")
            loss.backward()  # type: ignore[no-untyped-call]
            opt.step()
            losses.append(loss.item())
        acc, ci = evaluate(model, val_s, cfg.val_episodes, val_seed)
        metrics = {"train_loss": float(np.mean(losses)), "val_episode_accuracy": acc}
        metrics["val_episode_ci95"] = ci
        yield EpochMetrics(epoch, metrics)
        if acc > best:
            best, best_epoch, best_ci = acc, epoch, ci
    final = {"val_episode_accuracy": best, "val_episode_ci95": best_ci}
    final["param_count"] = float(sum(p.numel() for p in model.parameters()))
    yield FewShotResult(final, best_epoch)
