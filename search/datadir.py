"""The data directory: every path the service and its runs write, named once.

``<DATA_DIR>/`` holds ``tuneforge.db`` (the default SQLite database), ``admin.key`` (the first
admin API key, mode 0600), ``datasets/<id>.npz`` (uploads), ``artifacts/<study>/trial-<n>/``
(trained models; ``ensemble-<job>/``: ensembles of them), ``checkpoints/<study>/trial-<n>.pt``
(running trials' newest checkpoints), ``pbt/<study>/`` (a population study's Ray Tune
experiment) and ``optuna-artifacts/`` (Optuna's artifact store, every study's files in one
folder, named by artifact id: what optuna-dashboard lists; :mod:`search.optuna_artifacts`).
``<study>`` is the Optuna study's name.
"""

import re
import shutil
from dataclasses import dataclass
from pathlib import Path

_UPLOAD_ID = re.compile(r"^[0-9a-f]{12}$")
_STUDY_TREES = ("artifacts", "checkpoints", "pbt")


@dataclass(frozen=True)
class DataDir:
    """The paths under one data directory."""

    root: Path

    @property
    def database(self) -> Path:
        return self.root / "tuneforge.db"

    @property
    def admin_key(self) -> Path:
        return self.root / "admin.key"

    @property
    def uploads(self) -> Path:
        return self.root / "datasets"

    def upload(self, dataset_id: str) -> Path:
        """Where an upload's arrays live.

        Raises:
            ValueError: ``dataset_id`` is not 12 lowercase hex characters (a path stays
                inside the directory).
        """
        if not _UPLOAD_ID.match(dataset_id):
            raise ValueError(f"invalid dataset id {dataset_id!r}: expected 12 hex characters")
        return self.uploads / f"{dataset_id}.npz"

    @property
    def artifact_root(self) -> Path:
        return (self.root / "artifacts").resolve()

    @property
    def optuna_artifacts(self) -> Path:
        """Optuna's artifact store (``optuna.artifacts.FileSystemArtifactStore``)."""
        return self.root / "optuna-artifacts"

    def artifacts(self, study: str) -> Path:
        """A study's trained models, one folder per trial (``trial-<n>``)."""
        return self.root / "artifacts" / study

    def ensemble(self, study: str, job_id: int) -> Path:
        """An ensemble of a study's trials (``model.ts``, ``spec.json``), by its job's id."""
        return self.artifacts(study) / f"ensemble-{job_id}"

    def checkpoints(self, study: str) -> Path:
        """A study's running trials' newest checkpoints (``trial-<n>.pt``)."""
        return self.root / "checkpoints" / study

    def population(self, study: str) -> Path:
        """A population study's Ray Tune experiment and its members' checkpoints."""
        return self.root / "pbt" / study

    def serves(self, path: Path) -> bool:
        """Whether ``path`` lies in the artifact tree (what the API may send)."""
        return path.resolve().is_relative_to(self.artifact_root)

    def remove_study(self, study: str) -> None:
        """Delete a study's trained models and checkpoints (its trials' and its population's)."""
        for root in (self.root.joinpath(name).resolve() for name in _STUDY_TREES):
            folder = root / study
            if folder.resolve().is_relative_to(root):
                shutil.rmtree(folder, ignore_errors=True)
