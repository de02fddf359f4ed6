"""Topics: create the ones a blueprint needs with its settings; report ones that do not fit.

Requests to the broker are made in short attempts, so that a caller's stop (SIGTERM during
start-up) is seen within about a second; a broker out of reach is said once, not once per
attempt (the client's own failure lines are rate-limited by :mod:`runner.kafka.logs`). A
broker that refuses the client's credentials or security protocol is an error at once:
retrying would not help.
"""

from __future__ import annotations

import concurrent.futures
import logging
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from confluent_kafka import KafkaError, KafkaException
from confluent_kafka.admin import AdminClient, NewTopic  # type: ignore[attr-defined]

from blueprint import TopicSpec, VerifiedBlueprint
from runner.kafka.logs import client_log
from runner.kafka.naming import dead_letter_topic, kafka_topic
from runner.runtime.state import changelog_topic
from streamlets.errors import StreamletsError

__all__ = [
    "ATTEMPT_SECONDS",
    "BrokerRefused",
    "BrokerUnreachable",
    "StartupStopped",
    "TopicError",
    "TopicPlan",
    "changelog_plans",
    "ensure_topics",
    "plan_topics",
]

log = logging.getLogger("streamlets.runner.kafka")

#: Partitions of a topic whose blueprint entry does not say (and of dead-letter topics).
DEFAULT_PARTITIONS = 1
#: Seconds one request to the broker may take before the stop flag is looked at again.
ATTEMPT_SECONDS = 1.0

#: Client errors that mean the broker answered but refused this client's security settings,
#: with what to say about them.
_REFUSALS = {
    KafkaError._AUTHENTICATION: "authentication with",
    KafkaError.SASL_AUTHENTICATION_FAILED: "authentication with",
    KafkaError.UNSUPPORTED_SASL_MECHANISM: "authentication with",
    KafkaError.ILLEGAL_SASL_STATE: "authentication with",
    KafkaError._SSL: "the TLS handshake with",
}


class TopicError(StreamletsError):
    """A topic cannot be created, or exists with settings the blueprint cannot use."""


class BrokerUnreachable(TopicError):
    """The broker did not answer (worth retrying later, unlike a bad topic)."""


class BrokerRefused(TopicError):
    """The broker answered but refused the client: authentication or TLS failed (a retry
    with the same settings fails the same way)."""


class StartupStopped(StreamletsError):
    """A stop was asked for while the topics were being checked or created."""


@dataclass(frozen=True, slots=True)
class TopicPlan:
    """One Kafka topic to have: name, partitions, replication factor, topic config."""

    name: str
    partitions: int | None
    replication_factor: int | None
    config: Mapping[str, str] = field(default_factory=dict)
    what: str = ""  # where it comes from, for messages: "topic 'readings'"
    #: Topics (Kafka names) whose partitions this one must have at least, when they exist
    #: with more than the blueprint says: a changelog's input topics.
    follows: tuple[str, ...] = ()


def _plan(topic: TopicSpec) -> TopicPlan:
    return TopicPlan(
        kafka_topic(topic),
        topic.partitions,
        topic.replication_factor,
        {str(k): str(v) for k, v in topic.config.items()},
        f"blueprint topic '{topic.key}'",
    )


#: The settings of every changelog topic: only the latest value of each key matters.
CHANGELOG_CONFIG: Mapping[str, str] = {"cleanup.policy": "compact"}


def changelog_plans(blueprint: VerifiedBlueprint, streamlet: str) -> list[TopicPlan]:
    """The changelog topics of ``streamlet``'s states (DESIGN §8): one per state, compacted,
    with as many partitions as its input topics (a source's: one), and the replication
    factor of its input topics (the broker's default when they do not say)."""
    spec = blueprint.streamlets[streamlet]
    partitions = blueprint.input_partitions(streamlet)
    inputs = [
        topic
        for inlet in spec.cls.inlets()
        if inlet not in spec.cls.replay_inlets
        and (topic := blueprint.inlet_topic(streamlet, inlet)) is not None
    ]
    factors = [
        topic.replication_factor
        for inlet in spec.cls.inlets()
        if (topic := blueprint.inlet_topic(streamlet, inlet)) is not None
        and topic.replication_factor is not None
    ]
    return [
        TopicPlan(
            changelog_topic(blueprint.name, streamlet, state),
            partitions,
            max(factors, default=None),
            dict(CHANGELOG_CONFIG),
            f"changelog of state '{streamlet}.{state}'",
            tuple(kafka_topic(t) for t in inputs),
        )
        for state in spec.cls.states()
    ]


def plan_topics(
    blueprint: VerifiedBlueprint,
    streamlets: Iterable[str] | None = None,
    *,
    dead_letter_template: str | None = None,
) -> list[TopicPlan]:
    """The topics ``streamlets`` (default: all) read and write, plus their dead-letter
    topics and the changelog topics of their states."""
    names = list(blueprint.streamlets) if streamlets is None else list(streamlets)
    wanted: dict[str, TopicPlan] = {}
    for topic in blueprint.topics.values():
        refs = {r.streamlet for r in (*topic.producers, *topic.consumers)}
        if streamlets is None or refs & set(names):
            plan = _plan(topic)
            wanted.setdefault(plan.name, plan)
    for name in names:
        spec = blueprint.streamlets[name]
        if spec.on_error == "dead-letter":
            dlq = dead_letter_topic(blueprint, name, dead_letter_template)
            wanted.setdefault(dlq, TopicPlan(dlq, None, None, {}, f"dead letters of '{name}'"))
        for plan in changelog_plans(blueprint, name):
            wanted.setdefault(plan.name, plan)
    return list(wanted.values())


def _error_code(exc: BaseException) -> int | None:
    if isinstance(exc, KafkaException) and exc.args and isinstance(exc.args[0], KafkaError):
        code: int = exc.args[0].code()
        return code
    return None


class _ClientErrors:
    """The admin client's ``error_cb``: the last error, and the first refusal."""

    def __init__(self) -> None:
        self.last: Any = None
        self.refusal: Any = None

    def __call__(self, error: Any) -> None:
        self.last = error
        if self.refusal is None and error.code() in _REFUSALS:
            self.refusal = error


def _security(config: Mapping[str, Any]) -> str:
    keys = ("security.protocol", "sasl.mechanism", "sasl.mechanisms")
    found = [f"{k}={config[k]}" for k in keys if k in config]
    return f" ({', '.join(found)})" if found else ""


class _Broker:
    """Requests to the broker in short attempts that look at ``stopping`` in between."""

    def __init__(
        self,
        admin_config: Mapping[str, Any],
        *,
        timeout: float | None,
        stopping: Callable[[], bool],
    ) -> None:
        self.errors = _ClientErrors()
        config: dict[str, Any] = {"logger": client_log}
        config.update(admin_config)
        config["error_cb"] = self.errors
        self.config = config
        self.where = str(admin_config.get("bootstrap.servers"))
        self.admin = AdminClient(config)
        self.timeout = timeout
        self.stopping = stopping
        self.deadline = None if timeout is None else time.monotonic() + timeout

    def _attempt_seconds(self) -> float:
        if self.deadline is None:
            return ATTEMPT_SECONDS
        return max(min(ATTEMPT_SECONDS, self.deadline - time.monotonic()), 0.05)

    def _check_stop(self) -> None:
        if self.stopping():
            raise StartupStopped(f"stopped while waiting for the Kafka broker at {self.where}")

    def _refused(self) -> None:
        """Raise :class:`BrokerRefused` when the client reported a refusal."""
        self.admin.poll(0)  # serves error_cb (and the client's log lines)
        refusal = self.errors.refusal
        if refusal is None:
            return
        what = _REFUSALS[refusal.code()]
        raise BrokerRefused(
            f"{what} the Kafka broker at {self.where} failed{_security(self.config)}: "
            f"{refusal.str()}; check that the broker's listener at that address uses this "
            "security protocol and mechanism, and the credentials (sasl.username, "
            "sasl.password) or TLS settings (ssl.*) in the 'kafka:' section of the config "
            "file or the STREAMLETS_KAFKA_* variables"
        )

    def metadata(self) -> Any:
        """The cluster's metadata, once the broker answers (or :class:`BrokerUnreachable`
        after ``timeout``; :class:`StartupStopped` when ``stopping()``).

        Waiting is said once; the client's own connection failures are logged once every
        few seconds while it lasts (see :class:`runner.kafka.logs.ConnectionFailures`).
        """
        failures = 0
        while True:
            self._check_stop()
            try:
                return self.admin.list_topics(timeout=self._attempt_seconds())
            except KafkaException as exc:
                self._refused()
                self._check_stop()
                last = self.errors.last
                why = last.str() if last is not None else str(exc)
                if self.deadline is not None and time.monotonic() >= self.deadline:
                    raise BrokerUnreachable(
                        f"cannot reach the Kafka broker at {self.where} within "
                        f"{self.timeout:g} s{_security(self.config)}: {why}; check the "
                        "address (--bootstrap or bootstrap.servers) and that the broker runs"
                    ) from None
                failures += 1
                if failures == 2:  # one slow answer (a TLS handshake, say) is not news
                    log.warning(
                        "waiting for the Kafka broker at %s%s to answer: %s; retrying until "
                        "it does%s",
                        self.where,
                        _security(self.config),
                        why,
                        "" if self.deadline is None else f" (for {self.timeout:g} s at most)",
                    )

    def wait(self, futures: Iterable[concurrent.futures.Future[Any]]) -> None:
        """Wait for admin operations to finish (looking at ``stopping`` in between)."""
        pending = set(futures)
        while pending:
            self._check_stop()
            _, pending = concurrent.futures.wait(pending, timeout=self._attempt_seconds())
            if pending and self.deadline is not None and time.monotonic() >= self.deadline:
                return  # result() then raises the operation's own timeout error


def _following(plan: TopicPlan, existing: Mapping[str, int]) -> TopicPlan:
    """``plan`` with the partitions of the topics it follows where they exist with more
    (an input topic created with more partitions than the blueprint says: its records
    come from every one of them, and a changelog has a partition per input partition)."""
    have = [existing[t] for t in plan.follows if t in existing]
    if plan.partitions is None or not have or max(have) <= plan.partitions:
        return plan
    return replace(
        plan, partitions=max(have), what=f"{plan.what}, with as many partitions as its input"
    )


def ensure_topics(
    admin_config: Mapping[str, Any],
    plans: Iterable[TopicPlan],
    *,
    timeout: float | None = 30.0,
    stopping: Callable[[], bool] = lambda: False,
) -> list[str]:
    """Create the missing topics; returns the names created.

    ``timeout`` bounds the wait for the broker (``None``: wait until it answers);
    ``stopping`` is looked at about every
    :data:`ATTEMPT_SECONDS` and raises :class:`StartupStopped` when it returns true.

    Raises :class:`BrokerRefused` when authentication or TLS fails,
    :class:`BrokerUnreachable` after ``timeout``, and :class:`TopicError` when a topic
    cannot be created, or exists with fewer partitions than the blueprint asks for (using
    it would silently change the parallelism).
    """
    plans = list(plans)
    if not plans:
        return []
    broker = _Broker(admin_config, timeout=timeout, stopping=stopping)
    admin = broker.admin
    metadata = broker.metadata()
    existing = {name: len(t.partitions) for name, t in metadata.topics.items() if not t.error}
    plans = [_following(p, existing) for p in plans]
    missing = [p for p in plans if p.name not in existing]
    created: list[str] = []
    if missing:
        new = [
            NewTopic(
                p.name,
                p.partitions or DEFAULT_PARTITIONS,
                p.replication_factor or -1,
                config=dict(p.config),
            )
            for p in missing
        ]
        wait = timeout if timeout is not None else 30.0
        futures = admin.create_topics(new, operation_timeout=wait, request_timeout=wait)
        broker.wait(futures.values())
        for plan in missing:
            try:
                futures[plan.name].result()
                created.append(plan.name)
                log.info("created topic %s (%s)", plan.name, plan.what)
            except KafkaException as exc:
                if _error_code(exc) == KafkaError.TOPIC_ALREADY_EXISTS:
                    continue  # another replica was quicker
                raise TopicError(
                    f"cannot create Kafka topic '{plan.name}' ({plan.what}): {exc}"
                ) from None
        if len(created) < len(missing):
            metadata = broker.metadata()
            existing = {n: len(t.partitions) for n, t in metadata.topics.items() if not t.error}
    for plan in plans:
        have = existing.get(plan.name)
        if plan.name in created or have is None or plan.partitions is None:
            continue
        if have < plan.partitions:
            raise TopicError(
                f"Kafka topic '{plan.name}' ({plan.what}) exists with {have} partition(s) but the "
                f"blueprint asks for {plan.partitions}; add partitions to the topic "
                f"(kafka-topics --alter --partitions {plan.partitions}) or lower 'partitions:' "
                "in the blueprint"
            )
        if have > plan.partitions:
            log.info(
                "topic %s has %d partitions, more than the %d the blueprint asks for",
                plan.name,
                have,
                plan.partitions,
            )
    return created
