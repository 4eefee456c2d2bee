"""Architectures the project ships, usable as ``--arch compress.archs.<module>:<factory>``."""
