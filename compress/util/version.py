"""The package version, at the bottom so that the saved record and the CLI can name it without
importing ``compress`` (whose ``__init__`` is the API facade)."""

__version__ = "0.1.0"
