"""`flow verify`: check a blueprint and print every problem found."""

from __future__ import annotations

import dataclasses
import json
import sys

import click

from blueprint import ConfigOverrides, Problem, VerifiedBlueprint
from runner.cli.common import (
    BLUEPRINT,
    config_options,
    format_problem,
    load_overrides_or_fail,
    verify_path,
)
from runner.cli.common import summary as problem_summary
from runner.runtime.registry import RegistryError, registry_config
from runner.runtime.registry_check import registry_problems

__all__ = ["verify_command"]


def _registry_problems(
    blueprint: VerifiedBlueprint, url: str, overrides: ConfigOverrides
) -> tuple[Problem, ...]:
    section = dict(overrides.sections.get("schema_registry") or {})
    try:
        config = registry_config({**section, "url": url})
    except RegistryError as exc:
        raise click.BadParameter(str(exc), param_hint="'--config'") from None
    assert config is not None
    return tuple(registry_problems(blueprint, config))


@click.command("verify")
@click.argument("blueprint", type=BLUEPRINT)
@click.option(
    "--format",
    "output_format",
    type=click.Choice(["text", "json"]),
    default="text",
    show_default=True,
    help="Problems as compiler-style lines or as a JSON list.",
)
@click.option(
    "--registry",
    "registry_url",
    metavar="URL",
    default=None,
    help="Also check each topic's producer schemas against this schema registry's versions "
    "of the subject <topic>-value, under the subject's compatibility level (credentials "
    "from the config file's schema_registry: section).",
)
@config_options()
def verify_command(
    blueprint: str,
    output_format: str,
    registry_url: str | None,
    config_file: str | None,
    sets: tuple[str, ...],
) -> None:
    """Check a blueprint and print every problem found.

    Checks that the YAML is well formed, that every streamlet class imports, that every
    port exists and is used in the right direction, that every inlet is connected, that
    each consumer can read what each producer of its topic writes (Avro schema
    resolution) and that every config validates.

    Exit status: 0 when the blueprint is valid (warnings and notes allowed), 1 when it has
    errors, 2 for usage errors such as a missing file.
    """
    overrides = load_overrides_or_fail(config_file, sets)
    verification = verify_path(blueprint, overrides)
    problems = verification.problems
    if registry_url is not None and verification.blueprint is not None:
        problems = (*problems, *_registry_problems(verification.blueprint, registry_url, overrides))
        if any(p.is_error for p in problems):
            verification = dataclasses.replace(verification, blueprint=None, problems=problems)
    if output_format == "json":
        click.echo(json.dumps([p.to_dict() for p in problems], indent=2, ensure_ascii=False))
        sys.exit(0 if verification.ok else 1)
    for problem in problems:
        click.echo(format_problem(problem))
    result = verification.blueprint
    if result is not None:
        extra = f" ({problem_summary(problems)})" if problems else ""
        n_s, n_t = len(result.streamlets), len(result.topics)
        click.echo(
            click.style("ok", fg="green", bold=True)
            + f" {result.name}: {n_s} streamlet{'s' if n_s != 1 else ''}, "
            f"{n_t} topic{'s' if n_t != 1 else ''}, blueprint is valid{extra}"
        )
        return
    click.echo(
        click.style(f"blueprint is invalid: {problem_summary(problems)}", fg="red", bold=True)
    )
    sys.exit(1)
