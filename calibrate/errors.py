"""The one error class of :mod:`calibrate`: a subclass of the shared ``compress.util.errors.CompressError``
(one line, a hint, an exit code), which the CLI prints as ``error: <message> (<hint>)``."""

from __future__ import annotations

from compress.util.errors import CompressError


class CalibrationError(CompressError, ValueError):
    """An image folder, preprocessing option or label file that cannot be used as given."""

    exit_code = 4
