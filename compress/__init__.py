"""compress: label-free structured pruning, self-distillation and deployment export."""

__version__ = "0.1.0"
