"""A trial's downloadable files: spec.json states the exported module's input and output, and the
model.ts written beside it takes exactly that input and returns exactly that output."""

import json
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from models.data import load_dataset
from search.artifacts import USAGE, data_facts, model_io, write_artifacts
from search.spec import (
    AlgorithmSpec,
    Budget,
    DatasetRef,
    Objective,
    Resources,
    StudySpec,
    TrainTask,
)
from search.trials.events import Finished
from search.trials.train import TRAIN, train_events

MLP = {"family": "mlp", "width": 8, "hidden_layers": 1}
CNN = {"family": "cnn", "width": 8}
DIGITS_INPUT = {
    "shape": ["batch", 1, 8, 8],
    "dtype": "float32",
    "axes": "batch, channels, height, width",
    "preprocessing": "standardize",
    "note": "Raw values, as in the dataset. Scaling: inside the module: (x - pre.shift) / "
    "pre.scale, the mean and standard deviation of each input element on the training split.",
}
DIGITS_OUTPUT = {
    "shape": ["batch", 10],
    "dtype": "float32",
    "values": "logits",
    "classes": list(range(10)),
    "note": "One logit per class, column k for the k-th of the classes listed: argmax gives the "
    "class, softmax the probabilities.",
}


def export(tmp_path: Path, dataset: str, model: dict[str, Any], **training: Any) -> Path:
    """One epoch of a trial, its files written as the study loop writes them."""
    task = TRAIN.complete(TrainTask(DatasetRef(dataset), model, {"epochs": 1, **training}))
    assert isinstance(task, TrainTask)
    spec = StudySpec(
        name="artifacts",
        objectives=(Objective("val_loss", "minimize"),),
        algorithm=AlgorithmSpec("random", {}),
        search_space=(),
        budget=Budget(max_trials=1),
        parallelism=1,
        resources=Resources(cpu=1),
        task=task,
    )
    data = load_dataset(dataset)
    *_, done = train_events(data, task.model, task.training, 0, "cpu", ("val_loss", "minimize"))
    assert isinstance(done, Finished) and done.state_dict and done.torchscript
    record = {"trial": 0, "params": {}, "seed": 0, "metrics": done.metrics}
    folder = tmp_path / "trial-0"
    write_artifacts(folder, done.state_dict, done.torchscript, spec, record, data_facts(data.info))
    return folder


def load(folder: Path) -> tuple[dict[str, Any], torch.jit.ScriptModule]:
    with warnings.catch_warnings():  # torch.jit.load is deprecated upstream, still works
        warnings.simplefilter("ignore")
        model = torch.jit.load(str(folder / "model.ts"))
    return json.loads((folder / "spec.json").read_text()), model


def sized(shape: list[Any], batch: int) -> list[int]:
    return [batch if d == "batch" else int(d) for d in shape]


@pytest.mark.parametrize("model", [MLP, CNN], ids=["mlp", "cnn"])
def test_digits_models_take_raw_images_and_return_ten_logits(
    tmp_path: Path, model: dict[str, Any]
) -> None:
    spec, scripted = load(export(tmp_path, "digits", model))

    assert spec["input"] == DIGITS_INPUT and spec["output"] == DIGITS_OUTPUT
    assert spec["usage"] == USAGE and "input.shape" in USAGE and "output.shape" in USAGE
    # Exactly the stated shape and dtype goes in, exactly the stated shape comes out.
    x = torch.zeros(sized(spec["input"]["shape"], 3), dtype=torch.float32)
    with torch.no_grad():
        y = scripted(x)
    assert list(y.shape) == sized(spec["output"]["shape"], 3) and y.dtype == torch.float32
    # The images flattened (64 features, as sklearn's digits come) do not fit.
    with pytest.raises(RuntimeError):
        scripted(torch.zeros(3, 64))
    # Raw images, as the dataset holds them, score what the trial reported: the module scales
    # its inputs itself.
    data = load_dataset("digits")
    with torch.no_grad():
        labels = scripted(torch.tensor(data.x_val)).argmax(1).numpy()
    assert float((labels == data.y_val).mean()) == pytest.approx(
        spec["metrics"]["val_accuracy"], abs=1e-6
    )


@pytest.mark.parametrize(
    ("dataset", "training", "shape", "values"),
    [
        ("breast_cancer", {}, ["batch", 1], "logit"),  # binary: bce by default
        ("breast_cancer", {"loss": "cross_entropy"}, ["batch", 2], "logits"),
        ("diabetes", {"preprocess": "minmax"}, ["batch", 1], "targets"),
    ],
)
def test_tabular_models_state_their_features_and_outputs(
    tmp_path: Path, dataset: str, training: dict[str, Any], shape: list[Any], values: str
) -> None:
    spec, scripted = load(export(tmp_path, dataset, MLP, **training))
    data = load_dataset(dataset)

    features = data.x_val.shape[1]
    assert spec["input"]["shape"] == ["batch", features]
    assert spec["input"]["axes"] == "batch, features"
    assert spec["input"]["preprocessing"] == training.get("preprocess", "standardize")
    assert (spec["output"]["shape"], spec["output"]["values"]) == (shape, values)
    assert ("classes" in spec["output"]) == (values != "targets")
    with torch.no_grad():
        y = scripted(torch.zeros(sized(spec["input"]["shape"], 5), dtype=torch.float32))
        raw = scripted(torch.tensor(data.x_val)).numpy()
    assert list(y.shape) == sized(spec["output"]["shape"], 5) and y.dtype == torch.float32
    if values == "targets":  # original units: the reported RMSE, from raw features
        rmse = float(np.sqrt(((raw - data.y_val) ** 2).mean()))
        assert rmse == pytest.approx(spec["metrics"]["val_rmse"], rel=1e-4)


def test_a_class_subset_names_the_dataset_s_classes_of_its_outputs() -> None:
    """A task on digits 5 to 9 (``task.dataset.classes``) has five outputs: column k is the
    dataset's class 5 + k, as its spec says."""
    facts = data_facts(load_dataset("digits").info, (5, 6, 7, 8, 9))
    assert facts["n_outputs"] == 5 and facts["classes"] == [5, 6, 7, 8, 9]
    output = model_io(facts, {})["output"]
    assert output["shape"] == ["batch", 5] and output["classes"] == [5, 6, 7, 8, 9]


def test_a_file_is_written_whole_or_not_at_all(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Issue 15: a temporary file renamed over the old one; a write that fails midway leaves
    the previous file as it was and no partial file behind."""
    from search import artifacts

    target = tmp_path / "spec.json"
    artifacts._write(target, b"old")
    real = Path.write_bytes

    def broken(path: Path, data: bytes) -> int:
        real(path, data[:1])  # part of it reached the disk, then the write failed
        raise OSError("disk full")

    monkeypatch.setattr(Path, "write_bytes", broken)
    with pytest.raises(OSError, match="disk full"):
        artifacts._write(target, b"new content")
    monkeypatch.undo()
    assert target.read_bytes() == b"old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["spec.json"]
    artifacts._write(target, b"new content")
    assert target.read_bytes() == b"new content"
