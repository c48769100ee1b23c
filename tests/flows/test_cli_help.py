"""`bascule --help` and every command's help fit 100 columns without cutting an option name."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import typer
from typer.testing import CliRunner

from flows.cli import app

WIDTH = 100


def _commands(command: Any, path: tuple[str, ...] = ()) -> Iterator[tuple[tuple[str, ...], Any]]:
    """Every command under `command` (typer ships its own click: groups are known by their `commands`)."""
    yield path, command
    for name, child in sorted(getattr(command, "commands", {}).items()):
        yield from _commands(child, (*path, name))


COMMANDS = list(_commands(typer.main.get_command(app)))


def test_every_command_group_is_reached() -> None:
    names = {" ".join(path) for path, _ in COMMANDS}
    assert {"", "demo", "extract", "onboard", "wave plan", "wave cutover", "links lookup", "links resend",
            "sandbox serve", "sandbox login", "identities apply-overrides", "directory load"} <= names


@pytest.mark.parametrize(("path", "command"), COMMANDS, ids=[" ".join(path) or "bascule" for path, _ in COMMANDS])
def test_help_fits_100_columns_with_every_option_whole(path: tuple[str, ...], command: Any) -> None:
    result = CliRunner().invoke(app, [*path, "--help"], env={"COLUMNS": str(WIDTH), "TERM": "dumb"},
                                terminal_width=WIDTH)
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert max(len(line) for line in lines) <= WIDTH, "\n".join(line for line in lines if len(line) > WIDTH)
    for parameter in command.params:
        for option in getattr(parameter, "opts", []):
            if option.startswith("--"):
                assert option in result.output, f"{option} cut from `bascule {' '.join(path)} --help`"
    assert "…" not in "".join(line.split("│")[1][:40] for line in lines if line.count("│") >= 2 and "--" in line)
