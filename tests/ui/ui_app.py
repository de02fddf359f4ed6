"""Streamlets for the live view's tests: a check that rejects some records, one that fails
the run at a given record, and a sink."""

from __future__ import annotations

from pydantic import BaseModel, Field, SecretStr

from streamlets import Inlet, Outlet, Streamlet
from streamlets.library.generator import Counter


class Checked(BaseModel):
    """A counter that passed the check."""

    index: int


class Check(Streamlet):
    """Passes counters on; rejects every ``every``-th one (a dead letter)."""

    counters = Inlet(Counter)
    out = Outlet(Checked)

    class Config(BaseModel):
        every: int = Field(5, description="reject the counters whose index is a multiple")
        token: SecretStr = Field(SecretStr("s3cr3t-token-value"), description="a secret")

    config: Config

    def process(self, counter: Counter) -> Checked:
        if counter.index % self.config.every == 0:
            raise ValueError(f"counter {counter.index} is a multiple of {self.config.every}")
        return Checked(index=counter.index)


class FailAt(Streamlet):
    """Passes counters on until the one at ``index``, which fails."""

    counters = Inlet(Counter)
    out = Outlet(Checked)

    class Config(BaseModel):
        index: int = 20

    config: Config

    def process(self, counter: Counter) -> Checked:
        if counter.index >= self.config.index:
            raise RuntimeError(f"counter {counter.index} reached the failing index")
        return Checked(index=counter.index)


class Drop(Streamlet):
    """Takes checked counters and keeps nothing."""

    checked = Inlet(Checked)

    def process(self, record: Checked) -> None:
        return None


class Pass(Streamlet):
    """Passes counters on as they are."""

    counters = Inlet(Counter)
    out = Outlet(Counter)

    def process(self, counter: Counter) -> Counter:
        return counter


class BadSetup(Streamlet):
    """A sink whose setup() fails."""

    checked = Inlet(Checked)

    def setup(self) -> None:
        raise ConnectionError("the database is not there")

    def process(self, record: Checked) -> None:
        return None
