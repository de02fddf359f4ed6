"""The files of a new project (``flow new``): a streamlet, a blueprint, a test, settings.

Every file is a :class:`string.Template` (``$app``, ``$package``): the project verifies,
runs, passes plain ``pytest`` and ``mypy --strict`` as written. The Dockerfile and the
framework's wheel are not here: ``flow new`` makes them as ``flow dockerfile`` does.
"""

from __future__ import annotations

from string import Template

__all__ = ["SKELETON"]

_STREAMLETS = '''\
"""The streamlets of $app: orders in, invoices out."""

from __future__ import annotations

from pydantic import BaseModel, Field

from streamlets import Inlet, Outlet, Streamlet


class Order(BaseModel):
    """An order as it comes in."""

    id: str
    amount: float


class Invoice(BaseModel):
    """An order with its tax."""

    id: str
    amount: float
    tax: float


class AddTax(Streamlet):
    """Adds the tax to each order."""

    orders = Inlet(Order)
    invoices = Outlet(Invoice, key="id")  # each invoice is keyed by its order's id

    class Config(BaseModel):
        rate: float = Field(0.2, ge=0, description="the tax rate")

    config: Config

    def process(self, order: Order) -> Invoice:
        tax = round(order.amount * self.config.rate, 2)
        return Invoice(id=order.id, amount=order.amount, tax=tax)
'''

_BLUEPRINT = """\
# The $app application: orders from a file, with their tax added, printed.
# flow verify blueprint.yaml && flow run-local blueprint.yaml
name: $app
streamlets:
  orders:
    class: streamlets.library:FileSource
    config: {path: data/orders.jsonl, schema: $package.streamlets:Order}
  tax:
    class: $package.streamlets:AddTax
    config: {rate: 0.2}
  print:
    class: streamlets.library:ConsoleSink
    config: {schema: $package.streamlets:Invoice}
topics:
  orders:
    producers: [orders.out]
    consumers: [tax.orders]
  invoices:
    producers: [tax.invoices]
    consumers: [print.records]
"""

_TEST = '''\
"""Tests of $app's streamlets: run them as a run does, on records in memory."""

from __future__ import annotations

from pathlib import Path

from runner.testkit import run_blueprint, run_streamlet

from $package.streamlets import AddTax, Invoice, Order

BLUEPRINT = Path(__file__).resolve().parents[1] / "blueprint.yaml"


def test_add_tax() -> None:
    order = Order(id="1", amount=10.0)
    result = run_streamlet(AddTax, {"orders": [order]}, config={"rate": 0.25})
    assert result.outputs["invoices"] == [Invoice(id="1", amount=10.0, tax=2.5)]
    assert result.records["invoices"][0].key == "1"


def test_the_blueprint_adds_tax_to_what_comes_in() -> None:
    # Only `tax` runs: the injected records stand in for the file source, and the
    # collected topic is read here instead of being printed.
    result = run_blueprint(
        BLUEPRINT,
        inject={"orders": [Order(id="a", amount=100.0), Order(id="b", amount=5.0)]},
        collect=["invoices"],
    )
    assert [(i.id, i.tax) for i in result.topics["invoices"]] == [("a", 20.0), ("b", 1.0)]
'''

_PYPROJECT = """\
# Settings of the tools a $app developer runs (the application itself is not a package:
# the image runs it from /app, see the Dockerfile).

[tool.pytest.ini_options]
# Plain `pytest` imports $package/ from the project directory, as `flow` does.
pythonpath = ["."]
testpaths = ["tests"]

[tool.mypy]
strict = true
plugins = ["pydantic.mypy"]
files = ["$package", "tests"]
"""

_REQUIREMENTS = """\
# What $app's streamlets import besides the framework, one requirement a line
# (the Dockerfile installs them; the framework comes from its wheel in wheels/).
"""

_ORDERS = """\
{"id": "o-1", "amount": 120.0}
{"id": "o-2", "amount": 35.5}
{"id": "o-3", "amount": 8.0}
"""

_README = """\
# $app

```
flow verify blueprint.yaml          # checks the whole graph
flow run-local blueprint.yaml       # runs it in this process
pytest                              # tests/ runs the streamlets on records in memory
mypy                                # strict, as pyproject.toml says
flow run-local blueprint.yaml --kafka             # one process per streamlet, on Kafka
flow dockerfile blueprint.yaml -o Dockerfile      # again after upgrading the framework
docker build -t $app:1 .
flow deploy blueprint.yaml --image $app:1 --job orders -o deploy/
```

- `$package/streamlets.py`: the record types and the streamlet `AddTax`.
- `blueprint.yaml`: the application: a file source, `AddTax`, a console sink.
- `tests/`: tests with `runner.testkit`.
- `Dockerfile`, `wheels/`: the image (the framework's wheel and this directory).
"""

_DOCKERIGNORE = """\
.venv
.git
runs
deploy
**/__pycache__
.mypy_cache
.pytest_cache
"""

_GITIGNORE = """\
.venv/
__pycache__/
runs/
deploy/
.mypy_cache/
.pytest_cache/
"""

#: Path in the project (with ``$package``) -> the file's text.
SKELETON: dict[str, Template] = {
    "$package/__init__.py": Template('"""The $app application."""\n'),
    "$package/streamlets.py": Template(_STREAMLETS),
    "blueprint.yaml": Template(_BLUEPRINT),
    "tests/test_streamlets.py": Template(_TEST),
    "data/orders.jsonl": Template(_ORDERS),
    "pyproject.toml": Template(_PYPROJECT),
    "requirements.txt": Template(_REQUIREMENTS),
    "README.md": Template(_README),
    ".dockerignore": Template(_DOCKERIGNORE),
    ".gitignore": Template(_GITIGNORE),
}
