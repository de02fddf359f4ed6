"""Reading, class loading and the result of verify: what is pure, what touches the interpreter."""

from __future__ import annotations

import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

from pydantic import BaseModel

from blueprint import ClassLoader, ClassLoadFailure, VerifiedBlueprint, user_code_path, verify
from streamlets import Inlet, Outlet, Streamlet


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


def test_verify_with_a_loader_from_a_mapping_imports_nothing(tmp_path: Path) -> None:
    path = tmp_path / "app.yaml"
    path.write_text(TEXT)
    calls: list[tuple[str, str]] = []
    path_before = list(sys.path)
    result = verify(path, loader=mapping_loader(CLASSES, calls))
    assert isinstance(result, VerifiedBlueprint), result
    assert result.streamlets["src"].cls is Source
    assert result.streamlets["sink"].cls is Sink
    assert calls == [
        ("nowhere.to_be_found:Source", str(tmp_path)),
        ("nowhere.to_be_found:Sink", str(tmp_path)),
    ]
    assert sys.path == path_before
    assert not [name for name in sys.modules if name.startswith("nowhere")]


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
    assert isinstance(verify(valid), VerifiedBlueprint)
    assert sys.path == before
    broken = write_app(tmp_path / "broken", "loading_broken_app", "raise RuntimeError('boom')\n")
    result = verify(broken)
    assert not isinstance(result, VerifiedBlueprint)
    assert [p.code for p in result if p.is_error] == ["import-error", "import-error"]
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
    result = verify(path)
    assert isinstance(result, VerifiedBlueprint), result
    assert result.streamlets["src"].config.record_schema.__module__ == module  # type: ignore[attr-defined]
    assert sys.path == before


def test_same_named_modules_in_two_directories_each_load_their_own(tmp_path: Path) -> None:
    first = write_app(tmp_path / "one", "loading_twin_app", APP.format(where="one"))
    second = write_app(tmp_path / "two", "loading_twin_app", APP.format(where="two"))
    verified = verify(first), verify(second)
    assert isinstance(verified[0], VerifiedBlueprint) and isinstance(verified[1], VerifiedBlueprint)
    one, two = (v.streamlets["src"].cls for v in verified)
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
