"""Population-based training (PBT and PB2) on Ray Tune, mirrored into Optuna.

A PBT study trains a *population* of networks side by side. Every ``perturbation_interval``
epochs each member checkpoints; the worst ``quantile_fraction`` of the population clones the
weights and optimizer state of a member of the best fraction (*exploit*) and trains on with
changed hyperparameters (*explore*). PBT resamples each parameter with
``resample_probability`` and otherwise scales a float or int by 0.8 or 1.2 (a categorical
keeps its value); PB2 picks new float and int values with a time-varying GP bandit (Ray Tune
2.60 fits it with scikit-learn). Both run as Ray Tune schedulers, one Tune driver per study
(design point 4).

The package, by job: :mod:`~search.pbt.settings` (the settings and the checks),
:mod:`~search.pbt.explore` (parameter values, the explore step), :mod:`~search.pbt.member`
(a member training in a Tune worker), :mod:`~search.pbt.mirror` (segments into Optuna),
:mod:`~search.pbt.driver` (the Tune driver), :mod:`~search.pbt.run` (the study's run).

What lands in Optuna (one trial per constant-hyperparameter segment of a member): params, the
objective at each of the member's epochs as intermediate values, its value at the segment's
last epoch; user attributes ``pbt_member``, ``pbt_segment``, ``pbt_parent`` (the member whose
checkpoint the segment started from), ``pbt_parent_trial``, ``pbt_exploit_epoch``,
``pbt_perturbation`` (param → [parent's value, new value]), ``pbt_epochs`` ([first, last]),
``pbt_method``, ``seed``; the records ``curve`` and, on a member's last segment,
``final_metrics``, ``grad_norms`` and ``artifact_uri`` (system attributes: :mod:`search.attrs`),
whose model files are uploaded to Optuna's artifact store too. Parameters that change the
network's shape are sampled once per member and inherited with the weights, never perturbed.
"""

from dataclasses import dataclass

from models.data import DatasetInfo
from search.algorithm import (
    AlgorithmKind,
    Env,
    FieldError,
    Run,
    StudyAlgorithm,
    StudyRef,
    at,
    proposes_nothing,
    trains_networks,
)
from search.pbt.run import PopulationRun
from search.pbt.settings import PB2Settings, PBTSettings, check_pbt
from search.spec import StudySpec, TrainTask


@dataclass(frozen=True)
class Population(StudyAlgorithm):
    """PBT or PB2: a population trained on Ray Tune (see the package docstring)."""

    name: str
    description: str
    settings: type
    kind: AlgorithmKind = "population"
    multi_objective: bool = False

    def check(self, spec: StudySpec, data: DatasetInfo | None) -> list[FieldError]:
        settings, errors = self.read_settings(spec.algorithm.settings)
        if settings is None:
            return errors
        if not isinstance(spec.task, TrainTask):  # a function or an external task
            return trains_networks(self.name, spec) + proposes_nothing(self.name, spec)
        errors = proposes_nothing(self.name, spec)
        if data is not None:  # the dataset could not be found: reported where it is named
            errors += at(("algorithm",), check_pbt(spec, settings, data))
        return errors

    def open(self, spec: StudySpec, study: StudyRef, env: Env) -> Run:
        settings = self.stored_settings(spec.algorithm.settings)
        assert isinstance(settings, PB2Settings)
        return PopulationRun(spec, study, env, settings)


ALGORITHMS = {
    "pbt": Population(
        "pbt",
        "Population-based training on Ray Tune: a population trains side by side; every "
        "perturbation_interval epochs the worst fraction clones the best members' weights "
        "and perturbs their hyperparameters. Each constant-hyperparameter segment is an "
        "Optuna trial with its lineage.",
        PBTSettings,
    ),
    "pb2": Population(
        "pb2",
        "Population-based bandits (PB2) on Ray Tune: PBT whose new hyperparameters come "
        "from a time-varying GP bandit instead of random perturbation; float and int "
        "parameters only.",
        PB2Settings,
    ),
}
