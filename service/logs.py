"""What a server process logs: its own lines at INFO, other libraries' only when they matter.

``tuneforge serve`` and ``tuneforge scheduler`` say when they are ready, each study submitted,
started and ended with its reason; Optuna's per-trial INFO lines and its warnings about
experimental features the service chose on purpose are silenced.
"""

import logging
import warnings

import optuna

FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def configure_logging() -> None:
    """Log the service's INFO lines to stderr; quiet what means nothing to its user."""
    handler = logging.StreamHandler()
    handler.setFormatter(logging.Formatter(FORMAT))
    for name in ("service", "search", "models"):
        logger = logging.getLogger(name)
        logger.setLevel(logging.INFO)
        if not logger.handlers:
            logger.addHandler(handler)
    optuna.logging.set_verbosity(optuna.logging.WARNING)  # "Trial N finished", "study created"
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
