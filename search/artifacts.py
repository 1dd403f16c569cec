"""A trained model's files, written where users download them: weights, TorchScript, and the
exact spec that rebuilds it. The scheduler's process writes them (workers need no shared disk).
"""

import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from models.data import DatasetInfo
from search.document import task_document
from search.spec import StudySpec

USAGE = (
    "weights.pt is the state_dict of models.training.export.Exported(pre, net, post): raw "
    "inputs in, logits (classification) or targets in original units (regression) out; "
    "model.ts is the same module as TorchScript: torch.jit.load('model.ts')."
)


def data_facts(info: DatasetInfo) -> dict[str, Any]:
    """What the exported spec records of the data the model was trained on."""
    return {
        "task": info.task,
        "kind": info.kind,
        "input_shape": list(info.input_shape),
        "n_outputs": info.n_outputs,
    }


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
    dataset (:func:`data_facts`).
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
