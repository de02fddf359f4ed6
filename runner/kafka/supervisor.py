"""`flow run-local --kafka`: one `flow run-streamlet` process per replica, against Kafka.

Starts an embedded broker when no bootstrap servers are given, creates every topic of the
blueprint, starts the processes, merges their logs (each line prefixed by its process),
shows live progress, restarts a crashed process with backoff, and stops everything on
Ctrl-C. When every bounded source has ended and every consumer group has committed every
record of the topics it reads (as the broker says: see :mod:`runner.kafka.completion`),
the windowed streamlets are told that their input has ended, in the order the graph runs,
so that they close and emit their open windows (:mod:`runner.kafka.end_of_input`), and
once those results have been read too the processes are stopped and the run ends. An
embedded broker that dies ends the run at once, with an error. Each process keeps its
keyed state in a directory of its own under the run directory
(``state/<app>/<streamlet>-<replica>``), so a restarted process finds its stores and
catches up from the changelog topics only from where they stopped.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import click
import networkx as nx
from rich.console import Console
from rich.table import Table

from blueprint import VerifiedBlueprint
from runner.kafka.admin import TopicError, ensure_topics, plan_topics
from runner.kafka.broker import EmbeddedBroker, die_with_parent
from runner.kafka.completion import BrokerProgress
from runner.kafka.dead_letter_reader import DeadLetterReader
from runner.kafka.end_of_input import cue_file
from runner.kafka.naming import dead_letter_topic
from runner.kafka.options import SETS_ENV
from runner.kafka.process import EXIT_FAILED
from runner.kafka.settings import ENV_PREFIX, KafkaSettings
from runner.kafka.status import ProcessStatus, merge_status, read_status
from runner.runtime.dead_letter_file import DeadLetterFile
from runner.runtime.dead_letter_summary import (
    RUNNING_MIN_RECORDS,
    Excess,
    excesses,
    summary_lines,
)
from runner.runtime.messages import DeadLetter
from runner.runtime.progress import ActivityClock, Progress, summary_table
from runner.runtime.run_dir import default_run_dir
from runner.runtime.stats import StreamletStats
from runner.runtime.stop_signals import stop_signals

__all__ = ["Supervisor", "run_supervised"]

log = logging.getLogger("streamlets.runner.kafka.supervisor")

#: Consumer settings for the embedded broker: Tansu joins a group in ~half the session timeout.
EMBEDDED_CONSUMER = {"SESSION_TIMEOUT_MS": "6000", "HEARTBEAT_INTERVAL_MS": "500"}
#: A process that crashes this many times in a row fails the run.
MAX_RESTARTS = 5
#: A process that ran this long before it crashed starts its crash count afresh.
STABLE_SECONDS = 60.0
#: Seconds the processes get to stop once the embedded broker is gone (they cannot commit).
BROKERLESS_STOP_SECONDS = 3.0
#: Seconds the counters must stay the same (and caught up) before the run ends.
SETTLE_SECONDS = 1.0


@dataclass
class _Child:
    """One replica's process (across restarts)."""

    streamlet: str
    replica: int
    is_source: bool
    status_dir: Path
    process: subprocess.Popen[bytes] | None = None
    incarnation: int = 0
    crashes: int = 0
    restart_at: float | None = None
    started_at: float = 0.0
    finished: bool = False  # exited 0
    exit_code: int | None = None  # of the last incarnation that exited
    #: the latest failed records the last incarnation that ended reported
    recent_errors: list[dict[str, Any]] = field(default_factory=list)
    carried: ProcessStatus | None = None  # counters of previous incarnations
    last: ProcessStatus | None = None
    last_error: str | None = None  # what the last incarnation that failed said
    forwarder: threading.Thread | None = None

    @property
    def label(self) -> str:
        return f"{self.streamlet}-{self.replica}"

    @property
    def status_file(self) -> Path:
        return self.status_dir / f"{self.label}.{self.incarnation}.json"

    def current(self) -> ProcessStatus | None:
        found = read_status(self.status_file)
        if found is not None:
            self.last = found
        return self.last

    def retire(self) -> None:
        """Fold the counters of the incarnation that just ended into ``carried``."""
        final = self.current()
        if final is not None:
            self.carried = merge_status(self.carried, final)
            self.last_error = final.error
            self.recent_errors = list(final.recent_errors)
        self.last = None


class _KafkaProgress(Progress):
    """The in-process runner's progress, plus consumer lag per streamlet (counted records)."""

    def __init__(self, supervisor: Supervisor) -> None:
        super().__init__(supervisor.snapshot)
        self.supervisor = supervisor

    def _lag_text(self) -> str:
        per_streamlet: dict[str, int] = {}
        for (streamlet, _topic), n in self.supervisor.lag().items():
            per_streamlet[streamlet] = per_streamlet.get(streamlet, 0) + n
        return ", ".join(f"{name} {n:,}" for name, n in per_streamlet.items())

    def _table(self) -> Table:
        table = super()._table()
        lag = self._lag_text()
        if lag:
            table.caption = f"consumer lag (records): {lag}"
            table.caption_justify = "left"
        return table

    def _line(self) -> str:
        lag = self._lag_text()
        return super()._line() + (f" | lag: {lag}" if lag else "")


def _forward(stream: IO[bytes], prefix: str) -> None:
    for raw in iter(stream.readline, b""):
        line = raw.decode("utf-8", "replace").rstrip("\n")
        out = sys.stderr  # looked up each time: the live display may have replaced it
        print(f"{prefix} {line}", file=out, flush=True)
    stream.close()


@dataclass
class Supervisor:
    """Runs every replica of ``blueprint`` as its own process against Kafka."""

    blueprint: VerifiedBlueprint
    blueprint_path: str
    settings: KafkaSettings = field(default_factory=KafkaSettings)
    config_file: str | None = None
    sets: Sequence[str] = ()
    run_dir: Path | None = None
    quiet: bool = False
    grace_period: float = 30.0
    metrics: bool = True
    dead_letter_template: str | None = None
    verbose: int = 0  # 1: the processes log their info lines; 2: debug lines too
    max_dead_letter_ratio: float | None = None
    children: list[_Child] = field(default_factory=list)
    broker: EmbeddedBroker | None = None
    _progress: BrokerProgress | None = None
    state_dir: Path = Path("state")  # set to <run dir>/state by run()
    _dead: DeadLetterReader | None = None
    _dead_file: DeadLetterFile = field(default_factory=lambda: DeadLetterFile(None))
    _excesses: list[Excess] = field(default_factory=list)
    _activity: ActivityClock = field(default_factory=ActivityClock)
    started: float = 0.0
    error: str | None = None
    stopped: bool = False
    #: Windowed streamlets given the end-of-input cue (see runner.kafka.end_of_input).
    cued: set[str] = field(default_factory=set)

    # -- processes -----------------------------------------------------------------------

    def _env(self) -> dict[str, str]:
        env = dict(os.environ)
        env["PYTHONUNBUFFERED"] = "1"
        # --set values may be secrets: in the environment (readable by this user only)
        # rather than on the command line (readable by every user, `ps`).
        env.pop(SETS_ENV, None)
        if self.sets:
            env[SETS_ENV] = json.dumps(list(self.sets))
        if self.broker is not None:
            for key, value in EMBEDDED_CONSUMER.items():
                env.setdefault(f"{ENV_PREFIX}CONSUMER_{key}", value)
        return env

    def _command(self, child: _Child, bootstrap: str) -> list[str]:
        command = [
            sys.executable,
            "-m",
            "runner.cli",
            "run-streamlet",
            self.blueprint_path,
            child.streamlet,
            "--bootstrap",
            bootstrap,
            "--replica",
            str(child.replica),
            "--status-file",
            str(child.status_file),
            "--attempt",
            str(child.incarnation),
            "--log-format",
            "text",
            "--grace-period",
            str(self.grace_period),
            "--no-create-topics",
            # Each process keeps its state under its own <app>/<streamlet>-<replica>.
            "--state-dir",
            str(self.state_dir),
            "--supervised",
        ]
        if self.verbose >= 2:
            command.append("--verbose")
        if self.metrics:
            command += ["--metrics-port", "0", "--metrics-host", "127.0.0.1"]
        else:
            command.append("--no-metrics")
        if self.config_file:
            command += ["--config", self.config_file]
        if self.blueprint.streamlets[child.streamlet].cls.windows() and self.run_dir is not None:
            command += ["--end-of-input-file", str(cue_file(self.run_dir, child.streamlet))]
        return command  # the --set values go in the environment (see _env)

    def _start(self, child: _Child, bootstrap: str) -> None:
        child.incarnation += 1
        child.restart_at = None
        child.started_at = time.monotonic()
        process = subprocess.Popen(
            self._command(child, bootstrap),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            env=self._env(),
            # Ctrl-C reaches the supervisor, which stops them in order; they die with it.
            preexec_fn=die_with_parent,  # noqa: PLW1509
        )
        child.process = process
        assert process.stdout is not None
        child.forwarder = threading.Thread(
            target=_forward, args=(process.stdout, f"[{child.label}]"), daemon=True
        )
        child.forwarder.start()

    def _signal_all(self, sig: int) -> None:
        for child in self.children:
            process = child.process
            if process is not None and process.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(process.pid, sig)

    def _stop_all(self, timeout: float) -> None:
        self._signal_all(signal.SIGTERM)
        deadline = time.monotonic() + timeout
        for child in self.children:
            process = child.process
            if process is None:
                continue
            try:
                process.wait(max(deadline - time.monotonic(), 0.1))
            except subprocess.TimeoutExpired:
                click.echo(
                    f"{child.label}: did not stop within {timeout:.0f} s; killing it", err=True
                )
                with contextlib.suppress(ProcessLookupError):
                    os.kill(process.pid, signal.SIGKILL)
                process.wait()
        for child in self.children:
            if child.forwarder is not None:
                child.forwarder.join(2)

    # -- counting ------------------------------------------------------------------------

    def statuses(self) -> list[ProcessStatus]:
        """Per replica: its counters over all its incarnations."""
        found = []
        for child in self.children:
            total = ProcessStatus(child.streamlet, child.replica)
            if child.carried is not None:
                total = merge_status(total, child.carried)
            now = child.current() if child.process is not None else None
            if now is not None:
                total = merge_status(total, now)
            found.append(total)
        return found

    def snapshot(self) -> Mapping[str, StreamletStats]:
        """Counters per streamlet, summed over replicas (for the progress display)."""
        totals = {name: StreamletStats() for name in self.blueprint.streamlets}
        for status in self.statuses():
            totals[status.streamlet].add(status.stats)
        return totals

    def lag(self) -> dict[tuple[str, str], int]:
        """Per (consumer streamlet, topic key): records on the topic its group has not
        committed yet (as of the last look at the broker)."""
        return self._progress.lag() if self._progress is not None else {}

    def _sources_done(self) -> bool:
        sources = [c for c in self.children if c.is_source]
        return bool(sources) and all(c.finished for c in sources)

    # -- running -------------------------------------------------------------------------

    def _broker_died(self) -> str | None:
        """What to say when the embedded broker this run started has exited."""
        broker = self.broker
        process = broker.process if broker is not None else None
        if process is None or process.poll() is None:
            return None
        log_file = self.run_dir / "broker.log" if self.run_dir is not None else None
        where = f"; its log: {log_file}" if log_file is not None else ""
        return (
            f"the embedded Kafka broker (pid {process.pid}) exited with status "
            f"{process.returncode}; the streamlets cannot go on without it{where}"
        )

    async def _watch(self, bootstrap: str) -> None:
        loop = asyncio.get_running_loop()
        settled_since: float | None = None
        previous: Any = None
        while True:
            await asyncio.sleep(0.25)
            died = self._broker_died()
            if died is not None:
                self.error = died
                click.echo(
                    "the embedded Kafka broker exited: stopping the streamlet processes", err=True
                )
                return
            now = time.monotonic()
            for child in self.children:
                process = child.process
                if process is not None and process.poll() is not None:
                    self._exited(child, process.returncode)
                if child.restart_at is not None and now >= child.restart_at:
                    click.echo(f"{child.label}: restarting (attempt {child.crashes})", err=True)
                    self._start(child, bootstrap)
            if self.error is not None:
                return
            progress = self._progress
            if progress is not None:
                await loop.run_in_executor(None, progress.refresh)
            await loop.run_in_executor(None, self._collect_dead_letters)
            snapshot = self.snapshot()
            self._activity.observe(snapshot, now)
            over = excesses(
                self.blueprint,
                snapshot,
                self.max_dead_letter_ratio,
                min_records=RUNNING_MIN_RECORDS,
            )
            if over:
                self._excesses = over
                self.error = over[0].message()
                return
            if not self._sources_done():
                continue
            lag = self.lag()
            counters = (
                tuple(sorted(lag.items())),
                tuple(s.stats.records_in for s in self.statuses()),
            )
            moved = progress is not None and progress.moved
            if any(lag.values()) or moved or counters != previous:
                previous = counters
                settled_since = None
                continue
            if settled_since is None:
                settled_since = now
            elif now - settled_since >= SETTLE_SECONDS:
                step = self._close_windows()
                if step == "done":
                    return
                if step == "cued":  # their results have to flow before the next look
                    settled_since = None
                    previous = None

    def _close_windows(self) -> str:
        """Once the input has drained: cue the windowed streamlets whose windowed upstream
        streamlets have closed their windows (``"cued"``), wait for cued ones to report
        that they closed theirs (``"waiting"``), or say there is nothing left (``"done"``)."""
        windowed = [n for n, s in self.blueprint.streamlets.items() if s.cls.windows()]
        if not windowed or self.run_dir is None:
            return "done"
        for child in self.children:
            if child.streamlet in self.cued:
                status = child.current() if child.process is not None else None
                if status is None or not status.windows_closed:
                    return "waiting"
        graph = self.blueprint.graph
        ready = [
            name
            for name in windowed
            if name not in self.cued
            and not any(
                node[0] == "streamlet" and node[1] in windowed and node[1] not in self.cued
                for node in nx.ancestors(graph, ("streamlet", name))
                if node != ("streamlet", name)
            )
        ]
        if not ready:
            ready = [name for name in windowed if name not in self.cued]  # a cycle: all
        if not ready:
            return "done"
        for name in ready:
            path = cue_file(self.run_dir, name)
            path.parent.mkdir(parents=True, exist_ok=True)
            path.touch()
            self.cued.add(name)
        return "cued"

    def health(self, child: _Child) -> str:
        """One replica's health: ``starting``, ``running``, ``draining`` (as its status file
        says), ``restarting`` (waiting to start again after a crash), ``done``, ``failed``
        or ``stopped``."""
        if child.restart_at is not None:
            return "restarting"
        process = child.process
        code = process.poll() if process is not None else child.exit_code
        if process is None and code is None:
            return "starting"  # not started yet
        if code is not None:
            if code == 0:  # it ended by itself, or was stopped at the run's normal end
                interrupted = self.error is not None or self.stopped
                return "done" if child.finished or not interrupted else "stopped"
            return "failed" if code == EXIT_FAILED or self.error else "stopped"
        status = child.last or child.current()
        return status.state if status is not None else "starting"

    @property
    def recent_dead_letters(self) -> Mapping[str, Sequence[DeadLetter]]:
        """The latest dead letters read back from the dead-letter topics, per streamlet."""
        return self._dead_file.recent

    # -- dead letters --------------------------------------------------------------------

    def _dead_letter_topics(self) -> list[str]:
        return [
            dead_letter_topic(self.blueprint, name, self.dead_letter_template)
            for name, spec in self.blueprint.streamlets.items()
            if spec.on_error == "dead-letter"
        ]

    def _collect_dead_letters(self, final: bool = False) -> None:
        """Copy what is new on the dead-letter topics into the run directory (at the end,
        ``final``: until every dead letter the processes counted is there, or nothing
        more comes)."""
        reader = self._dead
        if reader is None:
            return
        try:
            if final:
                expected = sum(s.dead_lettered for s in self.snapshot().values())
                self._dead_file.write(reader.read_until(expected, idle=2.0, timeout=15.0))
            else:
                self._dead_file.write(reader.poll(0))
        except Exception as exc:  # the broker is busy: the next look catches up
            log.debug("reading the dead-letter topics failed: %s", exc)

    def _exited(self, child: _Child, code: int) -> None:
        child.retire()
        child.process = None
        child.exit_code = code
        if code == 0:
            child.finished = True
            child.crashes = 0
            return
        said = f": {child.last_error}" if child.last_error else ""
        if code == EXIT_FAILED:
            self.error = f"streamlet process {child.label} failed (exit status {code}){said}"
            return
        if time.monotonic() - child.started_at > STABLE_SECONDS:
            child.crashes = 0  # it ran fine for a while: a new crash starts a new count
        child.crashes += 1
        why = f"signal {-code}" if code < 0 else f"exit status {code}"
        if child.crashes > MAX_RESTARTS:
            self.error = (
                f"streamlet process {child.label} crashed {child.crashes} times in a row "
                f"({why}){said}"
            )
            return
        backoff = min(2.0 ** (child.crashes - 1), 30.0)
        click.echo(f"{child.label}: crashed ({why}{said}); restarting in {backoff:.0f} s", err=True)
        child.restart_at = time.monotonic() + backoff

    async def _run(self, bootstrap: str) -> None:
        loop = asyncio.get_running_loop()
        stop = asyncio.Event()

        def drain(name: str) -> None:
            click.echo(
                f"\n{name}: stopping every streamlet process "
                "(press Ctrl-C again to kill them at once)",
                err=True,
            )
            self.stopped = True
            stop.set()

        def kill() -> None:
            self._signal_all(signal.SIGKILL)
            raise KeyboardInterrupt

        with stop_signals(drain, kill):
            progress = None if self.quiet else asyncio.create_task(_KafkaProgress(self).run())
            watch = asyncio.create_task(self._watch(bootstrap))
            stopper = asyncio.create_task(stop.wait())
            tasks = [t for t in (watch, stopper, progress) if t is not None]
            try:
                await asyncio.wait([watch, stopper], return_when=asyncio.FIRST_COMPLETED)
            finally:
                for task in tasks:
                    task.cancel()
                await asyncio.gather(*tasks, return_exceptions=True)
                # Stop the processes on this loop's thread, with the signal handlers still on.
                # Without the broker they cannot flush or commit: no grace period to wait.
                wait = BROKERLESS_STOP_SECONDS if self._broker_died() else self.grace_period + 5
                await loop.run_in_executor(None, self._stop_all, wait)

    def run(self) -> int:
        """Run the application; returns the exit status (0 done or stopped, 1 failed)."""
        self.started = time.monotonic()
        run_dir = self.run_dir = self.run_dir or default_run_dir(self.blueprint)
        self.state_dir = run_dir / "state"
        status_dir = run_dir / "status"
        status_dir.mkdir(parents=True, exist_ok=True)
        broker_log: IO[bytes] | None = None
        try:
            settings = self.settings
            if settings.bootstrap is None:
                # The embedded broker starts empty, changelogs included: so do the stores
                # a run before left in this run directory (they would restore nothing).
                if self.state_dir.exists():
                    shutil.rmtree(self.state_dir)
                broker_log = (run_dir / "broker.log").open("ab")
                self.broker = EmbeddedBroker(log=broker_log).start()
                settings = settings.with_bootstrap(self.broker.bootstrap)
                click.echo(
                    f"embedded Kafka broker (Tansu) on {self.broker.bootstrap}, "
                    f"pid {self.broker.pid}",
                    err=True,
                )
            bootstrap = settings.require_bootstrap()
            try:
                plans = plan_topics(self.blueprint, dead_letter_template=self.dead_letter_template)
                created = ensure_topics(settings.for_admin(), plans)
            except TopicError as exc:
                self.error = str(exc)
                return self._report()
            if created and not self.quiet:
                click.echo(f"created topics: {', '.join(created)}", err=True)
            self._progress = BrokerProgress(self.blueprint, settings)
            # The dead letters go to the run directory too: an embedded broker's topics
            # are gone with it. Another broker may hold older ones: only this run's.
            self._dead_file = DeadLetterFile(run_dir)
            self._dead = DeadLetterReader(
                settings, self._dead_letter_topics(), from_beginning=self.broker is not None
            )
            with contextlib.suppress(Exception):  # the watch loop tries again
                self._dead.start()
            for name, spec in self.blueprint.streamlets.items():
                for replica in range(spec.replicas):
                    child = _Child(name, replica, not spec.cls.inlets(), status_dir)
                    self.children.append(child)
            for child in self.children:
                self._start(child, bootstrap)
            n = len(self.children)
            click.echo(
                f"{self.blueprint.name}: started {n} streamlet process{'es' if n != 1 else ''} "
                f"on {bootstrap}; logs prefixed [streamlet-replica]; Ctrl-C stops",
                err=True,
            )
            try:
                asyncio.run(self._run(bootstrap))
            except KeyboardInterrupt:
                click.echo(
                    "aborted: streamlet processes killed; uncommitted work is redone", err=True
                )
                return 130
            if not self._broker_died():
                self._collect_dead_letters(final=True)
            return self._report()
        finally:
            if self._dead is not None:
                self._dead.close()
            self._dead_file.close()
            if self._progress is not None:
                self._progress.close()
            if self.broker is not None:
                self.broker.stop()
            if broker_log is not None:
                broker_log.close()

    def _report(self) -> int:
        duration = time.monotonic() - self.started
        stats = self.snapshot()
        self._activity.observe(stats, time.monotonic())
        if not self.quiet:
            state = "stopped" if self.stopped else ("failed" if self.error else "finished")
            title = f"{self.blueprint.name} on Kafka: {state} in {duration:.1f} s"
            Console(file=sys.stderr).print(
                summary_table(stats, duration, title, active=self._activity.seconds())
            )
        names = ", ".join(
            dead_letter_topic(self.blueprint, n, self.dead_letter_template)
            for n, s in stats.items()
            if s.dead_lettered
        )
        lines = summary_lines(
            self.blueprint,
            stats,
            self._dead_file.first,
            self._dead_file.path,
            where=f"dead-letter topics ({names})",
        )
        for line in lines:
            click.echo(line, err=True)
        # Judged on the final counts (a run stopped early counted fewer when it stopped).
        final = excesses(self.blueprint, stats, self.max_dead_letter_ratio)
        if final and (self.error is None or self._excesses):
            self._excesses = final
            self.error = final[0].message()
        for excess in self._excesses[1:]:
            click.echo(click.style(f"error: {excess.message()}", fg="red"), err=True)
        if self.error is not None:
            click.echo(click.style(f"error: {self.error}", fg="red"), err=True)
            return 1
        return 0


def run_supervised(
    blueprint: VerifiedBlueprint,
    blueprint_path: str,
    *,
    settings: KafkaSettings,
    config_file: str | None = None,
    sets: Sequence[str] = (),
    dead_letter_template: str | None = None,
    quiet: bool = False,
    run_dir: str | None = None,
    max_dead_letter_ratio: float | None = None,
    verbose: int = 0,
    prepare: Callable[[Supervisor], None] | None = None,
) -> int:
    """`flow run-local --kafka`: run ``blueprint`` as processes; returns the exit status.

    The run fails when a streamlet sends more than ``max_dead_letter_ratio`` of its records
    to dead letters (``None``: never). ``prepare`` is called with the supervisor before it
    starts (the live view watches it so)."""
    level = logging.DEBUG if verbose >= 2 else logging.INFO if verbose else logging.WARNING
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s")
    supervisor = Supervisor(
        blueprint,
        blueprint_path,
        settings=settings,
        config_file=config_file,
        sets=sets,
        dead_letter_template=dead_letter_template,
        run_dir=Path(run_dir) if run_dir else None,
        quiet=quiet,
        verbose=verbose,
        max_dead_letter_ratio=max_dead_letter_ratio,
    )
    if prepare is not None:
        prepare(supervisor)
    return supervisor.run()
