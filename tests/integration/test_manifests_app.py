"""A second application for the manifest tests: HTTP ingress, secrets, odd topic names,
an exactly-once streamlet.

``write_orders_app`` writes it into a directory; the tests here check that it verifies
and that deploying it finds what makes it interesting (the other manifest tests use it).
"""

from __future__ import annotations

from pathlib import Path

from blueprint import load_overrides, verify

#: Secret values in the blueprint and config file below; they may appear in the Secret only.
SECRET_VALUES = ("s3cr3t-api-key-0001", "hunter2-archive-pw", "kafka-sasl-pw-42")

MODULE = '''
from pathlib import Path

from pydantic import BaseModel, SecretStr

from streamlets import Inlet, Outlet, Streamlet


class Order(BaseModel):
    order_id: str
    amount: float


class Priced(BaseModel):
    order_id: str
    amount: float
    currency: str


class Pricing(Streamlet):
    """Prices orders with a rate service that needs an API key."""

    orders = Inlet(Order)
    priced = Outlet(Priced)

    class Config(BaseModel):
        currency: str = "EUR"
        api_key: SecretStr
        endpoint: str = "https://rates.example"

    def process(self, order):
        return Priced(order_id=order.order_id, amount=order.amount, currency=self.config.currency)


class Archive(Streamlet):
    """Keeps priced orders."""

    priced = Inlet(Priced)
    on_error = "skip"

    class Config(BaseModel):
        directory: Path = Path("archive")
        password: SecretStr | None = None

    def process(self, record):
        return None
'''

BLUEPRINT = """\
name: orders
description: Orders come in over HTTP, get priced and archived.
resources:
  requests: {cpu: 250m, memory: 256Mi}
  limits: {memory: 1Gi}
streamlets:
  http-in:
    class: streamlets.library.http:HttpIngress
    config: {schema: "orders_app:Order", port: 8080}
  pricing:
    class: orders_app:Pricing
    config: {currency: USD, api_key: "s3cr3t-api-key-0001"}
    replicas: 2
    processing: exactly-once
    resources:
      requests: {memory: 2Gi}
      limits: {cpu: 2, ephemeral-storage: 1Gi}
  archive:
    class: orders_app:Archive
    config: {directory: out, password: "hunter2-archive-pw"}
topics:
  orders:
    name: Orders_V1
    producers: [http-in.out]
    consumers: [pricing.orders]
    partitions: 6
    replication_factor: 3
    config: {retention.ms: "604800000"}
  priced:
    producers: [pricing.priced]
    consumers: [archive.priced]
"""

CONFIG = """\
kafka:
  security.protocol: SASL_SSL
  sasl.mechanism: SCRAM-SHA-512
  sasl.username: orders
  sasl.password: kafka-sasl-pw-42
"""


def write_orders_app(directory: Path) -> tuple[Path, Path]:
    """Write the orders application; returns (blueprint path, config file path)."""
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "orders_app.py").write_text(MODULE, encoding="utf-8")
    blueprint = directory / "blueprint.yaml"
    blueprint.write_text(BLUEPRINT, encoding="utf-8")
    config = directory / "kafka.yaml"
    config.write_text(CONFIG, encoding="utf-8")
    return blueprint, config


def test_orders_app_verifies(tmp_path: Path) -> None:
    blueprint, config = write_orders_app(tmp_path / "orders")
    result = verify(blueprint, load_overrides(str(config))).unwrap()
    assert set(result.streamlets) == {"http-in", "pricing", "archive"}
    assert result.topics["orders"].name == "Orders_V1"
