"""The Kafka runner: one OS process per streamlet replica, records carried by Kafka.

:class:`StreamletProcess` runs one streamlet instance with the shared execution core
(:class:`runner.runtime.executor.Executor`); only the transport differs from the in-process runner.
"""

from runner.kafka.admin import TopicError, TopicPlan, ensure_topics, plan_topics
from runner.kafka.dead_letters import dead_letter_headers, read_dead_letter_headers
from runner.kafka.naming import client_id, dead_letter_topic, group_id, kafka_topic
from runner.kafka.options import ProcessOptions
from runner.kafka.process import EXIT_CRASH, EXIT_FAILED, StreamletProcess
from runner.kafka.settings import KafkaSettings, KafkaSettingsError, redact

__all__ = [
    "EXIT_CRASH",
    "EXIT_FAILED",
    "KafkaSettings",
    "KafkaSettingsError",
    "ProcessOptions",
    "StreamletProcess",
    "TopicError",
    "TopicPlan",
    "client_id",
    "dead_letter_headers",
    "dead_letter_topic",
    "ensure_topics",
    "group_id",
    "kafka_topic",
    "plan_topics",
    "read_dead_letter_headers",
    "redact",
]
