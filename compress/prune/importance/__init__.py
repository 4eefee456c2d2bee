"""Channel importance estimators, by name (``--importance``).

Each estimator returns one score per channel id of the dependency graph; a unit (a set of ids
removed together) scores the sum of its members, so a channel group spanning several layers
scores the sum over them.
"""

from __future__ import annotations

from compress.prune.importance.base import ESTIMATORS, ImportanceConfig, ImportanceResult, estimate, unit_scores

__all__ = ["ESTIMATORS", "ImportanceConfig", "ImportanceResult", "estimate", "unit_scores"]
