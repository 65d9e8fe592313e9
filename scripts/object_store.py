"""The cluster environment's local object store: s3proxy (an S3-compatible server from Maven Central) on its
filesystem backend, so the lake and the streaming checkpoints live at ``s3a://`` as they would on S3."""

from __future__ import annotations

import json
import logging
import os
import secrets
from pathlib import Path

from lakehouse.config.settings import Settings, is_local_host
from lakehouse.scripts.errors import StackError
from lakehouse.scripts.process import JDK_FIX, Service, port_open, require_command, require_free_port, wait_until
from lakehouse.spark.jars import JarSet, resolve

log = logging.getLogger(__name__)

S3PROXY_JARS = JarSet("s3proxy", Path(__file__).resolve().parent / "maven" / "s3proxy" / "pom.xml")
# s3proxy logs every request at DEBUG without a configuration of its own
_LOGBACK = """<configuration>
  <appender name="STDOUT" class="ch.qos.logback.core.ConsoleAppender">
    <encoder><pattern>%d{HH:mm:ss.SSS} %-5level %logger{36} - %msg%n</pattern></encoder>
  </appender>
  <root level="WARN"><appender-ref ref="STDOUT"/></root>
</configuration>
"""


class ObjectStore:
    """s3proxy on the port of ``storage.s3.endpoint``, with a folder per bucket under
    ``$LAKEHOUSE_HOME/object-store/data``. It is part of the stack only when the endpoint is on this machine.

    Its access key pair is ``AWS_ACCESS_KEY_ID``/``AWS_SECRET_ACCESS_KEY`` when both are set; otherwise a pair is
    generated once into ``object-store/credentials.json`` (mode 600), where Spark launches find it
    (``Settings.object_store_credentials``)."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.state_dir = settings.home / "object-store"
        self.service = Service("object-store", settings.home / "run")
        store = settings.storage.s3
        address = store.host_port if store is not None else None
        self.configured = address is not None and is_local_host(address[0])
        self.port = address[1] if address is not None else 0

    @property
    def address(self) -> str:
        """The S3 endpoint clients use."""
        return self.settings.storage.s3.endpoint if self.settings.storage.s3 else ""

    def running(self) -> bool:
        """True when our s3proxy process is alive and its port answers."""
        return self.service.pid() is not None and port_open(self.port)

    def credentials(self) -> dict[str, str]:
        """The access key pair the store accepts (generated on first use unless the environment sets one)."""
        found = self.settings.object_store_credentials()
        if found:
            return found
        self.state_dir.mkdir(parents=True, exist_ok=True)
        path = self.state_dir / "credentials.json"
        pair = {
            "AWS_ACCESS_KEY_ID": f"lakehouse-{secrets.token_hex(4)}",
            "AWS_SECRET_ACCESS_KEY": secrets.token_hex(20),
        }
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(descriptor, "w") as file:
            json.dump(pair, file)
        return pair

    def start(self) -> None:
        """Start s3proxy unless it runs already, with a folder for each bucket of the lake's roots."""
        if not self.configured or self.running():
            return
        java = require_command("java", JDK_FIX)
        require_free_port(self.port, "the object store (s3proxy)", "LAKEHOUSE_S3_PORT")
        data = self.state_dir / "data"
        for bucket in self.settings.storage.s3_buckets:
            (data / bucket).mkdir(parents=True, exist_ok=True)  # the filesystem backend's buckets are folders
        pair = self.credentials()
        properties = self.state_dir / "s3proxy.properties"
        properties.write_text(
            "\n".join(
                [
                    f"s3proxy.endpoint=http://127.0.0.1:{self.port}",
                    "s3proxy.authorization=aws-v2-or-v4",
                    f"s3proxy.identity={pair['AWS_ACCESS_KEY_ID']}",
                    f"s3proxy.credential={pair['AWS_SECRET_ACCESS_KEY']}",
                    # buckets are folders, objects files; an empty "directory" marker is not kept (cluster.yaml
                    # gives streaming checkpoints the file manager that needs none)
                    "jclouds.provider=filesystem",
                    f"jclouds.filesystem.basedir={data}",
                    "",
                ]
            )
        )
        properties.chmod(0o600)
        classpath = os.pathsep.join(str(p) for p in sorted(resolve(S3PROXY_JARS).glob("*.jar")))
        logging_config = self.state_dir / "logback.xml"
        logging_config.write_text(_LOGBACK)
        argv = [java, "-Xmx512m", f"-Dlogback.configurationFile={logging_config}", "-cp", classpath]
        argv += ["org.gaul.s3proxy.Main", "--properties", str(properties)]
        self.service.start(argv)
        wait_until(self._ready, 60, f"the object store (s3proxy) on port {self.port}", self.service.log_file)
        log.info("object store (s3proxy) up on %s", self.address)

    def _ready(self) -> bool:
        if self.service.pid() is None:
            raise StackError(f"the object store (s3proxy) exited during start-up; see {self.service.log_file}")
        return port_open(self.port)

    def stop(self) -> None:
        """Stop s3proxy (the data stays in the state folder)."""
        self.service.stop(timeout=15)
