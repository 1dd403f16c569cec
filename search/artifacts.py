"""A trained model's files, written where users download them: weights, TorchScript, and the
exact spec that rebuilds it. The scheduler's process writes them (workers need no shared disk).
"""

import json
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from models.data import DatasetInfo
from models.training.config import TrainConfig, loss_for
from search.document import task_document
from search.spec import StudySpec

USAGE = (
    "model.ts is TorchScript: model = torch.jit.load('model.ts'); y = model(x), where x is a "
    "float32 tensor of the shape spec.json's input.shape gives (its first dimension is the "
    "batch) holding raw values, as in the dataset: the module applies its input scaling "
    "(input.preprocessing) itself. y has output.shape: logits per class, column k for class "
    "label k (classification; output.classes), or the targets in their original units "
    "(regression). weights.pt is the state_dict of the same module, "
    "models.training.export.Exported(pre, net, post)."
)

# One sample's axes, by the dataset's kind (models.data.DatasetInfo.input_shape).
_AXES = {
    "tabular": "batch, features",
    "sequence": "batch, channels, length",
    "image": "batch, channels, height, width",
    "graph": "batch, nodes, columns (mask, target, node features, adjacency row)",
}
_SCALING = {
    "standardize": "inside the module: (x - pre.shift) / pre.scale, the mean and standard "
    "deviation of each input element on the training split",
    "minmax": "inside the module: (x - pre.shift) / pre.scale, the minimum and the range "
    "(max - min) of each input element on the training split",
    "none": "none: the module takes the values as they are",
}


def data_facts(info: DatasetInfo, classes: Sequence[int] | None = None) -> dict[str, Any]:
    """What the exported spec records of the data the model was trained on; ``classes``: the
    subset of the dataset's classes a task trained on (``task.dataset.classes``), column k of
    the output then being the dataset's class ``classes[k]``."""
    facts: dict[str, Any] = {
        "task": info.task,
        "kind": info.kind,
        "input_shape": list(info.input_shape),
        "n_outputs": info.n_outputs if classes is None else len(classes),
    }
    if classes is not None:
        facts["classes"] = list(classes)
    return facts


def model_io(data: Mapping[str, Any], training: Mapping[str, Any]) -> dict[str, Any]:
    """What the exported module takes and returns: spec.json's ``input`` and ``output``.

    Args:
        data: the dataset's facts (:func:`data_facts`).
        training: the trial's training fields (its ``loss`` and ``preprocess``; defaults where
            absent).
    """
    defaults = TrainConfig()
    preprocess = str(training.get("preprocess", defaults.preprocess))
    task, n = data["task"], int(data["n_outputs"])
    inputs = {
        "shape": ["batch", *data["input_shape"]],
        "dtype": "float32",
        "axes": _AXES[data["kind"]],
        "preprocessing": preprocess,
        "note": f"Raw values, as in the dataset. Scaling: {_SCALING[preprocess]}.",
    }
    output: dict[str, Any]
    if task == "regression":
        output = {
            "shape": ["batch", n],
            "dtype": "float32",
            "values": "targets",
            "note": f"The {'target' if n == 1 else f'{n} targets'} in original units: the "
            "module undoes the target scaling it trained with.",
        }
    elif loss_for(str(training.get("loss", defaults.loss)), task) == "bce":
        output = {
            "shape": ["batch", 1],
            "dtype": "float32",
            "values": "logit",
            "classes": [0, 1],
            "note": "The logit of class 1: sigmoid gives its probability; above 0 predicts 1.",
        }
    else:
        output = {
            "shape": ["batch", n],
            "dtype": "float32",
            "values": "logits",
            "classes": list(data.get("classes", range(n))),
            "note": "One logit per class, column k for the k-th of the classes listed: argmax "
            "gives the class, softmax the probabilities.",
        }
    return {"input": inputs, "output": output}


def write_artifacts(
    folder: Path,
    weights: bytes,
    torchscript: bytes,
    spec: StudySpec,
    record: Mapping[str, Any],
    data: Mapping[str, Any],
) -> None:
    """Write ``weights.pt``, ``model.ts`` and ``spec.json`` into ``folder``.

    ``record`` holds the trial's ``trial``, ``params``, ``seed`` and ``metrics`` (and whatever
    else the run adds, e.g. a population member's ``pbt_schedule``); ``data`` the facts of the
    dataset (:func:`data_facts`). spec.json states the model's ``input`` and ``output``
    (:func:`model_io`) and how to use the files (``usage``).
    """
    folder.mkdir(parents=True, exist_ok=True)
    _write(folder / "weights.pt", weights)
    _write(folder / "model.ts", torchscript)
    task = task_document(spec.task.with_params(record["params"]))
    export = {
        "trial": record["trial"],
        "params": record["params"],
        "seed": record["seed"],
        "model": task.get("model"),
        "training": task.get("training"),
        "dataset": {**task.get("dataset", {}), **data},
        **model_io(data, task.get("training", {})),
        "metrics": record["metrics"],
        **{k: v for k, v in record.items() if k not in ("trial", "params", "seed", "metrics")},
        "usage": record.get("usage", USAGE),
    }
    _write(folder / "spec.json", json.dumps(export, indent=2, default=str).encode())


def _write(path: Path, content: bytes) -> None:
    """Write a file whole or not at all: a reader (the artifact route, a download) sees the
    previous file or the new one, never a part."""
    partial = path.with_name(f".{path.name}.partial")
    try:
        partial.write_bytes(content)
        os.replace(partial, path)
    except BaseException:
        partial.unlink(missing_ok=True)
        raise
