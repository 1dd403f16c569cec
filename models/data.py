"""Datasets a study can name: scikit-learn's bundled sets, synthetic generators, uploads, and
those installed packages add (``tuneforge.datasets`` entry points: :mod:`models.plugins`).

A study loads its dataset once (in the scheduler), splits it with a fixed seed and puts it into
Ray's object store; every trial reads the same raw arrays. Preprocessing (standardize, min-max)
is fitted per trial on the training split only, in :mod:`models.training`, so it can be searched.
"""

import functools
import importlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from functools import lru_cache
from typing import Any, Literal

import numpy as np

from models import graph_data
from models.fields import Declared, as_dict, check, declared, setting
from models.plugins import Plugin, entries

Task = Literal["multiclass", "binary", "regression"]
Kind = Literal["tabular", "image", "sequence", "graph"]

MAX_SYNTHETIC_SAMPLES = 50_000


@dataclass(frozen=True)
class DatasetInfo:
    """What a model needs to know of a dataset, without its arrays.

    ``input_shape`` is one sample's shape: ``(F,)`` tabular, ``(C, L)`` sequence,
    ``(C, H, W)`` image. ``n_outputs`` is the class count, or the target count for regression.
    """

    name: str
    task: Task
    kind: Kind
    input_shape: tuple[int, ...]
    n_outputs: int
    n_samples: int


@dataclass(frozen=True)
class Dataset:
    """A dataset split into train and validation; arrays are raw (not yet scaled).

    Shapes: ``x_*`` (N, *input_shape) float32; ``y_*`` (N,) int64 class indices, or
    (N, n_outputs) float32 targets for regression.
    """

    info: DatasetInfo
    x_train: np.ndarray
    y_train: np.ndarray
    x_val: np.ndarray
    y_val: np.ndarray

    @property
    def name(self) -> str:
        return self.info.name

    @property
    def task(self) -> Task:
        return self.info.task

    @property
    def n_features(self) -> int:
        return int(np.prod(self.info.input_shape))

    @property
    def n_classes(self) -> int:
        return self.info.n_outputs


Arrays = tuple[np.ndarray, np.ndarray]


def _sklearn_datasets() -> Any:
    # scikit-learn (and SciPy under it) takes over a second to import: only a process that
    # loads or generates a dataset pays it, not every process that handles datasets' arrays.
    return importlib.import_module("sklearn.datasets")


def _bundled(loader: str) -> Callable[..., Arrays]:
    def load() -> Arrays:
        bunch = getattr(_sklearn_datasets(), loader)()
        return np.asarray(bunch.data, np.float32), np.asarray(bunch.target)

    return load


def _digits_images() -> Arrays:
    x, y = _bundled("load_digits")()
    return x.reshape(-1, 1, 8, 8), y  # 8x8 grey images: one channel


def _classification(n_samples: int, n_features: int, n_classes: int, seed: int) -> Arrays:
    x, y = _sklearn_datasets().make_classification(
        n_samples=n_samples,
        n_features=n_features,
        n_informative=max(2, n_features // 2),
        n_classes=n_classes,
        random_state=seed,
    )
    return x.astype(np.float32), y


def _moons(n_samples: int, noise: float, seed: int) -> Arrays:
    x, y = _sklearn_datasets().make_moons(n_samples=n_samples, noise=noise, random_state=seed)
    return x.astype(np.float32), y


def _regression(n_samples: int, n_features: int, noise: float, seed: int) -> Arrays:
    x, y = _sklearn_datasets().make_regression(
        n_samples=n_samples, n_features=n_features, noise=noise, random_state=seed
    )
    return x.astype(np.float32), y.astype(np.float32)


def _waveforms(n_samples: int, length: int, noise: float, seed: int) -> Arrays:
    """Sequences (N, 1, length) of sine, square or sawtooth waves: the class is the shape."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 3, n_samples)
    t = np.linspace(0, 1, length, dtype=np.float32)[None, :]
    freq = rng.uniform(2, 6, (n_samples, 1)).astype(np.float32)
    phase = rng.uniform(0, 1, (n_samples, 1)).astype(np.float32)
    arg = freq * t + phase
    waves = np.stack(
        [np.sin(2 * np.pi * arg), np.sign(np.sin(2 * np.pi * arg)), 2 * (arg % 1) - 1], axis=1
    )
    x = waves[np.arange(n_samples), y] + rng.normal(0, noise, (n_samples, length))
    return x[:, None, :].astype(np.float32), y


_SAMPLES = "Samples generated."
_SEED = "Seed of the generator."


@dataclass(frozen=True)
class ClassificationOptions:
    n_samples: int = setting(1000, _SAMPLES, low=20, high=MAX_SYNTHETIC_SAMPLES)
    n_features: int = setting(20, "Features (half of them informative).", low=2, high=1000)
    n_classes: int = setting(3, "Classes.", low=2, high=20)
    seed: int = setting(0, _SEED, low=0, high=2**31 - 1)


@dataclass(frozen=True)
class MoonsOptions:
    n_samples: int = setting(1000, _SAMPLES, low=20, high=MAX_SYNTHETIC_SAMPLES)
    noise: float = setting(0.2, "Std of the Gaussian noise added.", low=0.0, high=5.0)
    seed: int = setting(0, _SEED, low=0, high=2**31 - 1)


@dataclass(frozen=True)
class RegressionOptions:
    n_samples: int = setting(1000, _SAMPLES, low=20, high=MAX_SYNTHETIC_SAMPLES)
    n_features: int = setting(10, "Features.", low=1, high=1000)
    noise: float = setting(10.0, "Std of the Gaussian noise on the target.", low=0.0, high=1000.0)
    seed: int = setting(0, _SEED, low=0, high=2**31 - 1)


@dataclass(frozen=True)
class WaveformOptions:
    n_samples: int = setting(1500, _SAMPLES, low=30, high=MAX_SYNTHETIC_SAMPLES)
    length: int = setting(64, "Steps of each sequence.", low=8, high=4096)
    noise: float = setting(0.3, "Std of the Gaussian noise added.", low=0.0, high=5.0)
    seed: int = setting(0, _SEED, low=0, high=2**31 - 1)


@dataclass(frozen=True)
class NoOptions:
    """A bundled dataset: nothing to set."""


# name → (loader, task, options); a loader's keyword arguments are its options.
_SOURCES: dict[str, tuple[Callable[..., Arrays], Task, type]] = {
    "digits": (_digits_images, "multiclass", NoOptions),
    "iris": (_bundled("load_iris"), "multiclass", NoOptions),
    "wine": (_bundled("load_wine"), "multiclass", NoOptions),
    "breast_cancer": (_bundled("load_breast_cancer"), "binary", NoOptions),
    "diabetes": (_bundled("load_diabetes"), "regression", NoOptions),
    "classification": (_classification, "multiclass", ClassificationOptions),
    "moons": (_moons, "binary", MoonsOptions),
    "regression": (_regression, "regression", RegressionOptions),
    "waveforms": (_waveforms, "multiclass", WaveformOptions),
    "motifs": (graph_data.motifs, "multiclass", graph_data.MotifOptions),
    "distances": (graph_data.distances, "binary", graph_data.DistanceOptions),
    "karate": (graph_data.karate, "binary", NoOptions),
    "sbm": (graph_data.block_model, "multiclass", graph_data.BlockModelOptions),
}
# Datasets of padded graphs (models.graph_data): rank 3 like sequences, so named here.
_GRAPH_SETS = frozenset({"motifs", "distances", "karate", "sbm"})


@dataclass(frozen=True)
class DatasetSource:
    """A dataset a package adds: its entry in ``tuneforge.datasets`` (:mod:`models.plugins`),
    named by the entry point.

    ``loader(**options)`` returns ``(x, y)``: features of shape (n, ...) (rank 2 tabular, 3
    sequence, 4 image) and labels (n,) or regression targets, made from data the package ships
    or generated, never downloaded. ``options`` is a dataclass of
    :func:`models.fields.setting` fields, the loader's keyword arguments with their bounds
    (:class:`NoOptions`: none). ``graph``: padded graphs (:mod:`models.graph_data`).
    """

    loader: Callable[..., Arrays]
    task: Task
    options: type = NoOptions
    graph: bool = False


@functools.cache
def _plugins() -> dict[str, tuple[DatasetSource, Plugin]]:
    return entries("datasets", DatasetSource, _SOURCES)


@functools.cache
def _sources() -> dict[str, tuple[Callable[..., Arrays], Task, type]]:
    added = {name: (s.loader, s.task, s.options) for name, (s, _) in _plugins().items()}
    return {**_SOURCES, **added}


def dataset_plugin(name: str) -> Plugin | None:
    """The installed package that adds dataset ``name`` (None: a built-in one, or unknown)."""
    found = _plugins().get(name)
    return None if found is None else found[1]


def _kind(name: str) -> Kind | None:
    added = _plugins().get(name)
    return "graph" if name in _GRAPH_SETS or (added is not None and added[0].graph) else None


def list_datasets() -> list[str]:
    """Names accepted by :func:`load_dataset`: bundled sets and synthetic generators."""
    return sorted(_sources())


def dataset_options(name: str) -> dict[str, Declared]:
    """The options a dataset accepts (none for the bundled sets)."""
    return declared(_source(name)[2])


def _source(name: str) -> tuple[Callable[..., Arrays], Task, type]:
    sources = _sources()
    if name not in sources:
        raise ValueError(f"unknown dataset {name!r}; valid: {', '.join(list_datasets())}")
    return sources[name]


def check_options(name: str, given: Mapping[str, Any]) -> dict[str, Any]:
    """Fill defaults and check a generator's options.

    Raises:
        ValueError: unknown dataset or option, wrong type, or out of bounds (the first).
    """
    options, errors = check(_source(name)[2], given, "option", f" for dataset {name!r}", named=True)
    if options is None:
        raise ValueError(errors[0][1])
    return as_dict(options)


def kind_of(x: np.ndarray) -> Kind:
    """Tabular (N, F), sequence (N, C, L) or image (N, C, H, W), by the array's rank."""
    kinds: dict[int, Kind] = {2: "tabular", 3: "sequence", 4: "image"}
    if x.ndim not in kinds:
        raise ValueError(f"x must have 2, 3 or 4 dimensions (N, ...), got shape {x.shape}")
    return kinds[x.ndim]


def from_arrays(
    name: str,
    x: np.ndarray,
    y: np.ndarray,
    task: Task,
    val_fraction: float,
    split_seed: int,
    kind: Kind | None = None,
) -> Dataset:
    """Split validated arrays into a :class:`Dataset` (stratified for classification); the
    kind is ``x``'s rank's (:func:`kind_of`) unless given (``graph``)."""
    x = np.asarray(x, np.float32)
    if task == "regression":
        y = np.asarray(y, np.float32).reshape(len(y), -1)
        n_outputs = y.shape[1]
    else:
        y = np.asarray(y).astype(np.int64)
        n_outputs = int(y.max()) + 1
    stratify = y if task != "regression" else None
    from sklearn.model_selection import train_test_split

    x_tr, x_va, y_tr, y_va = train_test_split(
        x, y, test_size=val_fraction, random_state=split_seed, stratify=stratify
    )
    info = DatasetInfo(name, task, kind or kind_of(x), tuple(x.shape[1:]), n_outputs, len(x))
    return Dataset(info, x_tr, y_tr, x_va, y_va)


def load_dataset(
    name: str,
    val_fraction: float = 0.2,
    split_seed: int = 0,
    options: Mapping[str, Any] | None = None,
) -> Dataset:
    """Load a bundled or synthetic dataset with a fixed validation split.

    Raises:
        ValueError: unknown ``name`` (the message lists the valid names) or bad options.
    """
    loader, task, _ = _source(name)
    x, y = loader(**check_options(name, options or {}))
    return from_arrays(name, x, y, task, val_fraction, split_seed, _kind(name))


# A synthetic dataset's metadata comes from a sample this small, generated with the same
# options (the generator's own checks included): checking a spec never generates the data.
_PROBE_SAMPLES = 200


@lru_cache(maxsize=64)
def _info(name: str, options: tuple[tuple[str, Any], ...]) -> DatasetInfo:
    given = dict(options)
    n_samples = given.get("n_samples")
    if n_samples is None or n_samples <= _PROBE_SAMPLES:
        return load_dataset(name, options=given).info
    loader, task, _ = _source(name)
    x, y = loader(**check_options(name, {**given, "n_samples": _PROBE_SAMPLES}))
    probe = from_arrays(name, x, y, task, 0.2, 0, _kind(name)).info
    return replace(probe, n_samples=int(n_samples))


def dataset_info(name: str, options: Mapping[str, Any] | None = None) -> DatasetInfo:
    """A dataset's metadata (cached), for validating a spec before anything runs."""
    return _info(name, tuple(sorted(check_options(name, options or {}).items())))


# -- class subsets (a dataset's ``classes``: digits 0-4 to pre-train, 5-9 to fine-tune) ------

MAX_CLASSES = 10_000  # the longest class list a study may name


def classes_error(classes: tuple[int, ...], info: DatasetInfo) -> str | None:
    """Why ``classes`` cannot select a subset of ``info``'s classes (None: it can)."""
    if info.task == "regression":
        return f"a class subset needs class labels; dataset {info.name!r} is regression"
    unknown = [c for c in classes if not 0 <= c < info.n_outputs]
    if unknown:
        return f"class {unknown[0]} is not one of {info.name!r}'s 0..{info.n_outputs - 1}"
    if len(set(classes)) != len(classes):
        return "each class may be named once"
    if len(classes) < 2:
        return "a class subset needs at least 2 classes"
    return None


def subset_info(info: DatasetInfo, classes: tuple[int, ...] | None) -> DatasetInfo:
    """What a model sees of the subset: ``len(classes)`` outputs (binary when 2 of a binary
    set; a subset of a multiclass set stays multiclass). The sample count is an upper bound."""
    return info if classes is None else replace(info, n_outputs=len(classes))


def subset_arrays(x: np.ndarray, y: np.ndarray, classes: tuple[int, ...]) -> Arrays:
    """The samples of ``classes`` only, relabelled ``0..k-1`` in the order given."""
    table = np.full(int(max(int(y.max()), *classes)) + 1, -1, np.int64)
    table[list(classes)] = np.arange(len(classes))
    keep = table[y] >= 0
    return x[keep], table[y[keep]]


def subset(data: Dataset, classes: tuple[int, ...] | None) -> Dataset:
    """``data`` restricted to ``classes`` (None: all), each split on its own, so the fixed
    validation split of the whole set stays stratified."""
    if classes is None:
        return data
    x_tr, y_tr = subset_arrays(data.x_train, data.y_train, classes)
    x_va, y_va = subset_arrays(data.x_val, data.y_val, classes)
    info = replace(subset_info(data.info, classes), n_samples=len(x_tr) + len(x_va))
    return Dataset(info, x_tr, y_tr, x_va, y_va)
