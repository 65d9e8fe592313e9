"""Package discovery. Each top-level folder with an ``__init__.py`` (but tests/) is a layer of the one
``lakehouse`` package: ``spark/io/`` installs as ``lakehouse.spark.io``. Sub-packages are found, not listed."""

from pathlib import Path

from setuptools import find_packages, setup

ROOT = Path(__file__).resolve().parent
LAYERS = sorted(p.name for p in ROOT.iterdir() if (p / "__init__.py").is_file() and p.name != "tests")

setup(
    package_dir={"lakehouse": "."},
    packages=[f"lakehouse.{name}" for name in find_packages(include=[*LAYERS, *(f"{n}.*" for n in LAYERS)])],
)
