"""Pruning: which channels matter (``importance/``), how many to keep (``plan``; ``latency/`` for a
latency target), cutting them (``surgery``, each layer's handler), proving the cut (``verify``, with the
fail-closed output comparison of ``compare``) and counting what is left (``profile``: MACs, parameters)."""
