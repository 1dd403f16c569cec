"""Trained-model files on disk: where a trial's exports live and how they are served.

The scheduler writes ``<DATA_DIR>/artifacts/<optuna study>/trial-<n>/`` with ``weights.pt``
(state_dict), ``model.ts`` (TorchScript) and ``spec.json`` (what rebuilds the model); a
trial's ``artifact_uri`` user attribute names the folder.
"""

import shutil
from pathlib import Path
from typing import Literal

from optuna.trial import FrozenTrial

from service.errors import NotFound

ArtifactKind = Literal["weights", "torchscript", "spec"]
FILES: dict[str, tuple[str, str]] = {
    "weights": ("weights.pt", "application/octet-stream"),
    "torchscript": ("model.ts", "application/octet-stream"),
    "spec": ("spec.json", "application/json"),
}


def artifacts_root(data_dir: Path) -> Path:
    return (data_dir / "artifacts").resolve()


def available(trial: FrozenTrial, data_dir: Path) -> list[str]:
    """The artifact kinds a trial has on disk."""
    folder = _folder(trial, data_dir)
    if folder is None:
        return []
    return [kind for kind, (name, _) in FILES.items() if (folder / name).is_file()]


def artifact_file(trial: FrozenTrial, data_dir: Path, kind: str) -> tuple[Path, str]:
    """The file and media type of one artifact of a trial.

    Raises:
        NotFound: the trial has no such artifact (it did not complete, or was deleted).
    """
    folder = _folder(trial, data_dir)
    name, media_type = FILES[kind]
    if folder is None or not (folder / name).is_file():
        raise NotFound(f"trial {trial.number} has no {kind} artifact")
    return folder / name, media_type


def _folder(trial: FrozenTrial, data_dir: Path) -> Path | None:
    uri = trial.user_attrs.get("artifact_uri")
    if not isinstance(uri, str):
        return None
    folder = Path(uri).resolve()
    # Serve only from the artifact tree, whatever the attribute says.
    return folder if folder.is_relative_to(artifacts_root(data_dir)) else None


def checkpoints_dir(data_dir: Path, optuna_study_name: str) -> Path:
    """Where a study's running trials keep their newest checkpoint (``trial-<n>.pt``)."""
    return data_dir / "checkpoints" / optuna_study_name


def remove_study_artifacts(data_dir: Path, optuna_study_name: str) -> None:
    """Delete a study's trained models and checkpoints (its trials' and its population's)."""
    roots = ("artifacts", "checkpoints", "pbt")
    for root in (data_dir.joinpath(name).resolve() for name in roots):
        folder = root / optuna_study_name
        if folder.resolve().is_relative_to(root):
            shutil.rmtree(folder, ignore_errors=True)
