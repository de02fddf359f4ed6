"""What the Kafka runner's consumers do with an error that ``consume()`` returned."""

from __future__ import annotations

import logging
from typing import Any

from confluent_kafka import KafkaError, KafkaException

__all__ = ["skip_consumer_error"]


def skip_consumer_error(err: Any, logger: logging.Logger, what: str) -> None:
    """Deal with an error returned in place of a record, which the caller then skips:
    the end of a partition is no news, a fatal error is raised, any other is logged as
    ``what: error``."""
    if err.code() == KafkaError._PARTITION_EOF:
        return
    if err.fatal():
        raise KafkaException(err)
    logger.warning("%s: %s", what, err)
