"""Errors of the Spark layer."""

from __future__ import annotations

import re

from lakehouse.config.errors import LakehouseError, ServiceUnavailableError

# what S3 (and S3-compatible stores) answer when they refuse a key pair, as it surfaces in a Spark error's text
_REFUSED = re.compile(
    r"\b(InvalidAccessKeyId|SignatureDoesNotMatch|AccessDenied(?:Exception)?|InvalidToken|ExpiredToken"
    r"|Status Code: 403)\b"
)
_S3A_PATH = re.compile(r"s3a://[^\s:;,]+")


class SparkJobError(LakehouseError):
    """A Spark job failed or was asked to do something impossible; the message names the table or query."""


class SparkUnavailableError(SparkJobError, ServiceUnavailableError):
    """No Spark to run on (the Spark Connect server does not answer): an infrastructure failure, worth a retry."""


def object_store_refusal(error: BaseException) -> str | None:
    """One line naming the fix when ``error`` is an object store refusing the job's credentials, else None."""
    text = str(error)
    refused = _REFUSED.search(text)
    if refused is None or "s3a://" not in text:
        return None
    path = _S3A_PATH.search(text)
    where = path.group(0) if path else "s3a://"
    return (
        f"the object store refused the job's credentials ({refused.group(1)} on {where}): set AWS_ACCESS_KEY_ID and "
        "AWS_SECRET_ACCESS_KEY to a key pair it accepts, or give the cluster a role that may use the bucket"
    )
