"""The bottom layer: small helpers with no knowledge of models, pruning or the CLI.

Everything in the project may import ``compress.util`` (``compress.calibrate`` and
``compress.export`` included); ``compress.util`` imports nothing of the project.
"""
