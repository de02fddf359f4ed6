"""Problems: what verification reports, one frozen value per finding."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

__all__ = ["PROBLEM_CODES", "Location", "Problem", "Severity"]


class Severity(StrEnum):
    """How bad a problem is: errors make a blueprint invalid; warnings and notes do not."""

    ERROR = "error"
    WARNING = "warning"
    NOTE = "note"


@dataclass(frozen=True, slots=True, order=True)
class Location:
    """A place in a file, 1-based line and column (0 when unknown)."""

    file: str
    line: int = 0
    column: int = 0

    def __str__(self) -> str:
        if self.line <= 0:
            return self.file
        if self.column <= 0:
            return f"{self.file}:{self.line}"
        return f"{self.file}:{self.line}:{self.column}"


@dataclass(frozen=True, slots=True)
class Problem:
    """One finding of verification: a stable ``code``, what is wrong, where and what to do."""

    code: str
    severity: Severity
    message: str
    location: Location | None = None
    hint: str | None = field(default=None)

    @property
    def is_error(self) -> bool:
        """Whether this problem makes the blueprint invalid."""
        return self.severity is Severity.ERROR

    def __str__(self) -> str:
        where = f"{self.location}: " if self.location else ""
        hint = f" (hint: {self.hint})" if self.hint else ""
        return f"{where}{self.severity}[{self.code}] {self.message}{hint}"

    def to_dict(self) -> dict[str, Any]:
        """The problem as JSON-able data: ``{code, severity, message, location, hint}``."""
        loc: dict[str, Any] | None = None
        if self.location is not None:
            loc = {
                "file": self.location.file,
                "line": self.location.line,
                "column": self.location.column,
            }
        return {
            "code": self.code,
            "severity": self.severity.value,
            "message": self.message,
            "location": loc,
            "hint": self.hint,
        }


#: Every problem code verification can report, with its severity and meaning.
#: The README's table is generated from (and tested against) this mapping.
PROBLEM_CODES: dict[str, tuple[Severity, str]] = {
    "yaml-syntax": (Severity.ERROR, "The file is not valid YAML (or not readable as UTF-8)."),
    "alias-expansion": (
        Severity.ERROR,
        "YAML aliases would copy more than 1,000,000 characters of values into the document "
        "(an alias bomb), or an alias refers to the value that contains it.",
    ),
    "duplicate-key": (Severity.ERROR, "A mapping names the same key twice."),
    "unknown-key": (
        Severity.ERROR,
        "A key the blueprint format does not know (with a did-you-mean hint).",
    ),
    "missing-key": (Severity.ERROR, "A required key is missing (`name`, `streamlets`, `class`)."),
    "invalid-type": (
        Severity.ERROR,
        "A value has the wrong YAML type (e.g. a list where a mapping belongs).",
    ),
    "invalid-name": (
        Severity.ERROR,
        "An application, streamlet or topic name is not a valid name.",
    ),
    "duplicate-name": (
        Severity.ERROR,
        "Two topics map to the same Kafka topic, or a port is listed twice.",
    ),
    "invalid-class-path": (
        Severity.ERROR,
        "`class` is not of the form `module:Class` (or is empty, null or not a string).",
    ),
    "import-error": (Severity.ERROR, "The module of a streamlet class fails to import."),
    "class-not-found": (Severity.ERROR, "The module or the class named by `class` does not exist."),
    "not-a-streamlet": (
        Severity.ERROR,
        "`class` names something that is not a Streamlet subclass.",
    ),
    "invalid-streamlet": (
        Severity.ERROR,
        "The streamlet class cannot run (e.g. it has inlets but no process()).",
    ),
    "invalid-schema": (Severity.ERROR, "A port's schema has no valid Avro form."),
    "invalid-port-ref": (
        Severity.ERROR,
        "A producer/consumer entry is not of the form `streamlet.port`.",
    ),
    "unknown-streamlet": (
        Severity.ERROR,
        "A port reference names a streamlet the blueprint does not define.",
    ),
    "unknown-port": (Severity.ERROR, "A port reference names a port the streamlet does not have."),
    "wrong-direction": (
        Severity.ERROR,
        "An inlet listed as a producer, or an outlet as a consumer.",
    ),
    "unconnected-inlet": (Severity.ERROR, "An inlet that no topic feeds."),
    "unknown-key-field": (
        Severity.ERROR,
        "An outlet's `key=` or a port's `timestamp=` names no field of the port's schema, or "
        "a field of the wrong type (a key is a string, bytes or an integer; a timestamp a "
        "datetime or an integer of epoch milliseconds; either may be null).",
    ),
    "inlet-on-several-topics": (
        Severity.ERROR,
        "An inlet listed as consumer of more than one topic.",
    ),
    "empty-topic": (Severity.ERROR, "A topic with neither producers nor consumers."),
    "incompatible-schema": (
        Severity.ERROR,
        "A consumer cannot read what a producer of the topic writes.",
    ),
    "invalid-config": (
        Severity.ERROR,
        "A streamlet's config does not validate against its Config model.",
    ),
    "invalid-replicas": (
        Severity.ERROR,
        "`replicas` is not a whole number from 1 to 1,000.",
    ),
    "invalid-partitions": (
        Severity.ERROR,
        "`partitions` is not a whole number from 1 to 100,000, or `replication_factor` "
        "not one from 1 to 32,767.",
    ),
    "invalid-resources": (
        Severity.ERROR,
        "`resources` has a value that is not a Kubernetes quantity, or a request above its limit.",
    ),
    "invalid-state": (
        Severity.ERROR,
        "A streamlet's `State` cannot be kept: its schema has no Avro form, its default does "
        "not fit the schema, or its changelog topic would have an invalid Kafka name; or the "
        "blueprint's `state: {storage: ...}` is not a size of at least 1Mi.",
    ),
    "not-copartitioned": (
        Severity.ERROR,
        "A stateful streamlet, or one with a co-partitioned table, reads topics with "
        "different partition counts: a key's records would arrive on differently numbered "
        "partitions (its state split, its table looked up where it is not).",
    ),
    "unknown-codec": (Severity.ERROR, "A topic's `codec` is not one of the known codecs."),
    "registry-incompatible": (
        Severity.ERROR,
        "With `--registry`: a producer's schema is not compatible with the registered "
        "versions of its topic's subject (`<topic>-value`) under the subject's "
        "compatibility level.",
    ),
    "registry-unreachable": (
        Severity.ERROR,
        "With `--registry`: the schema registry could not be asked (out of reach, or it "
        "refused the request).",
    ),
    "invalid-value": (
        Severity.ERROR,
        "Another setting has a value outside its allowed set (e.g. `on_error`).",
    ),
    "cycle": (Severity.WARNING, "The graph has a cycle: records can loop forever."),
    "keyless-compacted-producer": (
        Severity.WARNING,
        "A producer of a compacted topic (`cleanup.policy: compact`) whose outlet declares no "
        "`key=`: Kafka refuses records without a key on a compacted topic.",
    ),
    "idle-replicas": (
        Severity.WARNING,
        "A streamlet has more replicas than its input partitions can keep busy (a stateful "
        "one: more than its input topic's partitions): the extra replicas get no records.",
    ),
    "unused-state-storage": (
        Severity.WARNING,
        "`state: {storage: ...}` is given for a streamlet that declares no `State`: no state "
        "volume is made.",
    ),
    "external-topic": (
        Severity.NOTE,
        "A topic with only producers or only consumers: it connects to the outside.",
    ),
    "unconnected-outlet": (Severity.NOTE, "An outlet no topic reads: its records are discarded."),
    "optional-inlet-unconnected": (
        Severity.NOTE,
        "An inlet declared `optional=True` that no topic feeds: it receives no records.",
    ),
}
