"""Models in: loading any checkpoint (``loading``), its file formats (``checkpoint``), ``--arch`` (``arch``)."""
