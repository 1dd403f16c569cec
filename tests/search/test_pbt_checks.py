"""The checks behind a 422 for PBT and PB2: what the population algorithms say of a spec they
cannot run (no parameter to perturb, too few epochs for two checkpoints, an objective measured
only at the end, several objectives, early stopping, searched epochs, conditional or
categorical parameters, bad settings), checked against the synthetic ``classification`` data.
No Ray runs here.
"""

from dataclasses import replace

import pytest

from models.data import DatasetInfo, dataset_info
from search.registry import study_algorithm
from search.spec import Condition, Objective, ParamSpec, StudySpec
from tests.search._pbt import LR, make_spec

INFO: DatasetInfo = dataset_info("classification", {"n_samples": 3000})


def check_pbt(spec: StudySpec) -> list[str]:
    """Every reason the population algorithm gives for refusing ``spec`` (on its data)."""
    return [e.msg for e in study_algorithm(spec.algorithm.name).check(spec, INFO)]


def test_check_pbt_accepts_a_valid_spec() -> None:
    assert check_pbt(make_spec()) == []
    assert check_pbt(make_spec(algorithm="pb2")) == []


@pytest.mark.parametrize(
    ("spec", "reason"),
    [
        (
            make_spec(space=(ParamSpec("model.activation", "categorical", choices=("relu",)),)),
            "pbt needs a float or int parameter to perturb; the space has none",
        ),
        (
            make_spec(space=(ParamSpec("model.width", "int", low=8, high=64),)),
            "pbt needs a float or int parameter it can perturb; model.width sets the "
            "network's shape, which a clone's weights must keep",
        ),
        (
            make_spec(epochs=3),
            "pbt needs a checkpointable task: members checkpoint every perturbation_interval "
            "(2) epochs and need two checkpoints, but training.epochs is 3",
        ),
        (
            make_spec(objectives=(Objective("mc_nll", "minimize"),)),
            "pbt compares members on an objective measured every epoch; "
            "mc_nll is measured at the end",
        ),
        (
            make_spec(
                objectives=(
                    Objective("val_loss", "minimize"),
                    Objective("val_f1_macro", "maximize"),
                )
            ),
            "pbt optimizes a single objective; this study has 2",
        ),
        (
            make_spec(training={"early_stopping_patience": 3}),
            "pbt trains every member all epochs: turn early stopping off",
        ),
        (
            make_spec(space=(LR, ParamSpec("training.epochs", "int", low=4, high=8))),
            "training.epochs cannot be searched with pbt",
        ),
        (
            make_spec(
                space=(
                    ParamSpec("training.optimizer", "categorical", choices=("sgd", "adam")),
                    replace(LR, when=(Condition("training.optimizer", values=("sgd",)),)),
                )
            ),
            "pbt keeps every parameter active during training; conditional parameters are not "
            "supported: training.lr",
        ),
        (
            make_spec(
                space=(LR, ParamSpec("training.optimizer", "categorical", choices=("sgd", "adam"))),
                algorithm="pb2",
            ),
            "pb2 models float and int parameters only; categorical: training.optimizer",
        ),
        (
            make_spec(settings={"quantile_fraction": 0.75}),
            "setting 'quantile_fraction' must be <= 0.5, got 0.75",
        ),
        (
            make_spec(settings={"population": 8}),
            "unknown setting 'population' for 'pbt'; valid: population_size, "
            "perturbation_interval, quantile_fraction, synch, checkpoints_to_keep, "
            "resample_probability",
        ),
    ],
    ids=[
        "no-numeric",
        "only-structural",
        "few-epochs",
        "final-only-objective",
        "two-objectives",
        "early-stopping",
        "searched-epochs",
        "conditional",
        "pb2-categorical",
        "quantile",
        "unknown-setting",
    ],
)
def test_check_pbt_names_why_a_spec_cannot_run(spec: StudySpec, reason: str) -> None:
    assert reason in check_pbt(spec)
