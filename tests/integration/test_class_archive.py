"""The suite's own Spark driver, started like every driver of the project, maps the class archive that
``lakehouse setup`` built (lakehouse.spark.class_archive)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from lakehouse.config.settings import Settings
from lakehouse.spark.class_archive import archive_path
from lakehouse.spark.session import session_conf

pytestmark = pytest.mark.integration


def test_the_driver_maps_the_class_archive(spark: Any, lakehouse_settings: Settings) -> None:
    path = archive_path(session_conf(lakehouse_settings))
    assert path is not None and path.is_file()
    pid = spark.sparkContext._jvm.java.lang.ProcessHandle.current().pid()
    mapped = {line.split(maxsplit=5)[-1] for line in Path(f"/proc/{pid}/maps").read_text().splitlines()}
    assert str(path) in mapped
