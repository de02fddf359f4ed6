"""Hostile blueprints: what a user gets for an alias bomb, a class that is not one, absurd
numbers and a wrong secret. Problems with a line, never a traceback, an exhausted machine
or an echoed secret."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from collections.abc import Callable
from pathlib import Path

import pytest
from click.testing import CliRunner

from blueprint import load_overrides, verify
from runner.cli import cli

Write = Callable[..., Path]
ROOT = Path(__file__).resolve().parents[2]


def flow(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(cli, list(args))
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(
        result.exception
    )
    return result.exit_code, result.output


def laughs(levels: int, width: int, indent: str) -> str:
    """A billion-laughs list: each level is ``width`` aliases of the level below."""
    inner = "[" + ", ".join(["lol"] * width) + "]"
    for level in range(1, levels):
        inner = f"[&l{level} {inner}, " + ", ".join([f"*l{level}"] * (width - 1)) + "]"
    return indent + inner


# An Avro field default, nine levels of nine: 387,420,489 copies of "lol" written out.
BOMB = """
name: bomb
streamlets:
  src:
    class: streamlets.library:GeneratorSource
    config:
      count: 1
      schema:
        type: record
        name: Laughs
        fields:
          - name: a
            type: {NESTED}
            default:
DEFAULT
  sink:
    class: streamlets.library:ConsoleSink
    config: {schema: {type: record, name: Laughs, fields: []}}
topics:
  t: {producers: [src.out], consumers: [sink.records]}
"""


def bomb_text() -> str:
    nested = "string"
    for _ in range(9):
        nested = f"{{type: array, items: {nested}}}"
    return BOMB.replace("{NESTED}", nested).replace("DEFAULT", laughs(9, 9, " " * 14))


MEASURE = """
import json, resource, subprocess, sys, time

def guard():  # a regression must fail the test, not exhaust the machine
    resource.setrlimit(resource.RLIMIT_AS, (3 << 30, 3 << 30))

start = time.monotonic()
try:
    proc = subprocess.run(
        [sys.executable, "-m", "runner.cli", "verify", sys.argv[1]],
        capture_output=True, text=True, timeout=60, preexec_fn=guard,
    )
    code, out, err = proc.returncode, proc.stdout, proc.stderr
except subprocess.TimeoutExpired:
    code, out, err = None, "", "timeout"
print(json.dumps({
    "seconds": time.monotonic() - start,
    "max_rss_kb": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss,
    "code": code, "stdout": out, "stderr": err,
}))
"""


def test_verify_answers_an_alias_bomb_in_an_avro_default_quickly_and_small(
    tmp_path: Path,
) -> None:
    path = tmp_path / "bomb.yaml"
    path.write_text(bomb_text())
    # A process of its own measures the child's peak RSS; this test process has run others.
    proc = subprocess.run(
        [sys.executable, "-c", MEASURE, str(path)],
        capture_output=True,
        text=True,
        check=True,
        cwd=ROOT,
        timeout=120,
    )
    found = json.loads(proc.stdout)
    assert found["code"] == 1, found
    assert found["seconds"] < 10, found
    assert found["max_rss_kb"] < 500 * 1024, found
    assert "Traceback" not in found["stdout"] + found["stderr"]
    assert "error[alias-expansion]" in found["stdout"]
    assert f"{path}:15:" in found["stdout"]  # the line of the default


def test_an_alias_bomb_in_the_config_file_is_a_problem_there(
    write_blueprint: Write, tmp_path: Path
) -> None:
    path = write_blueprint(
        """
        name: app
        streamlets:
          sink: {class: sample_app:Sink}
        topics:
          t: {consumers: [sink.readings]}
        """
    )
    config = tmp_path / "local.yaml"
    config.write_text("sink:\n  x:\n" + laughs(9, 9, "    ") + "\n")
    (problem,) = [p for p in verify(path, load_overrides(str(config))).problems if p.is_error]
    assert problem.code == "alias-expansion"
    assert problem.location is not None and problem.location.file == str(config)
    assert problem.location.line == 3


def test_an_alias_bomb_in_set_is_a_usage_error() -> None:
    value = laughs(9, 9, "")
    code, out = flow(
        "verify", str(ROOT / "examples" / "sensors" / "blueprint.yaml"), "--set", f"x.y={value}"
    )
    assert code == 2
    assert "--set x.y: with the alias *l" in out and "more than 1,000,000 characters" in out


NULL_CLASS = """
name: app
streamlets:
  src: {class: CLASS}
  sink: {class: sample_app:Sink}
topics:
  t: {producers: [src.out], consumers: [sink.readings]}
"""


@pytest.mark.parametrize("value", ["null", "~", "", "42", "''", "[sample_app, Source]"])
@pytest.mark.parametrize("command", ["verify", "run-local", "deploy"])
def test_a_class_that_is_not_module_colon_class_stops_every_command(
    write_blueprint: Write, tmp_path: Path, command: str, value: str
) -> None:
    path = write_blueprint(NULL_CLASS.replace("CLASS", value))
    extra = {"deploy": ["--image", "app:1", "-o", str(tmp_path / "out")]}.get(command, [])
    code, out = flow(command, str(path), *extra)
    assert code == 1
    assert f"{path}:3:" in out and "error[invalid-class-path] streamlet 'src'" in out
    assert "Traceback" not in out and "KeyError" not in out
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize(
    ("setting", "code"),
    [
        ("replicas: 1e22", "invalid-replicas"),
        ("replicas: 1.0e+22", "invalid-replicas"),
        ("replicas: 10000000000000000000000", "invalid-replicas"),
        ("replicas: '3'", "invalid-replicas"),
        ("replicas: true", "invalid-replicas"),
    ],
)
@pytest.mark.parametrize("command", ["run-local", "deploy"])
def test_absurd_replicas_are_refused_before_anything_runs(
    write_blueprint: Write, tmp_path: Path, command: str, setting: str, code: str
) -> None:
    text = NULL_CLASS.replace("{class: CLASS}", "{class: sample_app:Source, " + setting + "}")
    path = write_blueprint(text)
    extra = {"deploy": ["--image", "app:1", "-o", str(tmp_path / "out")]}.get(command, [])
    exit_code, out = flow(command, str(path), *extra)
    assert exit_code == 1
    assert f"error[{code}] streamlet 'src': 'replicas'" in out
    assert not (tmp_path / "out").exists()


def test_absurd_partitions_are_refused_by_deploy(write_blueprint: Write, tmp_path: Path) -> None:
    text = NULL_CLASS.replace("CLASS", "sample_app:Source").replace(
        "consumers: [sink.readings]", "consumers: [sink.readings], partitions: 1e9"
    )
    path = write_blueprint(text)
    code, out = flow("deploy", str(path), "--image", "app:1", "-o", str(tmp_path / "out"))
    assert code == 1 and "error[invalid-partitions] topic 't': 'partitions'" in out
    assert not (tmp_path / "out").exists()


SECRET_MODULE = """
from pydantic import BaseModel, SecretStr, field_validator, model_validator

from streamlets import Inlet, Streamlet


class Reading(BaseModel):
    sensor_id: str


class Login(BaseModel):
    user: str
    password: SecretStr


class Sink(Streamlet):
    readings = Inlet(Reading)

    class Config(BaseModel):
        token: SecretStr = SecretStr("x")
        checked: SecretStr = SecretStr("fine")
        login: Login | None = None
        region: str = "eu"

        @field_validator("checked", mode="before")
        @classmethod
        def tell(cls, value: object) -> object:
            if value != "fine":
                raise ValueError(f"{value} is not the password")
            return value

        @model_validator(mode="before")
        @classmethod
        def whole(cls, data: object) -> object:
            if isinstance(data, dict) and data.get("region") == "nowhere":
                raise ValueError("no region for this config")
            return data

    def process(self, reading: Reading) -> None:
        return None
"""

SECRET_BLUEPRINT = """
name: app
streamlets:
  sink:
    class: sample_app:Sink
    config:
      CONFIG
topics:
  t: {consumers: [sink.readings]}
"""


def secret_check(write_blueprint: Write, config: str, *args: str) -> str:
    path = write_blueprint(
        SECRET_BLUEPRINT.replace("CONFIG", config), module=textwrap.dedent(SECRET_MODULE)
    )
    code, text = flow("verify", str(path), *args)
    assert code == 1, text
    json_code, as_json = flow("verify", str(path), "--format", "json", *args)
    assert json_code == 1
    return text + as_json


def test_a_wrong_secret_value_is_never_shown(write_blueprint: Write) -> None:
    out = secret_check(write_blueprint, "token: 840271935501")
    assert "840271935501" not in out
    assert "config 'token': Input should be a valid string; got a number" in out
    assert "not shown: the value is secret" in out


def test_a_secret_given_with_set_is_not_shown_in_the_location(write_blueprint: Write) -> None:
    out = secret_check(write_blueprint, "{}", "--set", "sink.token=840271935501")
    assert "840271935501" not in out
    assert "--set sink.token=***: error[invalid-config]" in out


def test_a_validator_that_repeats_a_secret_is_masked(write_blueprint: Write) -> None:
    out = secret_check(write_blueprint, "checked: hunter2-correct-horse")
    assert "hunter2-correct-horse" not in out
    assert "*** is not the password" in out


def test_only_the_secret_part_of_a_nested_config_is_hidden(write_blueprint: Write) -> None:
    out = secret_check(write_blueprint, "login: {user: 17, password: 99887766}")
    assert "99887766" not in out
    assert "config 'login.user': Input should be a valid string; got 17" in out
    assert "config 'login.password': Input should be a valid string; got a number" in out


def test_a_whole_config_error_does_not_show_the_config_with_its_secret(
    write_blueprint: Write,
) -> None:
    out = secret_check(write_blueprint, "{region: nowhere, token: s3cr3t-v4lue}")
    assert "s3cr3t-v4lue" not in out
    assert "config '(config)': Value error, no region for this config; got a mapping" in out


def test_a_secret_in_an_override_for_an_unknown_streamlet_is_not_shown(
    write_blueprint: Write,
) -> None:
    out = secret_check(write_blueprint, "{}", "--set", "snik.token=840271935501")
    assert "840271935501" not in out
    assert "--set snik.token=***: error[unknown-streamlet]" in out


def test_a_wrong_non_secret_value_is_still_shown(write_blueprint: Write) -> None:
    out = secret_check(write_blueprint, "region: [1, 2]")
    assert "config 'region': Input should be a valid string; got [1, 2]" in out


def test_a_misspelt_secret_key_in_set_does_not_show_its_value(write_blueprint: Write) -> None:
    out = secret_check(write_blueprint, "{}", "--set", "sink.tokn=840271935501")
    assert "840271935501" not in out
    assert "--set sink.tokn=***: error[invalid-config] streamlet 'sink': unknown config key" in out
