"""Package discovery. Each top-level folder with an ``__init__.py`` (but tests/) is a layer of the one
``lakehouse`` package: ``spark/io/`` installs as ``lakehouse.spark.io``. Sub-folders are found, not listed, data
folders too (``config/contracts/orders/`` ships its JSON Schemas)."""

from pathlib import Path

from setuptools import find_namespace_packages, setup

ROOT = Path(__file__).resolve().parent
LAYERS = sorted(p.name for p in ROOT.iterdir() if (p / "__init__.py").is_file() and p.name != "tests")
DATA_FILES = ["*.yaml", "*.json", "*.csv", "*.md", "*.sql", "*.xml", "*.properties", "*.txt", "*.java"]

setup(
    package_dir={"lakehouse": "."},
    packages=[
        f"lakehouse.{name}"
        for name in find_namespace_packages(include=[*LAYERS, *(f"{n}.*" for n in LAYERS)], exclude=["*__pycache__"])
    ],
    package_data={"": DATA_FILES},
)
