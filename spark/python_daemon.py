"""Spark's Python worker daemon (``pyspark.daemon``), minus the archives that only repeat installed packages.

Spark puts ``pyspark.zip``, the py4j source zip and the spark-core jar on every Python worker's path. Before each
task a worker calls ``importlib.invalidate_caches()``, and on Python 3.11 that re-reads the directory of every zip
archive on the path: about 6,500 entries, 0.1 to 0.2 s of every task's start on 2 cores (every ``mapInArrow``,
such as the loader's COPY). Where pyspark and py4j are installed as packages (pip, as this project installs them),
the archives add nothing, so this module takes them off the path and then runs the standard daemon. Where they are
not installed (a Spark distribution's Python), the path is left as Spark set it.

Enabled by ``spark.python.daemon.module: lakehouse.spark.python_daemon`` in the environment's ``spark.conf``.
"""

from __future__ import annotations

import importlib.machinery
import os
import re
import sys

REPEATED_PACKAGES = ("pyspark", "py4j")
# what Spark's PythonUtils.sparkPythonPath adds; any other archive on the path (a user's) is kept
_SPARK_ARCHIVE = re.compile(r"^(pyspark\.zip|py4j-[0-9.]+-src\.zip|spark-core_[0-9.]+-.+\.jar)$")


def _is_spark_archive(entry: str) -> bool:
    return bool(_SPARK_ARCHIVE.match(os.path.basename(entry))) and os.path.isfile(entry)


def _importable(package: str, path: list[str]) -> bool:
    spec = importlib.machinery.PathFinder.find_spec(package, path)
    return spec is not None and spec.origin is not None


def drop_repeated_archives(path: list[str]) -> list[str]:
    """Remove from ``path`` (in place) Spark's pyspark, py4j and spark-core archives when pyspark and py4j
    import without them; returns the removed entries."""
    archives = [entry for entry in path if _is_spark_archive(entry)]
    rest = [entry for entry in path if entry not in archives]
    if not archives or not all(_importable(package, rest) for package in REPEATED_PACKAGES):
        return []
    path[:] = rest
    for entry in archives:
        sys.path_importer_cache.pop(entry, None)
    return archives


if __name__ == "__main__":
    drop_repeated_archives(sys.path)
    from pyspark import daemon

    daemon.manager()
