"""The dependency rule and the code rules are checked by the test run, and the checks can fail."""

from __future__ import annotations

import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

from tests.conftest import REPO

BIN = Path(sys.executable).parent


def _run(*command: str, cwd: Path = REPO) -> subprocess.CompletedProcess[str]:
    return subprocess.run(command, cwd=cwd, text=True, capture_output=True, timeout=600, check=False)


def test_import_contracts_hold() -> None:
    done = _run(str(BIN / "lint-imports"), "--no-logo", "--no-cache")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "0 broken" in done.stdout


def test_import_contracts_catch_a_violation(tmp_path: Path) -> None:
    """A copy of the packages where core imports the database layer must break the contracts."""
    for package in ("core", "connectors", "db", "flows", "web", "sandbox"):
        shutil.copytree(REPO / package, tmp_path / package, ignore=shutil.ignore_patterns("__pycache__"))
    (tmp_path / "core" / "leak.py").write_text("from db.models import Base\n", encoding="utf-8")
    (tmp_path / "sandbox" / "leak.py").write_text("import connectors.errors\n", encoding="utf-8")
    config = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))["tool"]["importlinter"]
    lines = ["[importlinter]", "root_packages =", *[f"    {p}" for p in config["root_packages"]],
             "include_external_packages = True"]
    for contract in config["contracts"]:
        lines.append(f"\n[importlinter:contract:{contract['id']}]")
        for key, value in contract.items():
            if key == "id":
                continue
            if isinstance(value, list):
                lines.append(f"{key} =")
                lines.extend(f"    {item}" for item in value)
            else:
                lines.append(f"{key} = {value}")
    (tmp_path / ".importlinter").write_text("\n".join(lines) + "\n", encoding="utf-8")
    done = subprocess.run([str(BIN / "lint-imports"), "--no-logo", "--no-cache", "--config", ".importlinter"],
                          cwd=tmp_path, text=True, capture_output=True, timeout=300, check=False,
                          env={"PYTHONPATH": str(tmp_path), "PATH": str(BIN)})
    assert done.returncode != 0
    assert "core.leak -> db.models" in done.stdout
    assert "sandbox.leak -> connectors.errors" in done.stdout


def test_ruff_is_clean() -> None:
    done = _run(str(BIN / "ruff"), "check", ".")
    assert done.returncode == 0, done.stdout + done.stderr


def test_mypy_strict_is_clean() -> None:
    done = _run(str(BIN / "mypy"))
    assert done.returncode == 0, done.stdout + done.stderr


def test_cli_help_does_not_import_prefect() -> None:
    """`bascule --help` must stay instant: Prefect is imported by the commands that run flows only."""
    probe = ("import sys\nfrom flows import cli\n"
             "try:\n    cli.app(['--help'])\nexcept SystemExit:\n    pass\n"
             "print('prefect' in sys.modules, 'sqlalchemy' in sys.modules)")
    done = _run(sys.executable, "-c", probe)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().splitlines()[-1] == "False False"
