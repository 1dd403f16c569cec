"""A trained trial's files in Optuna's artifact store, where optuna-dashboard lists and serves
them.

The scheduler writes a trial's model into ``<DATA_DIR>/artifacts/<study>/trial-<n>/``
(:func:`search.artifacts.write_artifacts`; the API serves it from there). The same files, and
the trial's learning curve as ``curve.csv``, are uploaded with
``optuna.artifacts.upload_artifact`` into a ``FileSystemArtifactStore`` at
``<DATA_DIR>/optuna-artifacts`` (:attr:`search.datadir.DataDir.optuna_artifacts`), which
``tuneforge dashboard`` serves: each upload is a trial system attribute
``artifacts:<id>`` and a file ``<id>`` in the store.

Optuna refuses a system attribute on a finished trial (``UpdateFinishedTrialError``), so a
trial's files are uploaded before it is told. A trial run again after its upload (its
scheduler died before telling it) writes its new files over the ones it uploaded then, under
the same ids. Deleting a study removes its files from the store (:func:`remove`).
"""

import contextlib
import csv
import json
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import optuna
from optuna.artifacts import FileSystemArtifactStore, upload_artifact
from optuna.artifacts.exceptions import ArtifactNotFound

from search import optuna_compat
from search.datadir import DataDir

CURVE_FILE = "curve.csv"
# Each file uploaded, with its media type: Python's guesses for .ts and .pt are wrong ones.
FILES = {
    "weights.pt": "application/octet-stream",
    "model.ts": "application/octet-stream",
    "spec.json": "application/json",
    CURVE_FILE: "text/csv",
}
_UPLOADED = "artifacts:"  # Optuna's key prefix of an upload's system attribute


def artifact_store(data_dir: DataDir) -> FileSystemArtifactStore:
    """The data directory's Optuna artifact store (its folder made if need be)."""
    data_dir.optuna_artifacts.mkdir(parents=True, exist_ok=True)
    return FileSystemArtifactStore(data_dir.optuna_artifacts)


def write_curve(path: Path, curve: Sequence[Mapping[str, Any]]) -> None:
    """A learning curve as CSV: a column ``epoch``, then one per metric (in the order the
    curve first names them), one row per epoch."""
    columns = list(dict.fromkeys(key for point in curve for key in point))
    columns = ["epoch", *(c for c in columns if c != "epoch")]
    with path.open("w", newline="") as f:
        writer = csv.DictWriter(f, columns)
        writer.writeheader()
        writer.writerows(curve)


def upload_trial(
    store: FileSystemArtifactStore,
    trial: optuna.Trial,
    folder: Path,
    curve: Sequence[Mapping[str, Any]],
) -> None:
    """Upload a running trial's model files from ``folder`` and its learning curve (written
    there as ``curve.csv``) to ``store``, for the trial."""
    write_curve(folder / CURVE_FILE, curve)
    earlier = _uploaded(optuna_compat.known_system_attrs(trial))
    for name, mimetype in FILES.items():
        path = folder / name
        if not path.is_file():
            continue
        if name in earlier:  # a run of this trial uploaded it before: replace the content
            with path.open("rb") as f:
                store.write(earlier[name], f)
            continue
        upload_artifact(
            artifact_store=store, file_path=str(path), study_or_trial=trial, mimetype=mimetype
        )


def _uploaded(system_attrs: Mapping[str, Any]) -> dict[str, str]:
    """The ids of a trial's uploads by file name, from its system attributes (Optuna stores
    each upload's metadata as a JSON text; optuna-dashboard's deletion leaves ``null``)."""
    found = {}
    for key, value in system_attrs.items():
        meta = json.loads(value) if key.startswith(_UPLOADED) and isinstance(value, str) else None
        if isinstance(meta, dict):
            found[str(meta["filename"])] = key.removeprefix(_UPLOADED)
    return found


def remove(store: FileSystemArtifactStore, artifact_ids: Iterable[str]) -> None:
    """Delete the files of ``artifact_ids`` from ``store`` (those already gone are skipped)."""
    for artifact_id in artifact_ids:
        with contextlib.suppress(ArtifactNotFound):
            store.remove(artifact_id)
