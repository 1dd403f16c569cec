"""A few-shot task's settings (``task.fewshot``): the episodes, the method, the meta-training."""

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from models.fields import FieldErrors, check, describe, setting

METHODS = ("protonet", "maml")
MAX_EPISODE_SAMPLES = 4096  # ways * (shots + queries): one episode's batch, at most


@dataclass(frozen=True)
class FewShotConfig:
    """N-way K-shot episodes and how an embedding learns from them."""

    method: str = setting("protonet", "Prototypical networks or MAML.", choices=METHODS)
    ways: int = setting(5, "Classes per episode (N).", low=2, high=100)
    shots: int = setting(
        1, "Labelled examples per class in an episode's support set (K).", low=1, high=100
    )
    queries: int = setting(5, "Examples per class in an episode's query set.", low=1, high=100)
    embedding_dim: int = setting(
        64, "Width of the embedding: the units of the model's replaced head.", low=2, high=4096
    )
    val_classes: list[int] | None = setting(
        None,
        "Classes held out for meta-validation (default: the upper half of the classes).",
        low=0,
        high=1_000_000,
        searchable=False,
    )
    epochs: int = setting(10, "Meta-training epochs.", low=1, high=10_000)
    episodes_per_epoch: int = setting(100, "Meta-training episodes per epoch.", low=1, high=100_000)
    meta_batch: int = setting(4, "Episodes per meta-update.", low=1, high=256)
    lr: float = setting(1e-3, "Meta learning rate (Adam).", low=1e-8, high=10.0)
    inner_lr: float = setting(0.4, "MAML: step size of the inner loop.", low=1e-6, high=100.0)
    inner_steps: int = setting(1, "MAML: gradient steps on the support set.", low=1, high=50)
    first_order: bool = setting(
        False, "MAML: first-order (no second derivatives through the inner loop)."
    )
    val_episodes: int = setting(
        200, "Meta-validation episodes (fixed by the seed) per evaluation.", low=10, high=100_000
    )


def fewshot_fields() -> dict[str, dict[str, Any]]:
    return describe(FewShotConfig)


def parse_fewshot(values: Mapping[str, Any]) -> tuple[FewShotConfig | None, FieldErrors]:
    """Check ``task.fewshot`` and build its config (None when there are errors)."""
    cfg, errors = check(FewShotConfig, dict(values))
    if cfg is not None and cfg.ways * (cfg.shots + cfg.queries) > MAX_EPISODE_SAMPLES:
        msg = f"an episode holds ways * (shots + queries) samples; at most {MAX_EPISODE_SAMPLES}"
        return None, [("ways", msg)]
    return cfg, errors


def split_classes(cfg: FewShotConfig, n_classes: int) -> tuple[list[int], list[int]]:
    """Meta-training and meta-validation classes: disjoint, every class in one of them."""
    held = list(cfg.val_classes) if cfg.val_classes else list(range(n_classes // 2, n_classes))
    return [c for c in range(n_classes) if c not in held], held
