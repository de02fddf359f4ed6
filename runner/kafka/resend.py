"""Sending dead letters back to the topics their records came from (``flow dead-letters
--replay``): each one as it was, with its original key, value, headers and timestamp."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable

from confluent_kafka import KafkaException, Producer

from runner.kafka.logs import client_log
from runner.kafka.settings import KafkaSettings
from runner.runtime.messages import DeadLetter
from streamlets.errors import StreamletsError

__all__ = ["ResendError", "resend"]


class ResendError(StreamletsError):
    """Dead letters could not be sent back (the broker refused or did not acknowledge)."""


def resend(
    settings: KafkaSettings,
    dead_letters: Iterable[DeadLetter],
    topic_of: Callable[[DeadLetter], str],
    *,
    timeout: float = 30.0,
) -> Counter[str]:
    """Produce each dead letter's original record to ``topic_of(dead)``; returns how many
    went to each topic once the broker acknowledged them all. Raises :class:`ResendError`
    when one was refused or not acknowledged within ``timeout`` seconds."""
    producer = Producer(settings.for_producer(**{"enable.idempotence": True, "logger": client_log}))
    sent: Counter[str] = Counter()
    failures: list[str] = []

    def delivered(err: object, message: object) -> None:
        if err is not None:
            failures.append(str(err))

    try:
        for dead in dead_letters:
            original = dead.original
            topic = topic_of(dead)
            producer.produce(
                topic,
                value=original.value,
                key=original.key,
                headers=list(original.headers),
                timestamp=max(original.timestamp, 0),
                on_delivery=delivered,
            )
            producer.poll(0)
            sent[topic] += 1
        left = producer.flush(timeout)
    except (KafkaException, BufferError) as exc:
        raise ResendError(f"the broker did not take the records: {exc}") from None
    if left or failures:
        why = failures[0] if failures else f"{left} not acknowledged within {timeout:g} s"
        raise ResendError(
            f"{len(failures) or left} of {sum(sent.values())} record(s) were not sent back: {why}"
        )
    return sent
