"""Benchmarks of tuneforge: one script per measurement, on one harness (``benchmarks.harness``).

Run a script from the repository root (``.venv/bin/python benchmarks/<name>.py``, or
``python -m benchmarks.<name>``); see README.md for what each measures and RESULTS.md for
the figures.
"""
