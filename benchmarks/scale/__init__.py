"""The parts of ``benchmarks/api_scale.py``: the study written into Optuna's tables
(``study``), the requests measured (``requests``) and the profile of the routes (``profile``)."""
