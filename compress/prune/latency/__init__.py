"""Pruning for measured latency: a per-layer latency table of the target runtime, a model of the
network's latency built from it, and a selection that removes channels by importance lost per
millisecond saved. See ``compress.prune.latency.stage`` for how the pieces run inside ``prune``."""
