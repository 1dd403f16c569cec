"""PBT and PB2 on a real local Ray Tune, training real networks, mirrored into Optuna studies.

The PBT task is one where the best learning rate changes during training: on the synthetic
``classification`` data (3000 samples, 3 classes) plain SGD learns fastest early with a high
learning rate (around 1), which then leaves it bouncing around a high validation loss, while
a lower one keeps improving late. A population sampled over [0.01, 2] therefore gains from
cloning the leaders' weights and moving their learning rate. The studies are synchronous and
seeded, so their values repeat run after run. Every test here that runs a population shares
this module's Ray; ``run_pbt`` refusing a bad spec before it starts is here too.
"""

import os

os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")

import itertools
import json
import threading
import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import optuna
import pytest
import torch
from optuna.artifacts import FileSystemArtifactStore, get_all_artifact_meta
from optuna.trial import FrozenTrial, TrialState

from benchmarks import harness
from models.data import Dataset, load_dataset
from search.attrs import MAX_ATTR_JSON, trial_attr, trial_curve
from search.pbt.driver import run_pbt
from search.pbt.mirror import PBTOutcome
from search.pbt.settings import pb2_unavailable
from search.ray_runtime import connect, disconnect
from search.registry import study_algorithm
from search.spec import Budget, DatasetRef, ParamSpec, StudySpec, TrainTask
from tests.search._pbt import EPOCHS, LR, make_spec

POPULATION = 4


def new_study() -> optuna.Study:
    return optuna.create_study(direction="minimize")


@pytest.fixture(scope="module")
def local_ray() -> Iterator[None]:
    """A Ray head of this module's own, not the session's: Ray 2.60 can leak a placement
    group's CPUs when it is removed while being placed (ray-project/ray#64693), which Ray
    Tune does to a population's members at every perturbation. What leaks goes with it."""
    with harness.ray_head(num_cpus=2) as address:
        connect(address=address)
        try:
            yield
        finally:
            disconnect()


@pytest.fixture(scope="module")
def data() -> Dataset:
    return load_dataset("classification", 0.2, 0, {"n_samples": 3000})


Run = tuple[PBTOutcome, optuna.Study, Path]


def checked(spec: StudySpec) -> Any:
    """The spec's algorithm settings, checked as opening the study checks them."""
    settings, errors = study_algorithm(spec.algorithm.name).read_settings(spec.algorithm.settings)
    assert settings is not None, errors
    return settings


def run(spec: StudySpec, data: Dataset, folder: Path, **kwargs: Any) -> Run:
    study = new_study()
    outcome = run_pbt(
        spec,
        study,
        data,
        folder / "storage",
        checked(spec),
        threading.Event(),
        artifact_dir=folder / "artifacts",
        artifact_store=FileSystemArtifactStore(folder),  # the files beside the folders
        **kwargs,
    )
    return outcome, study, folder / "artifacts"


@pytest.fixture(scope="module")
def pbt(local_ray: None, data: Dataset, tmp_path_factory: pytest.TempPathFactory) -> Run:
    spec = make_spec(settings={"population_size": POPULATION, "synch": True})
    return run(spec, data, tmp_path_factory.mktemp("pbt"))


@pytest.fixture(scope="module")
def frozen_population(
    local_ray: None, data: Dataset, tmp_path_factory: pytest.TempPathFactory
) -> Run:
    """The same population (same seed, so the same initial learning rates and weights), with
    exploitation off: every member trains its initial learning rate to the end. Without
    exploits no member ever waits for another, so asynchronous mode gives the same values."""
    settings = {"population_size": POPULATION, "quantile_fraction": 0.0, "synch": False}
    spec = make_spec(settings=settings)
    return run(spec, data, tmp_path_factory.mktemp("frozen"))


def final_values(study: optuna.Study) -> list[float]:
    """The objective of every member at the last epoch."""
    return [
        t.value
        for t in study.trials
        if t.value is not None and t.user_attrs["pbt_epochs"][1] == EPOCHS
    ]


def by_number(study: optuna.Study) -> dict[int, FrozenTrial]:
    return {t.number: t for t in study.trials}


# -- PBT against the same population without perturbation -------------------------------------


def test_pbt_beats_the_population_without_perturbation(pbt: Run, frozen_population: Run) -> None:
    outcome, study, _ = pbt
    base_outcome, base, _ = frozen_population
    assert outcome.status == "completed", outcome.reason
    assert base_outcome.status == "completed", base_outcome.reason

    # Without exploitation: one segment per member, from scratch to the end.
    assert base_outcome.n_exploits == 0
    assert len(base.trials) == POPULATION
    assert all(t.user_attrs["pbt_parent"] is None for t in base.trials)
    assert sorted(t.user_attrs["pbt_member"] for t in base.trials) == list(range(POPULATION))
    # Same seed, same initial learning rates.
    assert sorted(t.params["training.lr"] for t in base.trials) == sorted(
        t.params["training.lr"] for t in study.trials if t.user_attrs["pbt_segment"] == 0
    )

    # With it: the bottom quarter cloned the top at each of the three perturbation points.
    exploits = [t for t in study.trials if t.user_attrs["pbt_parent"] is not None]
    assert outcome.n_exploits == len(exploits) == 3
    assert outcome.n_segments == len(study.trials) == POPULATION + 3
    for t in exploits:
        assert t.user_attrs["pbt_exploit_epoch"] in (2, 4, 6)
        old, new = t.user_attrs["pbt_perturbation"]["training.lr"]
        assert new == t.params["training.lr"] != old

    # Measured (seed 0): the frozen population's best ends at 0.38 (its lr 0.88 member had
    # 0.29 at epoch 6, then bounced), PBT's at 0.29 (a clone of the lr 0.55 leader).
    pbt_best, base_best = min(final_values(study)), min(final_values(base))
    assert len(final_values(study)) == len(final_values(base)) == POPULATION
    assert pbt_best < 0.95 * base_best, (pbt_best, base_best)
    best = by_number(study)[outcome.best_trial] if outcome.best_trial is not None else None
    assert best is not None and best.value == pbt_best


# -- what lands in Optuna ---------------------------------------------------------------------


def test_every_segment_is_an_optuna_trial_with_lineage_and_curve(pbt: Run) -> None:
    _, study, _ = pbt
    trials = by_number(study)
    assert all(t.state == TrialState.COMPLETE for t in trials.values())
    members: dict[int, list[FrozenTrial]] = {}
    for t in trials.values():
        members.setdefault(t.user_attrs["pbt_member"], []).append(t)
    assert sorted(members) == list(range(POPULATION))
    for segments in members.values():
        segments.sort(key=lambda t: t.user_attrs["pbt_segment"])
        assert [t.user_attrs["pbt_segment"] for t in segments] == list(range(len(segments)))
        expected_first = 1
        for t in segments:
            first, last = t.user_attrs["pbt_epochs"]
            assert first == expected_first  # a member's segments tile its epochs
            expected_first = last + 1
            epochs = list(range(first, last + 1))
            assert sorted(t.intermediate_values) == epochs
            assert t.value == t.intermediate_values[last]
            curve = trial_curve(t)
            assert [c["epoch"] for c in curve] == epochs
            assert [c["val_loss"] for c in curve] == [t.intermediate_values[e] for e in epochs]
            assert {"train_loss", "val_accuracy", "lr"} <= set(curve[0])
            assert all(c["lr"] == pytest.approx(t.params["training.lr"]) for c in curve)
            assert t.user_attrs["pbt_method"] == "pbt"
            assert t.user_attrs["seed"] == t.user_attrs["pbt_member"]
            parent = t.user_attrs["pbt_parent"]
            if t.user_attrs["pbt_segment"] == 0:
                assert first == 1 and parent is None
                assert t.user_attrs["pbt_exploit_epoch"] is None
                assert trial_attr(t, "pbt_perturbation") == {}
                assert t.user_attrs["pbt_parent_trial"] is None
                continue
            # A later segment starts from the checkpoint another member saved at the epoch
            # before, in the segment named as its parent trial, with the perturbed values.
            assert parent is not None and parent != t.user_attrs["pbt_member"]
            assert t.user_attrs["pbt_exploit_epoch"] == first - 1
            source = trials[t.user_attrs["pbt_parent_trial"]]
            assert source.user_attrs["pbt_member"] == parent
            src_first, src_last = source.user_attrs["pbt_epochs"]
            assert src_first <= first - 1 <= src_last
            for name, (old, new) in trial_attr(t, "pbt_perturbation").items():
                assert old == source.params[name] and new == t.params[name]
        assert segments[-1].user_attrs["pbt_epochs"][1] == EPOCHS


def test_final_segments_carry_the_trained_model(pbt: Run, data: Dataset) -> None:
    _, study, artifacts = pbt
    storage = study._storage
    final = [t for t in study.trials if t.user_attrs["pbt_epochs"][1] == EPOCHS]
    assert len(final) == POPULATION
    store = FileSystemArtifactStore(artifacts.parent)
    for t in final:
        assert {"param_count", "latency_ms", "val_loss"} <= set(trial_attr(t, "final_metrics"))
        assert max(len(json.dumps(v)) for v in t.user_attrs.values()) <= MAX_ATTR_JSON
        folder = Path(trial_attr(t, "artifact_uri"))
        assert folder == artifacts / f"trial-{t.number}"
        # Uploaded to Optuna's artifact store, for optuna-dashboard to list and serve.
        uploaded = {m.filename: m.artifact_id for m in get_all_artifact_meta(t, storage=storage)}
        assert sorted(uploaded) == ["curve.csv", "model.ts", "spec.json", "weights.pt"]
        for name, artifact_id in uploaded.items():
            with store.open_reader(artifact_id) as f:
                assert f.read() == (folder / name).read_bytes()
        spec = json.loads((folder / "spec.json").read_text())
        assert spec["params"] == t.params and spec["training"]["lr"] == t.params["training.lr"]
        spans = spec["pbt_schedule"]  # the learning rates that trained these weights, in order
        assert spans[0]["epochs"][0] == 1 and spans[-1]["epochs"][1] == EPOCHS
        assert all(a["epochs"][1] + 1 == b["epochs"][0] for a, b in itertools.pairwise(spans))
        assert spans[-1]["trial"] == t.number
        model = torch.jit.load(str(folder / "model.ts"))
        assert tuple(model(torch.tensor(data.x_val[:5])).shape) == (5, 3)
    others = [t for t in study.trials if t not in final]
    assert not [
        t
        for t in others
        if trial_attr(t, "artifact_uri") or get_all_artifact_meta(t, storage=storage)
    ]


# -- refused before starting -------------------------------------------------------------------


def test_run_pbt_refuses_a_bad_spec_before_starting(data: Dataset, tmp_path: Path) -> None:
    spec = make_spec(epochs=3)
    with pytest.raises(ValueError, match=r"needs a checkpointable task.*training\.epochs is 3"):
        run_pbt(spec, new_study(), data, tmp_path, checked(spec), threading.Event())
    assert not (tmp_path / "tune").exists()


# -- PB2 --------------------------------------------------------------------------------------


def test_pb2_runs_or_names_what_it_needs(local_ray: None, data: Dataset, tmp_path: Path) -> None:
    momentum = ParamSpec("training.momentum", "float", low=0.0, high=0.9)
    settings = {"population_size": 3, "synch": True}
    spec = make_spec(space=(LR, momentum), epochs=6, settings=settings, algorithm="pb2")
    if pb2_unavailable():
        with pytest.raises(ValueError, match="pb2 needs scikit-learn"):
            run(spec, data, tmp_path)
        return
    outcome, study, _ = run(spec, data, tmp_path)
    assert outcome.status == "completed", outcome.reason
    # The worst of three clones the best at epochs 2 and 4.
    assert outcome.n_exploits == 2
    assert len(study.trials) == 3 + 2
    for t in study.trials:
        assert t.user_attrs["pbt_method"] == "pb2"
        assert 0.01 <= t.params["training.lr"] <= 2.0
        assert 0.0 <= t.params["training.momentum"] <= 0.9
    exploits = sorted(
        (t for t in study.trials if t.user_attrs["pbt_parent"] is not None),
        key=lambda t: t.user_attrs["pbt_exploit_epoch"],
    )
    assert [t.user_attrs["pbt_exploit_epoch"] for t in exploits] == [2, 4]
    # At epoch 2 PB2 has no improvement to model yet and copies the parent's values; at
    # epoch 4 its GP bandit picks new ones (the learning rate on a log10 scale).
    assert exploits[0].user_attrs["pbt_perturbation"] == {}
    changed = exploits[1].user_attrs["pbt_perturbation"]
    assert changed and set(changed) <= {"training.lr", "training.momentum"}


# -- stopping ---------------------------------------------------------------------------------


def test_stop_ends_the_population_and_tells_every_segment(
    local_ray: None, data: Dataset, tmp_path: Path
) -> None:
    settings = {"population_size": 2, "synch": False}
    spec = make_spec(epochs=400, settings=settings)
    study = new_study()
    stop = threading.Event()
    result: list[PBTOutcome] = []
    thread = threading.Thread(
        target=lambda: result.append(
            run_pbt(spec, study, data, tmp_path / "storage", checked(spec), stop)
        )
    )
    thread.start()
    deadline = time.monotonic() + 60
    while not any(t.intermediate_values for t in study.get_trials(deepcopy=False)):
        assert time.monotonic() < deadline and thread.is_alive()
        time.sleep(0.1)
    stop.set()
    stopped_at = time.monotonic()
    thread.join(60)
    assert not thread.is_alive() and time.monotonic() - stopped_at < 30
    (outcome,) = result
    assert outcome.status == "stopped"
    assert outcome.reason == "stopped before the population finished training"
    trials = study.trials
    assert trials and all(t.state.is_finished() for t in trials)
    for t in trials:
        if t.state == TrialState.COMPLETE:
            assert t.user_attrs["pbt_cut_short"] == outcome.reason
            assert t.user_attrs["pbt_epochs"][1] < 400
        else:
            assert t.user_attrs["interrupted"] is True


def test_target_value_ends_the_study(local_ray: None, data: Dataset, tmp_path: Path) -> None:
    settings = {"population_size": 2, "synch": False}
    spec = make_spec(epochs=400, settings=settings)
    spec = replace(spec, budget=Budget(max_trials=100, target_value=0.45))
    outcome, study, _ = run(spec, data, tmp_path)
    assert outcome.status == "completed"
    assert outcome.reason.startswith("target value 0.45 reached by trial ")
    assert min(t.value for t in study.trials if t.value is not None) <= 0.45
    assert all(t.state.is_finished() for t in study.trials)


def test_a_failing_member_fails_its_segment_with_the_reason(
    local_ray: None, tmp_path: Path
) -> None:
    # Learning rates of thousands: the loss is NaN within the first epoch.
    lr = ParamSpec("training.lr", "float", low=1e3, high=1e4, log=True)
    settings = {"population_size": 2, "synch": False}
    spec = replace(
        make_spec(space=(lr,), epochs=4, settings=settings),
        task=TrainTask(
            dataset=DatasetRef("digits"),
            model={"family": "mlp", "hidden_layers": 1, "width": 16},
            training={"epochs": 4, "optimizer": "sgd", "momentum": 0.9},
        ),
    )
    outcome, study, _ = run(spec, load_dataset("digits"), tmp_path)
    reason = "NonFiniteLossError: non-finite loss at epoch 1"
    assert outcome.status == "failed"
    assert outcome.reason.startswith("every member failed; member ")
    assert outcome.reason.endswith(reason)
    assert [t.state for t in study.trials] == [TrialState.FAIL] * 2
    assert [t.user_attrs["fail_reason"] for t in study.trials] == [reason] * 2
    assert sorted(t.user_attrs["pbt_member"] for t in study.trials) == [0, 1]
