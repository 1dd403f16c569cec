"""Drives one Optuna study over Ray: ask a sampler, run trials as Ray tasks, tell the outcome."""
