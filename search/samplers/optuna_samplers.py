"""Optuna's samplers registered under tuneforge's algorithm names."""

from optuna.samplers import RandomSampler, TPESampler

from search.registry import Algorithm, Setting, register

_SEED = Setting(
    "seed", int, None, "Random seed; fixed seeds make a study's proposals repeatable.", minimum=0
)

register(
    Algorithm(
        name="random",
        kind="sampler",
        description="Independent uniform sampling of every parameter.",
        settings=(_SEED,),
        factory=lambda seed: RandomSampler(seed=seed),
    )
)

register(
    Algorithm(
        name="tpe",
        kind="sampler",
        description="Tree-structured Parzen Estimator (Bayesian optimization).",
        settings=(
            _SEED,
            Setting(
                "n_startup_trials", int, 10, "Random trials before TPE starts modelling.", minimum=0
            ),
            Setting("multivariate", bool, False, "Model parameters jointly, not one by one."),
        ),
        factory=lambda seed, n_startup_trials, multivariate: TPESampler(
            seed=seed, n_startup_trials=n_startup_trials, multivariate=multivariate
        ),
    )
)
