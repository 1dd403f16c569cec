"""The parts of ``benchmarks/load.py``: the load (``traffic``), the checks after it (``checks``)
and the report (``report``)."""
