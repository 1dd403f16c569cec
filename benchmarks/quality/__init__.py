"""The parts of ``benchmarks/search_quality.py``: the task all systems share (``common``) and
one runner per system (``tuneforge``, ``optuna_alone``, ``raytune_alone``), and the report."""
