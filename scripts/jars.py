"""JVM jars resolved once from Maven Central (with the machine's own Maven settings) into a local cache.

``spark``: Delta Lake and the Spark Kafka connector for the pinned pyspark; ``kafka``: the Apache Kafka broker.
Each set is described by a pom under ``scripts/maven/<set>/pom.xml`` and cached under
``$LAKEHOUSE_CACHE/jars/<set>-<hash of the pom>``, so a version bump resolves again and nothing else does.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import shutil
import subprocess
import tempfile
from pathlib import Path

from lakehouse.scripts.errors import PrerequisiteError
from lakehouse.scripts.process import require_command

log = logging.getLogger(__name__)

JAR_SETS = ("spark", "kafka")
_UNREACHABLE = re.compile(
    r"Unknown host|Could not transfer|Connection refused|timed out|No plugin found for prefix|Network is unreachable"
)
_VERSION_SUFFIX = re.compile(r"-\d[\w.\-]*\.jar$")


def cache_root() -> Path:
    """Cache shared by every checkout on this machine (``LAKEHOUSE_CACHE`` overrides ``~/.cache/lakehouse``)."""
    return Path(os.environ.get("LAKEHOUSE_CACHE", Path.home() / ".cache" / "lakehouse"))


def pom_path(jar_set: str) -> Path:
    """The pom that lists one jar set."""
    return Path(__file__).resolve().parent / "maven" / jar_set / "pom.xml"


def jar_dir(jar_set: str) -> Path:
    """Cache folder of one jar set, keyed by the content of its pom."""
    digest = hashlib.sha256(pom_path(jar_set).read_bytes()).hexdigest()[:12]
    return cache_root() / "jars" / f"{jar_set}-{digest}"


def is_resolved(jar_set: str) -> bool:
    """True when the jar set is already in the cache."""
    return (jar_dir(jar_set) / ".complete").is_file()


def resolve(jar_set: str) -> Path:
    """Download one jar set with Maven unless cached; returns the folder of jars."""
    target = jar_dir(jar_set)
    if is_resolved(jar_set):
        return target
    mvn = require_command("mvn", "install Maven 3.8+ (Debian: `apt-get install maven`) and run `make setup` again")
    require_command("java", "install a Java 17 JDK (Debian: `apt-get install openjdk-17-jdk-headless`)")
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{jar_set}-", dir=target.parent))
    log.info("resolving %s jars from %s into %s", jar_set, pom_path(jar_set), target)
    result = subprocess.run(
        [
            mvn,
            "-B",
            "--no-transfer-progress",
            "-f",
            str(pom_path(jar_set)),
            "dependency:copy-dependencies",
            "-DincludeScope=runtime",
            f"-DoutputDirectory={staging}",
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode != 0:
        shutil.rmtree(staging, ignore_errors=True)
        output = result.stdout + result.stderr
        errors = [line for line in output.splitlines() if "[ERROR]" in line][:1]
        if _UNREACHABLE.search(output):
            raise PrerequisiteError(
                f"Maven could not reach its repository while resolving the {jar_set} jars: check the network, "
                f"proxy or the mirror in ~/.m2/settings.xml, then run `make setup` again ({' '.join(errors)})"
            )
        raise PrerequisiteError(f"Maven failed to resolve the {jar_set} jars: {' '.join(errors) or output[-500:]}")
    (staging / ".complete").write_text(pom_path(jar_set).read_text())
    if target.exists():
        shutil.rmtree(target)
    staging.rename(target)
    return target


def resolve_all() -> dict[str, Path]:
    """Resolve every jar set (idempotent)."""
    return {jar_set: resolve(jar_set) for jar_set in JAR_SETS}


def _artifact(jar_name: str) -> str:
    return _VERSION_SUFFIX.sub("", jar_name)


def spark_jars() -> list[Path]:
    """Jars to put on ``spark.jars``: the resolved set minus artifacts the pyspark wheel already ships."""
    import pyspark

    shipped = {_artifact(p.name) for p in (Path(pyspark.__file__).parent / "jars").glob("*.jar")}
    folder = resolve("spark")
    return sorted(p for p in folder.glob("*.jar") if _artifact(p.name) not in shipped)


def kafka_classpath() -> str:
    """Classpath of the Kafka broker."""
    return os.pathsep.join(str(p) for p in sorted(resolve("kafka").glob("*.jar")))
