"""mypy over the package's layers under the names they install as (``spark/io/delta.py`` is
``lakehouse.spark.io.delta``), read from the folders themselves: no installed copy and no tree of links.

    python -m lakehouse.scripts.typecheck config kafka orchestration postgres scripts spark

mypy finds a module's name by walking up the folders that hold an ``__init__.py``, which here would give
``spark.io.delta``; so the sources are handed to mypy's build with their names, and it reads its settings from
pyproject.toml as the command line does.
"""

from __future__ import annotations

import sys
from pathlib import Path

from mypy import build
from mypy.main import process_options
from mypy.modulefinder import BuildSource

ROOT = Path(__file__).resolve().parents[1]


def sources(layers: list[str]) -> list[BuildSource]:
    """Every Python file of the layers, named as installed."""
    found = []
    for layer in layers:
        for path in sorted((ROOT / layer).rglob("*.py")):
            parts = path.relative_to(ROOT).with_suffix("").parts
            if parts[-1] == "__init__":
                parts = parts[:-1]
            found.append(BuildSource(str(path.relative_to(ROOT)), ".".join(("lakehouse", *parts))))
    return found


def main(layers: list[str]) -> int:
    """Type-check the layers; print mypy's messages; 0 when there are none."""
    if not layers:
        print("usage: python -m lakehouse.scripts.typecheck <layer folder>...", file=sys.stderr)
        return 2
    _, options = process_options(["--config-file", str(ROOT / "pyproject.toml"), *layers])
    options.namespace_packages = True
    # the cache keyed by file path misses a module named here unlike its folders say (seen: a stale
    # "module has no attribute" for lakehouse.postgres.gold_checks); a full check takes about 30 s
    options.incremental = False
    result = build.build(sources(layers), options)
    for message in result.errors:
        print(message)
    checked = len(result.files)
    print(f"mypy: {len(result.errors)} problem(s) in {len(layers)} layers ({checked} modules read)")
    return 1 if result.errors else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
