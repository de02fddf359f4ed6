"""The bundled model-serving streamlet: subclass it with your record types.

The model it scores against is its state: a model server (URL, model, version, protocol)
or an embedded model file, set from config and replaced at run time by records on the
inherited ``control`` inlet (the *dynamically controlled stream* pattern). The inlet is
optional: a blueprint that configures the model need not connect it.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, model_validator

from streamlets.errors import StreamletDefinitionError
from streamlets.ports import Inlet
from streamlets.serving.backends import Backend, PooledBackend, PoolMember, RemoteBackend
from streamlets.serving.embedded import load_embedded
from streamlets.serving.errors import ServingError
from streamlets.serving.grpc_v2 import GrpcBackend
from streamlets.serving.metrics import ServingMetrics
from streamlets.serving.model_info import ModelInfo
from streamlets.serving.protocols import PROTOCOLS, Target, protocol_for
from streamlets.serving.retry import Backoff
from streamlets.serving.scorer import Scored, Scorer, ScorerSettings
from streamlets.serving.transport import (
    DEFAULT_MAX_RESPONSE_BYTES,
    AiohttpTransport,
    HttpxTransport,
    StreamsTransport,
    Transport,
)
from streamlets.streamlet import Streamlet

__all__ = ["ModelServingStreamlet", "ModelUpdate", "ServingConfig"]

log = logging.getLogger("streamlets.serving")


class ModelUpdate(BaseModel):
    """A control record: which model to score against from now on.

    Either a model server (``url`` and ``model``, optional ``version``, ``protocol``
    ``v1``, ``v2`` or ``v2-grpc`` - the streamlet's configured protocol when not given - and the V2
    ``outputs`` to request; ``urls`` instead of ``url`` for several servers of the same
    model, which share the batches) or an embedded model file (``path``: joblib scikit-learn or
    ``.onnx``; ``model`` and ``version`` then only name it).
    """

    __avro_namespace__ = "streamlets.serving"

    url: str | None = None
    model: str | None = None
    version: str | None = None
    protocol: str | None = None
    path: str | None = None
    outputs: list[str] | None = None
    urls: list[str] | None = None


class ServingConfig(BaseModel):
    """Config of a :class:`ModelServingStreamlet` (subclass it to add your own keys).

    - ``url``, ``model``, ``version``, ``protocol`` (``v1`` default, ``v2``, or ``v2-grpc``:
      V2 over gRPC, with ``url`` ``grpc://host:port`` or ``grpcs://`` for TLS): the model
      server to start with (``url`` may list several servers of the same model: batches go
      to the least busy one that is up); or ``path``: an embedded model file. With
      neither, records wait for the first control record.
    - ``outputs``: V2 outputs to request by name (MLServer's scikit-learn runtime has
      ``predict`` and ``predict_proba``), or embedded model methods; ``input_name``: the V2
      tensor name for row inputs.
    - ``batch_size``: most records per request; ``max_wait_ms``: how long a partial batch
      waits for more records; ``concurrency``: requests in flight.
    - ``timeout_s``: per-request timeout; ``retries``: retries of a timed-out request or of
      a 429/502/503/504 answer before its records go to dead letters. A server that cannot
      be reached is waited for without limit (records are held, not dropped).
    - ``transport``: ``streams`` (default, a lean HTTP/1.1 client on asyncio streams),
      ``aiohttp`` or ``httpx``; ``auth_token``: a bearer token sent with every request
      (``Authorization: Bearer ...``, for model servers behind a gateway; secret);
      ``max_response_bytes``: the largest answer read (a larger one splits the batch).
    """

    model_config = ConfigDict(extra="forbid", protected_namespaces=())

    url: str | list[str] | None = None
    model: str | None = None
    version: str | None = None
    protocol: Literal["v1", "v2", "v2-grpc"] = "v1"
    path: Path | None = Field(
        None, description="embedded model file; relative paths are relative to the blueprint"
    )
    outputs: list[str] = Field(default_factory=list)
    input_name: str = "input-0"
    # Defaults measured by benchmarks/model_serving.py (see the README): a model server's
    # cost per request outweighs its cost per row for small rows, so big batches win; four
    # in flight keep the server busy while the client encodes requests and builds results.
    batch_size: int = Field(1024, ge=1, le=65536)
    max_wait_ms: float = Field(5.0, ge=0, le=60_000)
    concurrency: int = Field(4, ge=1, le=1024)
    timeout_s: float = Field(30.0, gt=0)
    retries: int = Field(5, ge=0)
    transport: Literal["streams", "aiohttp", "httpx"] = "streams"
    auth_token: SecretStr | None = None
    max_response_bytes: int = Field(DEFAULT_MAX_RESPONSE_BYTES, ge=1024)

    @model_validator(mode="after")
    def _one_model(self) -> ServingConfig:
        if self.url and self.path:
            raise ValueError("give either url (a model server) or path (an embedded model)")
        if self.url and not self.model:
            raise ValueError("url needs model: the name of the model on the server")
        return self


def _resolve(path: str, owner: type) -> Path:
    """``path`` as given when it exists, else relative to the streamlet's module folder."""
    given = Path(path).expanduser()
    if given.is_absolute() or given.exists():
        return given
    module = sys.modules.get(owner.__module__)
    file = getattr(module, "__file__", None)
    if file:
        here = Path(file).resolve().parent
        for base in (here, here.parent):
            if (base / given).exists():
                return base / given
    return given


class ModelServingStreamlet(Streamlet):
    """Scores each record against a model server or an embedded model, in batches.

    Subclass it with an inlet for your records and an outlet for your results::

        class ScoreTransactions(ModelServingStreamlet):
            records = Inlet(Transaction)
            results = Outlet(ScoredTransaction)

            def to_input(self, record: Transaction) -> list[float]:
                return [record.amount, record.age]

            def to_result(self, record, prediction, model: ModelInfo) -> ScoredTransaction:
                return ScoredTransaction(id=record.id, fraud=bool(prediction),
                                         model=model.name, version=model.version)

    ``to_input`` returns one model input row (a list) or a dict of named inputs;
    ``to_result`` gets the record, its prediction and the :class:`ModelInfo` of the model
    that answered. A record the model rejects raises
    :class:`~streamlets.serving.errors.ModelRejected` (the server's message), so the
    runner's error policy applies to it alone: by default it goes to the dead letters.
    Results leave in input order. See :class:`ServingConfig` for the settings.
    """

    Config: ClassVar[type[BaseModel]] = ServingConfig
    config: ServingConfig

    #: Optional: with a model in the config, a blueprint need not connect it. Producers of
    #: its (compacted) topic key their records, e.g. ``Outlet(ModelUpdate, key=...)``.
    control = Inlet(
        ModelUpdate,
        description="which model to score against from now on (latest wins)",
        optional=True,
    )

    #: Records the runner may have in ``process`` at once. Batches form across those
    #: calls, so it must exceed ``batch_size * concurrency``; memory is bounded by the
    #: runner's queues, not by this.
    concurrency: ClassVar[int] = 1 << 16

    #: Inlets a runner reads from the beginning of their topic at start (a compacted
    #: topic), so the latest control record survives restarts.
    replay_inlets: ClassVar[tuple[str, ...]] = ("control",)

    metrics: ServingMetrics

    def __init__(
        self, config: BaseModel | Mapping[str, Any] | None = None, *, name: str = ""
    ) -> None:
        super().__init__(config, name=name)
        self.metrics = ServingMetrics()
        self._scorer: Scorer | None = None
        self._transport: Transport | None = None
        self._tickets = itertools.count(1)
        self._applied = 0

    @classmethod
    def definition_problems(cls) -> list[str]:
        """The base checks plus: a data inlet, an outlet and ``to_result`` are defined."""
        problems = super().definition_problems()
        if cls is ModelServingStreamlet:
            return problems
        data = [name for name in cls.inlets() if name != "control"]
        if not data:
            problems.append("it declares no inlet for the records to score (only 'control')")
        if cls.outlets() and cls.to_result is ModelServingStreamlet.to_result:
            problems.append("it defines no to_result(record, prediction, model) method")
        return problems

    # -- what subclasses implement --------------------------------------------------------

    def to_input(self, record: Any) -> Any:
        """The model input of ``record``: a row (list) or a dict of named inputs.

        The default passes lists and dicts through and turns a pydantic model into a dict
        of its fields (named inputs).
        """
        if isinstance(record, BaseModel):
            return record.model_dump()
        return record

    def to_result(self, record: Any, prediction: Any, model: ModelInfo) -> Any:
        """The result record for ``record`` given the model's ``prediction``."""
        raise StreamletDefinitionError(
            f"{type(self).__name__} must define to_result(record, prediction, model)"
        )

    # -- state ----------------------------------------------------------------------------

    def _scorer_now(self) -> Scorer:
        if self._scorer is None:
            cfg = self.config
            settings = ScorerSettings(
                batch_size=cfg.batch_size,
                max_wait=cfg.max_wait_ms / 1000.0,
                concurrency=cfg.concurrency,
                timeout=cfg.timeout_s,
                retries=cfg.retries,
                backoff=Backoff(),
            )
            self._scorer = Scorer(settings, self.metrics)
        return self._scorer

    def make_transport(self) -> Transport:
        """The HTTP transport (override to swap it, e.g. in tests)."""
        cfg = self.config
        headers = {}
        if cfg.auth_token is not None:
            headers["Authorization"] = f"Bearer {cfg.auth_token.get_secret_value()}"
        kinds: dict[str, type[AiohttpTransport | HttpxTransport | StreamsTransport]] = {
            "aiohttp": AiohttpTransport,
            "httpx": HttpxTransport,
            "streams": StreamsTransport,
        }
        return kinds[cfg.transport](
            cfg.concurrency, headers=headers, max_response_bytes=cfg.max_response_bytes
        )

    def _transport_now(self) -> Transport:
        if self._transport is None:
            self._transport = self.make_transport()
        return self._transport

    async def _backend_for(self, update: ModelUpdate) -> Backend:
        cfg = self.config
        outputs = update.outputs if update.outputs is not None else cfg.outputs
        if update.path:
            path = _resolve(update.path, type(self))
            return await asyncio.to_thread(
                load_embedded, path, name=update.model, version=update.version, outputs=outputs
            )
        urls = list(update.urls or []) or ([update.url] if update.url else [])
        if not urls or not update.model:
            raise ServingError(
                "a control record needs url and model (a model server) or path (an "
                f"embedded model file); got {update.model_dump(exclude_none=True)}"
            )
        protocol = update.protocol or cfg.protocol
        if protocol not in PROTOCOLS:
            raise ServingError(
                f"control record names protocol {protocol!r}; expected one of "
                f"{', '.join(PROTOCOLS)}"
            )
        targets = [Target(u, update.model, update.version, protocol, tuple(outputs)) for u in urls]
        retired = asyncio.Event()
        members: list[PoolMember]
        if protocol == "v2-grpc":
            token = cfg.auth_token.get_secret_value() if cfg.auth_token is not None else None
            members = [
                GrpcBackend(
                    t,
                    input_name=cfg.input_name,
                    token=token,
                    max_response_bytes=cfg.max_response_bytes,
                    retired=retired,
                )
                for t in targets
            ]
        else:
            speaker = protocol_for(protocol, input_name=cfg.input_name)
            members = [RemoteBackend(t, speaker, self._transport_now(), retired) for t in targets]
        return members[0] if len(members) == 1 else PooledBackend(members, retired)

    async def use(self, update: ModelUpdate) -> ModelInfo:
        """Switch to the model ``update`` names; batches not yet sent go to it.

        Updates apply in the order they arrive: one that finishes loading after a newer one
        is dropped. Raises :class:`ServingError` (the record then goes to dead letters)
        when the update names no model or its file cannot be loaded.
        """
        ticket = next(self._tickets)
        backend = await self._backend_for(update)
        if ticket < self._applied:
            await backend.aclose()
            return backend.info
        self._applied = ticket
        previous = self._scorer_now().switch(backend)
        log.info(
            "%s: scoring with %s (%s %s)%s",
            self.name,
            backend.info.label,
            backend.info.protocol,
            backend.info.url,
            f", was {previous.info.label}" if previous is not None else "",
        )
        return backend.info

    # -- lifecycle and records ------------------------------------------------------------

    async def setup(self) -> None:
        """Start with the model of the config, when it names one."""
        cfg = self.config
        self._scorer_now()
        if cfg.url or cfg.path:
            try:
                many = isinstance(cfg.url, list)
                await self.use(
                    ModelUpdate(
                        url=None if many else cfg.url,
                        urls=cfg.url if many else None,
                        model=cfg.model,
                        version=cfg.version,
                        protocol=cfg.protocol,
                        path=str(cfg.path) if cfg.path else None,
                    )
                )
            except ServingError as exc:
                raise ServingError(f"streamlet '{self.name}': {exc}") from exc

    async def teardown(self) -> None:
        """Finish the batches in flight and close the connections."""
        if self._scorer is not None:
            await self._scorer.aclose()
        if self._transport is not None:
            await self._transport.aclose()
            self._transport = None

    async def process(self, record: Any) -> Any:
        """Score ``record`` (batched with the records around it) and build its result."""
        value = self.to_input(record)
        prediction, model = await self._scorer_now().score(value)
        return self.to_result(record, prediction, model)

    async def process_many(self, records: list[Any]) -> list[Any]:
        """Score many records together (the runner hands over each batch it has).

        Same results as :meth:`process` for each record, without a task per record: one
        result per record, or in its place the exception that record failed with. A
        subclass that overrides ``process`` has it called for each record instead.
        """
        if type(self).process is not ModelServingStreamlet.process:
            return list(
                await asyncio.gather(*(self.process(r) for r in records), return_exceptions=True)
            )
        to_input = self.to_input
        try:  # the common case, at list-comprehension speed
            values = [to_input(r) for r in records]
        except Exception:
            return await self._process_some(records)
        parts = self._scorer_now().submit(values)
        if len(parts) == 1:
            return self._results(records, await parts[0].outcome())
        # Build the results of each batch as it is answered, while later ones are in flight.
        results: list[Any] = []
        for part in parts:
            scored = await part.outcome()
            start = len(results)
            results.extend(self._results(records[start : start + part.count], scored))
        return results

    async def _process_some(self, records: list[Any]) -> list[Any]:
        """:meth:`process_many` when some ``to_input`` failed: those records get their error."""
        values: list[Any] = []
        inputs: list[Any] = []
        failed: dict[int, Exception] = {}
        for index, record in enumerate(records):
            try:
                values.append(self.to_input(record))
            except Exception as exc:
                failed[index] = exc
                continue
            inputs.append(record)
        scored = await self._scorer_now().score_many(values) if values else None
        results = iter(self._results(inputs, scored) if scored is not None else [])
        return [failed[i] if i in failed else next(results) for i in range(len(records))]

    def _results(self, records: list[Any], scored: Scored) -> list[Any]:
        """``to_result`` of each scored record; a failed record gets its error instead."""
        to_result = self.to_result
        errors = scored.errors
        results: list[Any] = []
        append = results.append
        for record, prediction, info in zip(records, scored.predictions, scored.infos, strict=True):
            if info is None:  # not scored: its error is in `errors`
                append(errors[len(results)])
                continue
            try:
                append(to_result(record, prediction, info))
            except Exception as exc:
                append(exc)
        return results

    @control.handler
    async def on_control(self, update: ModelUpdate) -> None:
        """Apply a control record (see :meth:`use`)."""
        await self.use(update)
