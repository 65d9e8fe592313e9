"""A fatal client error is recognised however confluent-kafka surfaces it from ``poll``/``flush``."""

from __future__ import annotations

from confluent_kafka import KafkaError, KafkaException

from lakehouse.kafka.producer import _fatal_error


def _fatal() -> KafkaException:
    error = KafkaError(KafkaError.CLUSTER_AUTHORIZATION_FAILED, "Cluster authorization failed", fatal=True)
    return KafkaException(error)


def _system_error(cause: BaseException | None) -> SystemError:
    # how Python reports the next delivery report's callback when the fatal error is raised while reports are served
    wrapped = SystemError("<function _Deliveries.__call__> returned a result with an exception set")
    wrapped.__cause__ = cause
    return wrapped


def test_a_kafka_exception_is_its_own_fatal_error() -> None:
    error = _fatal()
    assert _fatal_error(error) is error


def test_a_system_error_caused_by_a_kafka_exception_is_that_error() -> None:
    error = _fatal()
    assert _fatal_error(_system_error(error)) is error


def test_any_other_system_error_is_not_a_kafka_error() -> None:
    assert _fatal_error(_system_error(None)) is None
    assert _fatal_error(_system_error(ValueError("not kafka"))) is None
