"""Few-shot meta-learning: N-way K-shot episodes, prototypical networks and MAML over any
embedding family of the catalog (:mod:`models.fewshot.train`)."""

from models.fewshot.config import FewShotConfig, fewshot_fields, parse_fewshot, split_classes
from models.fewshot.episodes import Episode, EpisodeSampler
from models.fewshot.train import FewShotResult, meta_train

__all__ = [
    "Episode",
    "EpisodeSampler",
    "FewShotConfig",
    "FewShotResult",
    "fewshot_fields",
    "meta_train",
    "parse_fewshot",
    "split_classes",
]
