"""The layers depend on each other one way only, and no module grows past 500 lines.

Imports are read from the source with ``ast`` (nothing is imported), including those inside functions and under
``if TYPE_CHECKING:``; relative imports are resolved to the names the layers install as (``lakehouse.<layer>``).
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
# the lakehouse layers each layer may import besides itself
ALLOWED = {
    "config": set(),
    "kafka": {"config"},
    "postgres": {"config"},
    "ml": {"config", "postgres"},
    "spark": {"config", "postgres", "ml"},
    "orchestration": {"config", "kafka", "spark", "postgres", "ml"},
    "dags": {"config", "orchestration"},
    # developer tooling: anything but the CLI, whose developer commands import it
    "scripts": {"config", "kafka", "postgres", "spark", "ml"},
}
# layers one file may import inside its functions only: the CLI's developer commands (stack, setup, demo) import
# the local-stack tooling when they run
IMPORTED_IN_FUNCTIONS = {"orchestration/cli.py": {"scripts"}}
WITHOUT_PYSPARK = ("config", "kafka", "postgres", "ml")
MAX_LINES = 500


@dataclass(frozen=True)
class Import:
    """One imported name, absolute (``lakehouse.config.settings.Settings``), with its line."""

    name: str
    line: int
    in_function: bool

    @property
    def layer(self) -> str | None:
        """The lakehouse layer it belongs to, None for any other package."""
        parts = self.name.split(".")
        return parts[1] if parts[0] == "lakehouse" and len(parts) > 1 else None


def read_imports(path: Path, package: str) -> list[Import]:
    """Every import of the file at ``path``, a module of ``package``, in source order."""
    tree = ast.parse(path.read_text(), filename=str(path))
    return list(_imports(tree, package, in_function=False))


def _imports(node: ast.AST, package: str, in_function: bool) -> Iterator[Import]:
    for child in ast.iter_child_nodes(node):
        if isinstance(child, ast.Import):
            yield from (Import(alias.name, child.lineno, in_function) for alias in child.names)
        elif isinstance(child, ast.ImportFrom):
            base = child.module or ""
            if child.level:
                parent = package.split(".")[: len(package.split(".")) - child.level + 1]
                base = ".".join([*parent, *([base] if base else [])])
            yield from (Import(f"{base}.{alias.name}", child.lineno, in_function) for alias in child.names)
        inside = in_function or isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda)
        yield from _imports(child, package, inside)


def modules(*folders: str) -> Iterator[tuple[Path, str]]:
    """Each Python file under the folders, with the package it installs in (``lakehouse.spark.io``)."""
    for folder in folders:
        for path in sorted((ROOT / folder).rglob("*.py")):
            parts = path.relative_to(ROOT).parent.parts
            yield path, ".".join(("lakehouse", *parts))


def test_every_layer_has_an_import_rule() -> None:
    layers = {p.name for p in ROOT.iterdir() if (p / "__init__.py").is_file() and p.name != "tests"}

    assert layers <= set(ALLOWED), f"give each layer its allowed imports in ALLOWED: {sorted(layers)}"


def test_each_layer_imports_only_the_layers_below_it() -> None:
    problems = []
    for layer, allowed in ALLOWED.items():
        for path, package in modules(layer):
            where = str(path.relative_to(ROOT))
            lazy = IMPORTED_IN_FUNCTIONS.get(where, set())
            for found in read_imports(path, package):
                if found.layer in (None, layer, *allowed) or (found.in_function and found.layer in lazy):
                    continue
                problems.append(
                    f"{where}:{found.line}: {layer} imports {found.name}; it may import only "
                    f"{sorted(allowed) or 'no other layer'}"
                    + (f" (and {sorted(lazy)} inside functions)" if lazy else "")
                )

    assert problems == []


def test_config_kafka_and_postgres_never_import_pyspark() -> None:
    problems = [
        f"{path.relative_to(ROOT)}:{found.line}: imports {found.name}"
        for path, package in modules(*WITHOUT_PYSPARK)
        for found in read_imports(path, package)
        if found.name.split(".")[0] == "pyspark"
    ]

    assert problems == []


def test_no_module_is_longer_than_500_lines() -> None:
    lines = {str(path.relative_to(ROOT)): len(path.read_text().splitlines()) for path, _ in modules(*ALLOWED)}

    assert {path: n for path, n in lines.items() if n > MAX_LINES} == {}


def test_imports_are_read_in_functions_and_type_checking_blocks_and_resolved(tmp_path: Path) -> None:
    module = tmp_path / "postgres.py"
    module.write_text(
        "import os\n"
        "from typing import TYPE_CHECKING\n"
        "from lakehouse.config import settings\n"
        "if TYPE_CHECKING:\n"
        "    from pyspark.sql import DataFrame\n"
        "def load():\n"
        "    from ..jobs import gold\n"
        "    from . import delta\n"
        "    return lambda: __import__('json')\n"
    )

    found = read_imports(module, "lakehouse.spark.io")

    assert found == [
        Import("os", 1, False),
        Import("typing.TYPE_CHECKING", 2, False),
        Import("lakehouse.config.settings", 3, False),
        Import("pyspark.sql.DataFrame", 5, False),
        Import("lakehouse.spark.jobs.gold", 7, True),
        Import("lakehouse.spark.io.delta", 8, True),
    ]
    assert [i.layer for i in found] == [None, None, "config", None, "spark", "spark"]
