"""Datasets a study can name: scikit-learn's bundled sets, split once and standardized.

A study loads its dataset once (in the scheduler) and puts it into Ray's object store; every
trial reads the same arrays, so the split is identical across trials by construction.
"""

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
from sklearn import datasets as skd
from sklearn.model_selection import train_test_split


@dataclass(frozen=True)
class Dataset:
    """A classification dataset, already split and standardized.

    Shapes: ``x_*`` (N, n_features) float32, ``y_*`` (N,) int64 class indices.
    """

    name: str
    x_train: np.ndarray
    y_train: np.ndarray
    x_val: np.ndarray
    y_val: np.ndarray
    n_classes: int

    @property
    def n_features(self) -> int:
        return int(self.x_train.shape[1])


_LOADERS: dict[str, Callable[..., Any]] = {
    "digits": skd.load_digits,
    "iris": skd.load_iris,
    "wine": skd.load_wine,
    "breast_cancer": skd.load_breast_cancer,
}


def list_datasets() -> list[str]:
    """Names accepted by :func:`load_dataset`."""
    return sorted(_LOADERS)


def load_dataset(name: str, val_fraction: float = 0.2, split_seed: int = 0) -> Dataset:
    """Load a bundled dataset with a fixed, stratified validation split.

    Features are standardized with the training split's mean and std only, so no validation
    statistics leak into training.

    Raises:
        ValueError: unknown ``name``; the message lists the valid names.
    """
    if name not in _LOADERS:
        raise ValueError(f"unknown dataset {name!r}; valid: {', '.join(list_datasets())}")
    bunch = _LOADERS[name]()
    x = np.asarray(bunch.data, dtype=np.float32)
    y = np.asarray(bunch.target, dtype=np.int64)
    x_tr, x_va, y_tr, y_va = train_test_split(
        x, y, test_size=val_fraction, random_state=split_seed, stratify=y
    )
    mean = x_tr.mean(axis=0)
    std = x_tr.std(axis=0)
    std[std == 0] = 1.0  # constant pixels (digits' borders) would divide by zero
    return Dataset(
        name=name,
        x_train=((x_tr - mean) / std).astype(np.float32),
        y_train=y_tr,
        x_val=((x_va - mean) / std).astype(np.float32),
        y_val=y_va,
        n_classes=int(y.max()) + 1,
    )
