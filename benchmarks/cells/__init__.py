"""Helpers of ``benchmarks/nas_cells.py``: its strategies and how an incumbent is picked."""
