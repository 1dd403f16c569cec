"""How a network is trained: its config (``config``), the loop (``trainer``, ``steps``) and what
leaves it (``export``)."""
