"""A trained trial's files in Optuna's artifact store (``search/optuna_artifacts.py``): listed
for the trial as optuna-dashboard lists them, downloadable byte for byte, and removable."""

import csv
from pathlib import Path

import optuna
import pytest
from optuna.artifacts import download_artifact, get_all_artifact_meta
from optuna.exceptions import UpdateFinishedTrialError

from search import optuna_artifacts, optuna_compat
from search.datadir import DataDir

CURVE = [
    {"epoch": 1, "train_loss": 0.9, "val_accuracy": 0.5},
    {"epoch": 2, "train_loss": 0.4, "val_accuracy": 0.8, "lr": 0.01},
]


def model_folder(root: Path, marker: bytes) -> Path:
    """A trial's model folder as ``search.artifacts.write_artifacts`` leaves it."""
    folder = root / "artifacts" / "study" / "trial-0"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "weights.pt").write_bytes(b"weights" + marker)
    (folder / "model.ts").write_bytes(b"torchscript" + marker)
    (folder / "spec.json").write_bytes(b'{"trial": 0}')
    return folder


@pytest.fixture
def study(tmp_path: Path) -> optuna.Study:
    url = f"sqlite:///{tmp_path / 'o.db'}"
    optuna.create_study(storage=url, study_name="s")
    return optuna.load_study(storage=url, study_name="s")  # under Optuna's cache, as run


def test_a_trials_files_and_curve_are_uploaded_for_it(study: optuna.Study, tmp_path: Path) -> None:
    store = optuna_artifacts.artifact_store(DataDir(tmp_path))
    assert (tmp_path / "optuna-artifacts").is_dir()
    trial = study.ask()
    folder = model_folder(tmp_path, b"1")
    optuna_artifacts.upload_trial(store, trial, folder, CURVE)
    study.tell(trial, 1.0)

    frozen = study.trials[0]
    metas = {m.filename: m for m in get_all_artifact_meta(frozen, storage=study._storage)}
    assert sorted(metas) == ["curve.csv", "model.ts", "spec.json", "weights.pt"]
    assert {name: m.mimetype for name, m in metas.items()} == optuna_artifacts.FILES
    for name, meta in metas.items():
        out = tmp_path / "download" / name
        out.parent.mkdir(exist_ok=True)
        download_artifact(artifact_store=store, artifact_id=meta.artifact_id, file_path=str(out))
        assert out.read_bytes() == (folder / name).read_bytes()
    with (folder / "curve.csv").open() as f:
        rows = list(csv.DictReader(f))
    assert list(rows[0]) == ["epoch", "train_loss", "val_accuracy", "lr"]
    assert rows[1] == {"epoch": "2", "train_loss": "0.4", "val_accuracy": "0.8", "lr": "0.01"}
    assert rows[0]["lr"] == ""


def test_a_trial_run_again_replaces_its_uploads_under_the_same_ids(
    study: optuna.Study, tmp_path: Path
) -> None:
    store = optuna_artifacts.artifact_store(DataDir(tmp_path))
    first = study.ask()
    optuna_artifacts.upload_trial(store, first, model_folder(tmp_path, b"1"), CURVE)
    before = {m.filename: m.artifact_id for m in get_all_artifact_meta(first)}
    # Its scheduler died before the tell: the next one resumes it through a new handle.
    again = optuna_compat.trial_of(study, optuna_compat.trial_id_of(first))
    folder = model_folder(tmp_path, b"2")
    optuna_artifacts.upload_trial(store, again, folder, CURVE[:1])
    after = {m.filename: m.artifact_id for m in get_all_artifact_meta(again)}
    assert after == before
    assert sorted(p.name for p in (tmp_path / "optuna-artifacts").iterdir()) == sorted(
        after.values()
    )
    with store.open_reader(after["weights.pt"]) as f:
        assert f.read() == b"weights2"
    with store.open_reader(after["curve.csv"]) as f:
        assert f.read().decode().splitlines() == ["epoch,train_loss,val_accuracy", "1,0.9,0.5"]


def test_a_finished_trial_takes_no_upload(study: optuna.Study, tmp_path: Path) -> None:
    """Why the scheduler uploads before it tells the trial."""
    store = optuna_artifacts.artifact_store(DataDir(tmp_path))
    trial = study.ask()
    study.tell(trial, 1.0)
    with pytest.raises(UpdateFinishedTrialError):
        optuna_artifacts.upload_trial(store, trial, model_folder(tmp_path, b"1"), CURVE)


def test_remove_deletes_the_files_and_skips_those_already_gone(
    study: optuna.Study, tmp_path: Path
) -> None:
    store = optuna_artifacts.artifact_store(DataDir(tmp_path))
    trial = study.ask()
    optuna_artifacts.upload_trial(store, trial, model_folder(tmp_path, b"1"), CURVE)
    ids = [m.artifact_id for m in get_all_artifact_meta(trial)]
    optuna_artifacts.remove(store, [*ids, "0000-gone"])
    assert list((tmp_path / "optuna-artifacts").iterdir()) == []
