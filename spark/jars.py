"""JVM jars resolved once from Maven Central (with the machine's own Maven settings) into a local cache.

A jar set is a pom listing artifacts; it is cached under ``$LAKEHOUSE_CACHE/jars/<name>-<hash of the pom>``, so
a version bump resolves again and nothing else does. ``SPARK_JARS`` (``spark/maven/pom.xml``) holds Delta Lake
and the Spark Kafka connector for the pinned pyspark, ``S3A_JARS`` hadoop-aws for its Hadoop; the local stack's
tooling defines its own sets the same way (the Kafka broker's, in ``lakehouse.scripts.kafka_broker``).
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

from lakehouse.config.errors import PrerequisiteError

log = logging.getLogger(__name__)

_UNREACHABLE = re.compile(
    r"Unknown host|Could not transfer|Connection refused|timed out|No plugin found for prefix|Network is unreachable"
)
_VERSION_SUFFIX = re.compile(r"-\d[\w.\-]*\.jar$")


@dataclass(frozen=True)
class JarSet:
    """A named set of JVM jars: the artifacts ``pom`` depends on, with their runtime dependencies."""

    name: str
    pom: Path

    @property
    def folder(self) -> Path:
        """Cache folder of the set, keyed by the content of its pom."""
        digest = hashlib.sha256(self.pom.read_bytes()).hexdigest()[:12]
        return cache_root() / "jars" / f"{self.name}-{digest}"

    @property
    def is_resolved(self) -> bool:
        """True when the set is already in the cache."""
        return (self.folder / ".complete").is_file()


SPARK_JARS = JarSet("spark", Path(__file__).resolve().parent / "maven" / "pom.xml")
# hadoop-aws for s3a:// lakes (with the AWS SDK bundle, about 600 MB): resolved only where a lake is on s3a://
S3A_JARS = JarSet("spark-s3a", Path(__file__).resolve().parent / "maven" / "s3a" / "pom.xml")


def cache_root() -> Path:
    """Cache shared by every checkout on this machine (``LAKEHOUSE_CACHE`` overrides ``~/.cache/lakehouse``)."""
    return Path(os.environ.get("LAKEHOUSE_CACHE", Path.home() / ".cache" / "lakehouse"))


def _require(command: str, fix: str) -> str:
    found = shutil.which(command)
    if not found:
        raise PrerequisiteError(f"`{command}` was not found on PATH: {fix}")
    return found


def resolve(jar_set: JarSet = SPARK_JARS) -> Path:
    """Download one jar set with Maven unless cached; returns the folder of jars."""
    target = jar_set.folder
    if jar_set.is_resolved:
        return target
    mvn = _require("mvn", "install Maven 3.8+ (Debian: `apt-get install maven`) and run `make setup` again")
    _require("java", "install a Java 17 JDK (Debian: `apt-get install openjdk-17-jdk-headless`)")
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{jar_set.name}-", dir=target.parent))
    log.info("resolving %s jars from %s into %s", jar_set.name, jar_set.pom, target)
    result = subprocess.run(
        [
            mvn,
            "-B",
            "--no-transfer-progress",
            "-f",
            str(jar_set.pom),
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
                f"Maven could not reach its repository while resolving the {jar_set.name} jars: check the network, "
                f"proxy or the mirror in ~/.m2/settings.xml, then run `make setup` again ({' '.join(errors)})"
            )
        raise PrerequisiteError(f"Maven failed to resolve the {jar_set.name} jars: {' '.join(errors) or output[-500:]}")
    (staging / ".complete").write_text(jar_set.pom.read_text())
    if target.exists():
        shutil.rmtree(target)
    staging.rename(target)
    return target


def _artifact(jar_name: str) -> str:
    return _VERSION_SUFFIX.sub("", jar_name)


def spark_jars(jar_set: JarSet = SPARK_JARS) -> list[Path]:
    """Jars to put on ``spark.jars``: a resolved set minus artifacts the pyspark wheel already ships."""
    import pyspark

    shipped = {_artifact(p.name) for p in (Path(pyspark.__file__).parent / "jars").glob("*.jar")}
    return sorted(p for p in resolve(jar_set).glob("*.jar") if _artifact(p.name) not in shipped)
