"""Avro in the Confluent Schema Registry wire format on the embedded broker: two streamlets
round-trip records, confluent-kafka's AvroDeserializer reads what streamlets wrote, and a
streamlet reads what confluent-kafka's AvroSerializer wrote.

No registry server can be installed here, so the registry is confluent-kafka's in-process
one (a ``mock://`` URL); the streamlet processes run in threads of this process, where
they share it (one registry client per URL in a process)."""

from __future__ import annotations

import itertools
import threading
from collections.abc import Callable

from confluent_kafka import Producer
from confluent_kafka.schema_registry.avro import AvroDeserializer, AvroSerializer
from confluent_kafka.serialization import MessageField, SerializationContext

from blueprint import verify
from runner.kafka import ProcessOptions, StreamletProcess
from runner.kafka.options import load_runner_sections
from runner.runtime.registry import registry_client
from streamlets.codecs.confluent import unframe
from tests.integration.conftest import FAST_GROUP, KafkaApp, KafkaTools

_urls = itertools.count()


def test_avro_confluent_records_round_trip_and_interoperate_with_confluent_kafka(
    kafka: KafkaTools, kafka_app: Callable[..., KafkaApp]
) -> None:
    app = kafka_app(
        """
        streamlets:
          numbers: {class: ktapp:Numbers, config: {count: 50}}
          pass: {class: ktapp:Passthrough}
        topics:
          items: {name: "{app}-items", producers: [numbers.out], consumers: [pass.inp]}
          out: {name: "{app}-out", producers: [pass.out], codec: avro-confluent}
        """
    )
    url = f"mock://kafka-test-{next(_urls)}"
    section, settings = load_runner_sections(
        {"kafka": {"consumer": FAST_GROUP}, "schema_registry": {"url": url}},
        bootstrap=app.bootstrap,
        environ={},
    )
    options = ProcessOptions.layered(section, metrics=False)
    blueprint = verify(str(app.blueprint)).unwrap()
    # `items` says no codec: with a schema_registry section every Avro topic is framed.
    assert StreamletProcess(blueprint, "numbers", settings, options).run() == 0
    client = registry_client({"url": url})
    items_ctx = SerializationContext(f"{app.name}-items", MessageField.VALUE)
    written = kafka.read(f"{app.name}-items", 50)
    assert {unframe(m.value())[0] for m in written} == {
        client.get_latest_version(f"{app.name}-items-value").schema_id
    }
    # A producer outside streamlets writes to the same topic with confluent-kafka's serializer.
    serializer = AvroSerializer(client, client.get_latest_version(f"{app.name}-items-value").schema)
    producer = Producer({"bootstrap.servers": app.bootstrap})
    for i in range(1000, 1010):
        producer.produce(f"{app.name}-items", serializer({"id": i, "payload": "theirs"}, items_ctx))
    assert producer.flush(30) == 0

    process = StreamletProcess(blueprint, "pass", settings, options)
    codes: list[int] = []
    thread = threading.Thread(target=lambda: codes.append(process.run()))
    thread.start()
    try:
        out = kafka.read(f"{app.name}-out", 60)
    finally:
        process.stop()
        thread.join(30)
    assert codes == [0], process.status
    assert len(out) == 60, process.status
    deserialize = AvroDeserializer(client)
    out_ctx = SerializationContext(f"{app.name}-out", MessageField.VALUE)
    records = [deserialize(m.value(), out_ctx) for m in out]
    assert sorted(r["id"] for r in records) == [*range(50), *range(1000, 1010)]
    assert {r["payload"] for r in records if r["id"] >= 1000} == {"theirs"}
    assert client.get_latest_version(f"{app.name}-out-value").subject == f"{app.name}-out-value"
