"""The local broker's authenticated listener: SASL_SSL with SCRAM-SHA-512, a CA and broker certificate made with
the JDK's ``keytool``, SCRAM users and ACLs enforced by Kafka's StandardAuthorizer.

Everything lives in ``$LAKEHOUSE_HOME/kafka/security`` (mode 0700): the CA certificate clients trust (``ca.pem``),
the broker's PKCS12 keystore, and ``credentials.json`` with the generated passwords of the two principals:

- ``producer`` may write (and describe) the event topics, and nothing else;
- ``streaming`` may read (and describe) them, with consumer groups whose ids start with ``spark-kafka-source`` or
  ``lakehouse`` (Spark's Kafka source and the project's consumers).

The plaintext listener stays for quick local use; its clients are the anonymous principal, a super user.
"""

from __future__ import annotations

import json
import os
import secrets
import subprocess
from dataclasses import dataclass
from pathlib import Path

from lakehouse.scripts.errors import StackError
from lakehouse.scripts.process import JDK_FIX, require_command

MECHANISM = "SCRAM-SHA-512"
SCRAM_ITERATIONS = 8192
PRINCIPALS = ("producer", "streaming")
CONSUMER_GROUP_PREFIXES = ("spark-kafka-source", "lakehouse")
_VALIDITY_DAYS = "3650"


@dataclass(frozen=True)
class KafkaSecurity:
    """Paths and secrets of the local broker's SASL_SSL listener."""

    directory: Path

    @property
    def ca_file(self) -> Path:
        """The CA certificate (PEM) clients verify the broker with."""
        return self.directory / "ca.pem"

    @property
    def keystore(self) -> Path:
        """The broker's key and certificate chain (PKCS12)."""
        return self.directory / "broker.p12"

    @property
    def credentials_file(self) -> Path:
        """Generated passwords: the keystore's and each principal's (mode 0600)."""
        return self.directory / "credentials.json"

    def credentials(self) -> dict[str, str]:
        """``keystore`` and each principal's password, generated on first use."""
        if not self.credentials_file.is_file():
            self.directory.mkdir(parents=True, exist_ok=True)
            self.directory.chmod(0o700)
            values = {name: secrets.token_urlsafe(24) for name in ("keystore", *PRINCIPALS)}
            self.credentials_file.touch(mode=0o600)
            self.credentials_file.write_text(json.dumps(values, indent=2))
        return dict(json.loads(self.credentials_file.read_text()))

    def ensure_certificates(self) -> None:
        """Make the CA and the broker's certificate (for ``localhost`` and 127.0.0.1) unless they exist."""
        if self.keystore.is_file() and self.ca_file.is_file():
            return
        keytool = str(Path(require_command("java", JDK_FIX)).resolve().parent / "keytool")  # the JDK's own
        password = self.credentials()["keystore"]
        environ = {**os.environ, "LAKEHOUSE_KEYSTORE_PASSWORD": password}  # not on command lines
        ca_store = self.directory / "ca.p12"
        request = self.directory / "broker.csr"
        signed = self.directory / "broker.crt"
        for path in (ca_store, self.keystore, request, signed, self.ca_file):
            path.unlink(missing_ok=True)
        pw = ["-storepass:env", "LAKEHOUSE_KEYSTORE_PASSWORD"]
        store = ["-storetype", "PKCS12", *pw, "-keypass:env", "LAKEHOUSE_KEYSTORE_PASSWORD"]
        steps = [
            ["-genkeypair", "-alias", "ca", "-keyalg", "RSA", "-keysize", "2048", "-dname", "CN=lakehouse local CA",
             "-ext", "bc:c", "-validity", _VALIDITY_DAYS, "-keystore", str(ca_store), *store],
            ["-exportcert", "-rfc", "-alias", "ca", "-keystore", str(ca_store), *pw,
             "-file", str(self.ca_file)],
            ["-genkeypair", "-alias", "broker", "-keyalg", "RSA", "-keysize", "2048", "-dname", "CN=localhost",
             "-validity", _VALIDITY_DAYS, "-keystore", str(self.keystore), *store],
            ["-certreq", "-alias", "broker", "-keystore", str(self.keystore), *pw,
             "-file", str(request)],
            ["-gencert", "-alias", "ca", "-keystore", str(ca_store), *pw, "-infile", str(request),
             "-outfile", str(signed), "-rfc", "-ext", "SAN=dns:localhost,ip:127.0.0.1", "-validity", _VALIDITY_DAYS],
            ["-importcert", "-noprompt", "-alias", "ca", "-file", str(self.ca_file), "-keystore", str(self.keystore),
             *pw],
            ["-importcert", "-alias", "broker", "-file", str(signed), "-keystore", str(self.keystore),
             *pw],
        ]  # fmt: skip
        for step in steps:
            result = subprocess.run([keytool, *step], capture_output=True, text=True, env=environ, check=False)
            if result.returncode != 0:
                raise StackError(
                    f"keytool {step[0]} failed making the local broker's certificates in {self.directory}: "
                    f"{(result.stderr or result.stdout).strip()}"
                )
        for path in (request, signed):
            path.unlink()

    def broker_properties(self, port: int) -> list[str]:
        """server.properties lines of the SASL_SSL listener on ``port`` (the listener list is the caller's)."""
        password = self.credentials()["keystore"]
        scram = "org.apache.kafka.common.security.scram.ScramLoginModule required;"
        return [
            f"sasl.enabled.mechanisms={MECHANISM}",
            f"listener.name.sasl_ssl.{MECHANISM.lower()}.sasl.jaas.config={scram}",
            "ssl.keystore.type=PKCS12",
            f"ssl.keystore.location={self.keystore}",
            f"ssl.keystore.password={password}",
            f"ssl.key.password={password}",
            "authorizer.class.name=org.apache.kafka.metadata.authorizer.StandardAuthorizer",
            # the plaintext and controller listeners' clients, and the broker itself
            "super.users=User:ANONYMOUS",
            "allow.everyone.if.no.acl.found=false",
        ]

    def client_properties(self, principal: str, bootstrap_servers: str) -> dict[str, str]:
        """librdkafka properties of ``principal`` on the SASL_SSL listener."""
        return {
            "bootstrap.servers": bootstrap_servers,
            "security.protocol": "SASL_SSL",
            "sasl.mechanism": MECHANISM,
            "sasl.username": principal,
            "sasl.password": self.credentials()[principal],
            "ssl.ca.location": str(self.ca_file),
        }

    def create_principals(self, bootstrap_servers: str, topics: list[str]) -> None:
        """Create (or reset) the SCRAM credentials of both principals and their ACLs, through the plaintext
        listener at ``bootstrap_servers``, on every topic whose name starts with one of ``topics``."""
        from confluent_kafka import KafkaException
        from confluent_kafka.admin import (
            AclBinding,
            AclOperation,
            AclPermissionType,
            AdminClient,
            ResourcePatternType,
            ResourceType,
            ScramCredentialInfo,
            ScramMechanism,
            UserScramCredentialAlteration,
            UserScramCredentialUpsertion,
        )

        admin = AdminClient({"bootstrap.servers": bootstrap_servers})
        info = ScramCredentialInfo(ScramMechanism.SCRAM_SHA_512, SCRAM_ITERATIONS)
        passwords = self.credentials()
        upserts: list[UserScramCredentialAlteration] = [
            UserScramCredentialUpsertion(name, info, passwords[name].encode()) for name in PRINCIPALS
        ]

        def acl(kind: ResourceType, name: str, principal: str, operation: AclOperation) -> AclBinding:
            return AclBinding(
                kind, name, ResourcePatternType.PREFIXED, f"User:{principal}", "*", operation, AclPermissionType.ALLOW
            )

        bindings = [
            acl(ResourceType.TOPIC, topic, principal, operation)
            for topic in topics
            for principal, operations in (
                ("producer", (AclOperation.WRITE, AclOperation.DESCRIBE)),
                ("streaming", (AclOperation.READ, AclOperation.DESCRIBE)),
            )
            for operation in operations
        ] + [acl(ResourceType.GROUP, group, "streaming", AclOperation.READ) for group in CONSUMER_GROUP_PREFIXES]
        try:
            for future in admin.alter_user_scram_credentials(upserts).values():
                future.result()
            for future in admin.create_acls(bindings, request_timeout=30).values():
                future.result()
        except KafkaException as exc:
            raise StackError(f"creating the local broker's SCRAM users and ACLs failed: {exc}") from exc
