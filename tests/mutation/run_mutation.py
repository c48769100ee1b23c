"""Mutation testing of core/ against tests/core, on demand (never part of the pytest run).

    .venv/bin/pip install -e '.[mutation]'
    .venv/bin/python tests/mutation/run_mutation.py [--modules core/waves.py core/licences.py …] [--max-children 2]
    .venv/bin/python tests/mutation/run_mutation.py --rerun-survivors     # after adding tests: only the survivors
    .venv/bin/python tests/mutation/run_mutation.py --report-only         # the last run's figures again

mutmut (configured in pyproject.toml, [tool.mutmut]) mutates core/ and runs, for each mutant, the tests of
tests/core that reach the mutated function. It works in a copy of the tree (--workdir, by default a folder under
the system's temporary directory), never in the working tree: it writes a `mutants/` folder where it runs, and
others may be editing the tree meanwhile. Prints the survivors with their diffs, the counts per module, one JSON
object on its last line, and writes tests/mutation/results/mutation.json (counts, survivor names) and
survivors.txt (the diff of every survivor). A whole run over core/ takes several minutes per module on 2 CPUs.
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections import Counter, defaultdict
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
RESULTS = REPO / "tests" / "mutation" / "results"
# What the tests of tests/core import, directly or through tests/conftest.py; mutmut mutates core/ only.
COPIED = ("core", "connectors", "db", "flows", "web", "sandbox", "tests", "tenants", "pyproject.toml")
IGNORED = shutil.ignore_patterns("__pycache__", "*.pyc", ".mypy_cache", ".ruff_cache", ".pytest_cache",
                                 ".hypothesis", "results", "mutants")
RESULT_LINE = re.compile(r"^\s+(?P<name>[\w.ǁ]+__mutmut_\d+): (?P<status>.+)$")


def mutmut() -> str:
    found = Path(sys.executable).with_name("mutmut")
    if not found.exists():
        sys.exit("mutmut is not installed: .venv/bin/pip install -e '.[mutation]'")
    return str(found)


def sync(workdir: Path, *, keep_mutants: bool) -> Path:
    """Copy the tree's sources and tests into `workdir/tree` (mutants/ kept only when asked)."""
    tree = workdir / "tree"
    mutants = tree / "mutants"
    if mutants.exists() and not keep_mutants:
        shutil.rmtree(mutants)
    for name in COPIED:
        source, target = REPO / name, tree / name
        if target.is_dir():
            shutil.rmtree(target)
        if source.is_dir():
            shutil.copytree(source, target, ignore=IGNORED)
        elif source.is_file():
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target)
    if keep_mutants and mutants.exists():
        # New tests must be seen: mutmut copies tests/ again, and the test → function map is collected again.
        (mutants / "mutmut-stats.json").unlink(missing_ok=True)
    return tree


def module_of(name: str, modules: list[str]) -> str:
    """`core.waves.x_plan_host__mutmut_3` → `core.waves` (the longest module that prefixes the name)."""
    return max((module for module in modules if name.startswith(module + ".")), key=len, default="?")


def results(tree: Path) -> dict[str, str]:
    """Every mutant's status, from `mutmut results --all true`."""
    done = subprocess.run([mutmut(), "results", "--all", "true"], cwd=tree, capture_output=True, text=True,
                          check=True)
    found = {}
    for line in done.stdout.splitlines():
        match = RESULT_LINE.match(line)
        if match:
            found[match["name"]] = match["status"].strip()
    return found


# One process for every diff (`mutmut show` takes two seconds per mutant); the function is mutmut 3.8.1's.
_DIFFS = """
import json, sys
from pathlib import Path
from mutmut.mutation.diff_apply import get_diff_for_mutant
wanted = json.load(sys.stdin)
json.dump({name: get_diff_for_mutant(name, path=Path(path)) for name, path in wanted.items()}, sys.stdout)
"""


def diffs_of(tree: Path, survivors: dict[str, str]) -> dict[str, str]:
    """The diff of each survivor (name → its source path)."""
    done = subprocess.run([sys.executable, "-c", _DIFFS], cwd=tree, input=json.dumps(survivors),
                          capture_output=True, text=True, check=True)
    found: dict[str, str] = json.loads(done.stdout)
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--modules", nargs="+", default=[], metavar="core/NAME.py",
                        help="mutants of these modules only (default: all of core/)")
    parser.add_argument("--workdir", type=Path, default=Path(tempfile.gettempdir()) / "bascule-mutation")
    parser.add_argument("--max-children", type=int, default=2)
    parser.add_argument("--rerun-survivors", action="store_true",
                        help="keep the previous results and test again only the mutants that survived")
    parser.add_argument("--report-only", action="store_true", help="report the last run's results, run nothing")
    args = parser.parse_args()

    tree = args.workdir / "tree"
    previous = results(tree) if args.rerun_survivors and tree.exists() else {}
    if not args.report_only:
        tree = sync(args.workdir, keep_mutants=bool(previous))
    sources = sorted(path.relative_to(tree) for path in (tree / "core").rglob("*.py"))
    modules = [".".join(path.with_suffix("").parts) for path in sources]
    path_of = dict(zip(modules, map(str, sources), strict=True))
    patterns = [".".join(Path(module).with_suffix("").parts) + ".*" for module in args.modules]
    if previous:
        patterns = [name for name, status in previous.items() if status == "survived"
                    and (not args.modules or any(re.fullmatch(p.replace(".", r"\.").replace("*", ".*"), name)
                                                 for p in patterns))]
        if not patterns:
            sys.exit("no survivor to test again")
    started = time.perf_counter()
    if not args.report_only:
        command = [mutmut(), "run", "--max-children", str(args.max_children), *patterns]
        subprocess.run(command, cwd=tree, check=True)
    elapsed = time.perf_counter() - started

    statuses = results(tree)
    wanted = {module for module in modules
              if not args.modules or any(module == ".".join(Path(m).with_suffix("").parts) for m in args.modules)}
    counts: dict[str, Counter[str]] = defaultdict(Counter)
    survivors: list[str] = []
    for name, status in sorted(statuses.items()):
        module = module_of(name, modules)
        if module not in wanted:
            continue
        counts[module][status] += 1
        if status == "survived":
            survivors.append(name)

    shown = diffs_of(tree, {name: path_of[module_of(name, modules)] for name in survivors})
    diffs = [f"# {name}: survived\n{shown[name].rstrip()}" for name in survivors]
    print("\n\n".join(diffs))
    print()
    for module, found in sorted(counts.items()):
        total = sum(found.values())
        print(f"{module:<20} {total:>5} mutants  {found['killed']:>5} killed  {found['survived']:>4} survived  "
              + "  ".join(f"{count} {status}" for status, count in sorted(found.items())
                          if status not in ("killed", "survived")))
    summary = {"tool": "mutmut", "tests": "tests/core", "modules": args.modules or ["core/"],
               "rerun_survivors": bool(previous), "report_only": args.report_only, "seconds": round(elapsed),
               "per_module": {module: dict(sorted(found.items())) for module, found in sorted(counts.items())},
               "survivors": survivors}
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "mutation.json").write_text(json.dumps(summary, indent=2, ensure_ascii=False) + "\n",
                                           encoding="utf-8")
    (RESULTS / "survivors.txt").write_text("\n\n".join(diffs) + "\n", encoding="utf-8")
    print(json.dumps(summary, ensure_ascii=False))


if __name__ == "__main__":
    main()
