"""Where the benchmarks run: a stack of their own (ports 39092/39093/39094/35433/35002/35050/35051/35088, state in
.lakehouse/bench), so a demo or test stack can stay up; ``LAKEHOUSE_BENCH_KAFKA_PORT``,
``LAKEHOUSE_BENCH_KAFKA_CONTROLLER_PORT``, ``LAKEHOUSE_BENCH_KAFKA_SECURE_PORT``, ``LAKEHOUSE_BENCH_PG_PORT``,
``LAKEHOUSE_BENCH_SPARK_CONNECT_PORT``, ``LAKEHOUSE_BENCH_MLFLOW_PORT``, ``LAKEHOUSE_BENCH_MODEL_SERVER_PORT`` and
``LAKEHOUSE_BENCH_SUPERSET_PORT`` move it when those ports are taken. Its PostgreSQL is durable (fsync,
synchronous_commit and full_page_writes on), like the demo stack's. Each measured run gets a copy of config/ whose
topics carry a suffix of its own, and its own lake and checkpoint folders."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from lakehouse.config.settings import Settings

ROOT = Path(__file__).resolve().parents[1]


def isolated_stack_env(name: str, ports: dict[str, int]) -> dict[str, str]:
    """The environment of a local stack of its own: state in ``.lakehouse/<name>``, each component's port
    ``LAKEHOUSE_<COMPONENT>_PORT`` taken from ``LAKEHOUSE_<NAME>_<COMPONENT>_PORT`` or its default in ``ports``,
    Spark ``local[2]`` and a durable PostgreSQL."""
    env = {"LAKEHOUSE_ENV": "local", "LAKEHOUSE_HOME": str(ROOT / ".lakehouse" / name)}
    for component, default in ports.items():
        env[f"LAKEHOUSE_{component}_PORT"] = os.environ.get(f"LAKEHOUSE_{name.upper()}_{component}_PORT", str(default))
    return {**env, "LAKEHOUSE_SPARK_MASTER": "local[2]", "LAKEHOUSE_PG_DURABILITY": "durable"}


BENCH_ENV = isolated_stack_env(
    "bench",
    {
        "KAFKA": 39092,
        "KAFKA_CONTROLLER": 39093,
        "KAFKA_SECURE": 39094,
        "PG": 35433,
        "SPARK_CONNECT": 35002,
        "MLFLOW": 35050,
        "MODEL_SERVER": 35051,  # the model serving benchmark's other servers take the next three ports
        "SUPERSET": 35088,
    },
)


def bench_home() -> Path:
    """The benchmarks' state folder."""
    return Path(BENCH_ENV["LAKEHOUSE_HOME"])


def isolated_config(tag: str, under: Path | None = None) -> Path:
    """A copy of config/ (in ``under``, default the benchmarks' state folder) whose topics are suffixed with
    ``_<tag>``."""
    config = (under or bench_home()) / f"config-{tag}"
    shutil.rmtree(config, ignore_errors=True)
    shutil.copytree(ROOT / "config", config, ignore=shutil.ignore_patterns("*.py", "__pycache__"))
    for path in (config / "event_types").glob("*.yaml"):
        path.write_text(path.read_text().replace(f"topic: {path.stem}\n", f"topic: {path.stem}_{tag}\n"))
    return config


def use(config: Path, lake_root: Path, checkpoint_root: Path) -> Settings:
    """Point this process (and the processes it starts) at ``config``, ``lake_root`` and ``checkpoint_root``."""
    from lakehouse.config.settings import settings

    os.environ["LAKEHOUSE_CONFIG_DIR"] = str(config)
    os.environ["LAKEHOUSE_LAKE_ROOT"] = str(lake_root)
    os.environ["LAKEHOUSE_CHECKPOINT_ROOT"] = str(checkpoint_root)
    settings.cache_clear()
    return settings()
