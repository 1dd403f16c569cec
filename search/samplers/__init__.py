"""Built-in samplers: Optuna's, wrapped with declared settings."""

from search.samplers import optuna_samplers  # noqa: F401  (registers on import)
