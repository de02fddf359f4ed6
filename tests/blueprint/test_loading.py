"""Reading, class loading and the result of verify: what is pure, what touches the interpreter."""

from __future__ import annotations

import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest
from pydantic import BaseModel

from blueprint import (
    BlueprintSource,
    ClassLoader,
    ClassLoadFailure,
    InvalidBlueprint,
    Severity,
    Verification,
    read_blueprint,
    user_code_path,
    verify,
    verify_source,
)
from streamlets import Inlet, Outlet, Streamlet
from streamlets.errors import StreamletsError


class Reading(BaseModel):
    sensor_id: str
    temperature: float


class Source(Streamlet):
    out = Outlet(Reading)

    def generate(self) -> Iterator[Reading]:
        yield Reading(sensor_id="a", temperature=1.0)


class Sink(Streamlet):
    readings = Inlet(Reading)

    def process(self, reading: Reading) -> None:
        return None


# The modules named here do not exist: any attempt to import them would fail.
TEXT = """\
name: app
streamlets:
  src:
    class: nowhere.to_be_found:Source
  sink:
    class: nowhere.to_be_found:Sink
topics:
  readings:
    producers: [src.out]
    consumers: [sink.readings]
"""


def mapping_loader(
    classes: dict[str, type[Streamlet]], calls: list[tuple[str, str]]
) -> ClassLoader:
    def load(path: str, directory: str) -> type[Streamlet] | ClassLoadFailure:
        calls.append((path, directory))
        found = classes.get(path)
        if found is None:
            return ClassLoadFailure("class-not-found", f"no class {path!r} in the test's mapping")
        return found

    return load


CLASSES: dict[str, type[Streamlet]] = {
    "nowhere.to_be_found:Source": Source,
    "nowhere.to_be_found:Sink": Sink,
}


def test_verify_source_with_a_loader_from_a_mapping_imports_nothing() -> None:
    calls: list[tuple[str, str]] = []
    path_before, modules_before = list(sys.path), set(sys.modules)
    source = BlueprintSource(text=TEXT, display="app.yaml", directory="/no/such/dir")
    result = verify_source(source, loader=mapping_loader(CLASSES, calls))
    assert result.ok and result.problems == ()
    blueprint = result.unwrap()
    assert blueprint.streamlets["src"].cls is Source
    assert blueprint.streamlets["sink"].cls is Sink
    assert blueprint.path == "" and blueprint.directory == "/no/such/dir"
    assert calls == [
        ("nowhere.to_be_found:Source", "/no/such/dir"),
        ("nowhere.to_be_found:Sink", "/no/such/dir"),
    ]
    assert sys.path == path_before
    assert set(sys.modules) == modules_before


def test_a_loader_failure_is_a_problem_at_the_class_line() -> None:
    loader = mapping_loader({"nowhere.to_be_found:Source": Source}, [])
    source = BlueprintSource(text=TEXT, display="app.yaml", directory="/d")
    result = verify_source(source, loader=loader)
    assert not result.ok and result.blueprint is None
    (problem,) = result.errors
    assert problem.code == "class-not-found"
    assert problem.message == (
        "streamlet 'sink': no class 'nowhere.to_be_found:Sink' in the test's mapping"
    )
    assert str(problem.location) == "app.yaml:6:12"


def test_verify_source_reads_bytes_and_reports_bytes_that_are_not_utf8() -> None:
    loader = mapping_loader(CLASSES, [])
    good = BlueprintSource(text=b"\xef\xbb\xbf" + TEXT.encode(), display="a.yaml", directory="/d")
    assert verify_source(good, loader=loader).ok
    bad = BlueprintSource(text=b"name: app\n\xff\n", display="b.yaml", directory="/d")
    (problem,) = verify_source(bad, loader=loader).problems
    assert problem.code == "yaml-syntax" and str(problem.location) == "b.yaml:2"


def write_app(directory: Path, module: str, body: str, text: str = "") -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    (directory / f"{module}.py").write_text(textwrap.dedent(body))
    path = directory / "blueprint.yaml"
    path.write_text(text or TEXT.replace("nowhere.to_be_found", module))
    return path


APP = """
from collections.abc import Iterator

from pydantic import BaseModel

from streamlets import Inlet, Outlet, Streamlet

WHERE = {where!r}


class Reading(BaseModel):
    sensor_id: str
    temperature: float


class Source(Streamlet):
    out = Outlet(Reading)

    def generate(self) -> Iterator[Reading]:
        return iter(())


class Sink(Streamlet):
    readings = Inlet(Reading)

    def process(self, reading: Reading) -> None:
        return None
"""


def test_verify_leaves_sys_path_as_it_was(tmp_path: Path) -> None:
    before = list(sys.path)
    valid = write_app(tmp_path / "ok", "loading_ok_app", APP.format(where="ok"))
    assert verify(valid).ok
    assert sys.path == before
    broken = write_app(tmp_path / "broken", "loading_broken_app", "raise RuntimeError('boom')\n")
    result = verify(broken)
    assert [p.code for p in result.errors] == ["import-error", "import-error"]
    assert sys.path == before


def test_config_imports_resolve_next_to_the_blueprint(tmp_path: Path) -> None:
    """A library streamlet's `schema: module:Class` names a module beside the blueprint."""
    text = """\
name: lib
streamlets:
  src: {class: "streamlets.library:FileSource", config: {path: in.jsonl, schema: "$M:Reading"}}
  out: {class: "streamlets.library:FileSink", config: {path: out.jsonl, schema: "$M:Reading"}}
topics:
  r: {producers: [src.out], consumers: [out.records]}
"""
    module = "loading_schema_models"
    body = "from pydantic import BaseModel\n\n\nclass Reading(BaseModel):\n    sensor_id: str\n"
    path = write_app(tmp_path, module, body, text.replace("$M", module))
    before = list(sys.path)
    result = verify(path).unwrap()
    assert result.streamlets["src"].config.record_schema.__module__ == module  # type: ignore[attr-defined]
    assert sys.path == before


def test_same_named_modules_in_two_directories_each_load_their_own(tmp_path: Path) -> None:
    first = write_app(tmp_path / "one", "loading_twin_app", APP.format(where="one"))
    second = write_app(tmp_path / "two", "loading_twin_app", APP.format(where="two"))
    one = verify(first).unwrap().streamlets["src"].cls
    two = verify(second).unwrap().streamlets["src"].cls
    # Where each class's code was compiled from (inspect.getfile asks sys.modules).
    assert one.generate.__code__.co_filename == str(tmp_path / "one" / "loading_twin_app.py")
    assert two.generate.__code__.co_filename == str(tmp_path / "two" / "loading_twin_app.py")
    assert vars(sys.modules["loading_twin_app"])["WHERE"] == "two"


def test_user_code_path_puts_the_directory_first_for_the_block_only(tmp_path: Path) -> None:
    (tmp_path / "loading_sibling_mod.py").write_text("VALUE = 7\n")
    before = list(sys.path)
    with user_code_path(tmp_path):
        assert sys.path[0] == str(tmp_path)
        with user_code_path(tmp_path):  # nested, as a run inside a run would
            pass
        assert sys.path[0] == str(tmp_path)
        import loading_sibling_mod  # type: ignore[import-not-found]

        assert loading_sibling_mod.VALUE == 7
    assert sys.path == before


def test_unwrap_of_an_invalid_blueprint_raises_with_every_problem(tmp_path: Path) -> None:
    text = (
        TEXT.replace("[sink.readings]", "[sink.reading]") + "  spare:\n    producers: [src.out]\n"
    )
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    result = verify(path, loader=mapping_loader(CLASSES, []))
    assert not result.ok and result.blueprint is None
    severities = sorted(p.severity for p in result.problems)
    assert Severity.ERROR in severities and Severity.NOTE in severities
    with pytest.raises(InvalidBlueprint) as caught:
        result.unwrap()
    error = caught.value
    assert isinstance(error, StreamletsError)
    assert error.problems == result.problems
    lines = str(error).splitlines()
    assert lines[0] == f"blueprint {path} is invalid (2 errors, 1 note):"
    assert lines[1:] == [f"  {p}" for p in result.problems]
    assert len(lines) == 1 + len(result.problems)


def test_read_blueprint_is_the_file_step(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "b.yaml").write_text(TEXT)
    monkeypatch.chdir(tmp_path)
    source = read_blueprint("b.yaml", display="shown.yaml")
    assert source == BlueprintSource(
        text=TEXT.encode(), display="shown.yaml", directory=str(tmp_path), path="b.yaml"
    )
    with pytest.raises(OSError):
        read_blueprint(tmp_path / "missing.yaml")


def test_a_verification_has_a_blueprint_exactly_when_it_has_no_errors() -> None:
    with pytest.raises(ValueError, match="exactly when it has no errors"):
        Verification(problems=(), blueprint=None)
