"""Package layout only (metadata lives in pyproject.toml): the root folders ``calibrate/`` and
``export/`` install as ``compress.calibrate`` and ``compress.export``, so the project claims one
top-level name in site-packages."""

from setuptools import find_packages, setup

MAPPED = {"compress.calibrate": "calibrate", "compress.export": "export"}


def _packages() -> list[str]:
    names = [p for p in find_packages(include=["compress", "compress.*"])]
    for name, folder in MAPPED.items():
        names += [name] + [f"{name}.{sub}" for sub in find_packages(where=folder)]
    return names


setup(packages=_packages(), package_dir={"compress": "compress", **MAPPED})
