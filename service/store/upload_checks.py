"""An upload's arrays checked for what a study needs, its task inferred, cast for storage.

Errors a client can fix raise :class:`~service.errors.SpecInvalid` located at the form field to
change: ``file`` (the content) or ``task`` (a task given that the labels cannot have).
"""

from typing import Any

import numpy as np

from models.data import Task, kind_of
from service.errors import SpecInvalid

MIN_SAMPLES = 10
MAX_CLASSES = 1000
MAX_FEATURES = 100_000  # values per sample
# Inferred classification: integer labels with at most this many distinct values.
MAX_INFERRED_CLASSES = 100
NUMERIC_KINDS = "biuf"  # bool, signed and unsigned int, float


def invalid(field: str, msg: str) -> SpecInvalid:
    """The error of an upload at form field ``field``."""
    return SpecInvalid([((field,), msg)])


def check_arrays(x: np.ndarray, y: np.ndarray, task: Task | None = None) -> dict[str, Any]:
    """Check features and labels, infer the task if not given, and cast them for storage.

    Returns:
        The keyword arguments of :class:`Upload` that describe the arrays: ``x``, ``y``,
        ``task``, ``kind``, ``input_shape``, ``n_outputs``, ``n_samples``.

    Raises:
        SpecInvalid: at ``file`` for arrays no task can use; at ``task`` for a given task the
            labels cannot have.
    """
    for key, a in (("x", x), ("y", y)):
        if a.dtype.kind not in NUMERIC_KINDS:
            raise invalid("file", f"{key} must be numeric (int, float or bool), got {a.dtype}")
    if not 2 <= x.ndim <= 4:
        raise invalid(
            "file",
            "x must have 2, 3 or 4 dimensions (samples, features), (samples, channels, length) "
            f"or (samples, channels, height, width); got shape {x.shape}",
        )
    if not 1 <= y.ndim <= 2:
        raise invalid("file", f"y must have 1 dimension, or 2 for several targets; got {y.shape}")
    if len(x) != len(y):
        raise invalid("file", f"x has {len(x)} samples but y has {len(y)}; they must match")
    if len(x) < MIN_SAMPLES:
        raise invalid("file", f"a dataset needs at least {MIN_SAMPLES} samples, got {len(x)}")
    n_features = int(np.prod(x.shape[1:]))
    if not 1 <= n_features <= MAX_FEATURES:
        raise invalid(
            "file", f"a sample must have 1 to {MAX_FEATURES} values, got {n_features} ({x.shape})"
        )
    if y.ndim == 2 and y.shape[1] < 1:
        raise invalid("file", f"y has no targets: shape {y.shape}")
    _check_finite(x, "x")
    _check_finite(y, "y")
    x32 = _to_float32(x, "x")
    # A label problem is the task's when the client chose the task, else the file's.
    loc = "task" if task is not None else "file"
    task = task or _infer_task(y)
    if task == "regression":
        y_out = _to_float32(y, "y")
        n_outputs = 1 if y.ndim == 1 else int(y.shape[1])
    else:
        y_out = _check_labels(y, task, loc)
        n_outputs = int(y_out.max()) + 1
    return {
        "x": x32,
        "y": y_out,
        "task": task,
        "kind": kind_of(x32),
        "input_shape": tuple(int(d) for d in x32.shape[1:]),
        "n_outputs": n_outputs,
        "n_samples": len(x32),
    }


def _check_finite(a: np.ndarray, key: str) -> None:
    if a.dtype.kind == "f":
        bad = ~np.isfinite(a)
        if bad.any():
            sample = int(np.argwhere(bad)[0][0])
            raise invalid(
                "file", f"{key} contains NaN or infinite values (the first at sample {sample})"
            )


def _to_float32(a: np.ndarray, key: str) -> np.ndarray:
    with np.errstate(over="ignore"):
        out = a.astype(np.float32)
    if a.dtype.kind == "f" and not np.isfinite(out).all():
        sample = int(np.argwhere(~np.isfinite(out))[0][0])
        raise invalid(
            "file",
            f"{key} has values beyond float32's range, ±{np.finfo(np.float32).max:.3g} "
            f"(the first at sample {sample})",
        )
    return out


def _integer_valued(y: np.ndarray) -> bool:
    return y.dtype.kind in "biu" or bool(np.all(y == np.round(y)))


def _infer_task(y: np.ndarray) -> Task:
    if y.ndim == 1 and _integer_valued(y):
        n_distinct = len(np.unique(y))
        if n_distinct <= MAX_INFERRED_CLASSES:
            return "binary" if n_distinct == 2 else "multiclass"
    return "regression"


def _check_labels(y: np.ndarray, task: Task, loc: str) -> np.ndarray:
    """Class indices 0..n-1, each class at least twice; ``loc`` takes task-level errors."""
    if y.ndim != 1:
        raise invalid(
            loc, f"{task} needs y of shape (samples,) holding class indices; got {y.shape}"
        )
    if not _integer_valued(y):
        example = y[y != np.round(y)][0]
        raise invalid(
            loc, f"{task} labels must be integers; y has {example:g} (use task=regression)"
        )
    if y.min() < 0:
        raise invalid("file", f"class labels must be 0 or more; y has {y.min():g}")
    if y.max() >= MAX_CLASSES:
        raise invalid(
            "file",
            f"at most {MAX_CLASSES} classes (labels 0..{MAX_CLASSES - 1}); y has {y.max():g}",
        )
    labels = y.astype(np.int64)
    counts = np.bincount(labels)
    if task == "binary" and len(counts) != 2:
        present = ", ".join(str(c) for c in np.flatnonzero(counts))
        raise invalid(loc, f"binary labels must be 0 and 1; y has classes {present}")
    if len(counts) < 2:
        raise invalid(
            "file", f"classification needs at least 2 classes; y has only class {labels[0]}"
        )
    missing = np.flatnonzero(counts == 0)
    if len(missing):
        raise invalid(
            "file",
            f"class labels must be 0..{len(counts) - 1} with every class present; "
            f"class {missing[0]} has no sample",
        )
    rare = np.flatnonzero(counts < 2)
    if len(rare):
        raise invalid(
            "file",
            f"every class needs at least 2 samples (the validation split is stratified); "
            f"class {rare[0]} has {counts[rare[0]]}",
        )
    return labels
