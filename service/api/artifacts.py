"""Trained-model files served to clients: which a trial has, and the file of each kind.

The scheduler writes ``<DATA_DIR>/artifacts/<optuna study>/trial-<n>/`` with ``weights.pt``
(state_dict), ``model.ts`` (TorchScript) and ``spec.json`` (what rebuilds the model); a
trial's ``artifact_uri`` record names the folder. Only files inside the artifact tree
are served, whatever the attribute says.
"""

from pathlib import Path
from typing import Literal

from optuna.trial import FrozenTrial

from search.attrs import trial_attr
from search.datadir import DataDir
from service.errors import NotFound

ArtifactKind = Literal["weights", "torchscript", "spec"]
FILES: dict[str, tuple[str, str]] = {
    "weights": ("weights.pt", "application/octet-stream"),
    "torchscript": ("model.ts", "application/octet-stream"),
    "spec": ("spec.json", "application/json"),
}


def available(trial: FrozenTrial, data_dir: DataDir) -> list[str]:
    """The artifact kinds a trial has on disk."""
    folder = _folder(trial, data_dir)
    if folder is None:
        return []
    return [kind for kind, (name, _) in FILES.items() if (folder / name).is_file()]


def artifact_file(trial: FrozenTrial, data_dir: DataDir, kind: str) -> tuple[Path, str]:
    """The file and media type of one artifact of a trial.

    Raises:
        NotFound: the trial has no such artifact (it did not complete, or was deleted).
    """
    folder = _folder(trial, data_dir)
    name, media_type = FILES[kind]
    if folder is None or not (folder / name).is_file():
        raise NotFound(f"trial {trial.number} has no {kind} artifact")
    return folder / name, media_type


def _folder(trial: FrozenTrial, data_dir: DataDir) -> Path | None:
    uri = trial_attr(trial, "artifact_uri")
    if not isinstance(uri, str):
        return None
    folder = Path(uri).resolve()
    return folder if data_dir.serves(folder) else None
