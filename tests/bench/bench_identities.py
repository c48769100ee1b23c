"""Benchmark: map-identities at 20k and 200k agents (run on demand, not by pytest).

    .venv/bin/python tests/bench/bench_identities.py [--agents 20000 200000] [--flavour ad] [--batch-size 5000]

For each size: generate the ministry, load its directory and accounts into a fresh SQLite state database (through
the LDIF reader and the connectors' own mapping, no network: the setup is not measured), then run
`bascule identities map` in a fresh process under /usr/bin/time -v (wall time, peak RSS of the largest process,
Prefect's temporary server included) and check the conflict counts against the manifest. Prints one JSON object on
its last line and writes it to tests/bench/results/identities.json.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
RESULTS = REPO / "tests" / "bench" / "results"
sys.path.insert(0, str(REPO))


def measure(agents: int, flavour: str, batch_size: int, workdir: Path) -> dict[str, object]:
    from db.migrate import upgrade
    from flows.demo import render_sandbox_tenant
    from sandbox.generator.directory import Flavour
    from sandbox.generator.ministry import GeneratorOptions, generate_ministry
    from tests.support.state import load_ministry

    out = workdir / f"ministry-{agents}"
    manifest = generate_ministry(out, GeneratorOptions(agents=agents, seed=42, flavour=Flavour(flavour),
                                                       as_of=date(2026, 11, 23)))
    database = workdir / f"identities-{agents}.db"
    url = f"sqlite:///{database}"
    upgrade(url)
    tenant = workdir / f"tenant-{agents}.toml"
    tenant.write_text(render_sandbox_tenant(manifest, ldif_path=str(out / "directory.ldif")), encoding="utf-8")
    started = time.perf_counter()
    load_ministry(url, "min-culture-exemple", out, flavour=flavour)
    setup = time.perf_counter() - started

    env = {**os.environ, "BASCULE_DATABASE_URL": url, "BASCULE_DATA_DIR": str(workdir / ".bascule"),
           "PREFECT_LOGGING_LEVEL": "WARNING"}
    env.pop("PREFECT_HOME", None)
    command = [sys.executable, "-m", "flows.cli", "identities", "map", "--tenant", str(tenant), "--force",
               "--batch-size", str(batch_size), "--json"]
    timer = shutil.which("time") or "/usr/bin/time"
    started = time.perf_counter()
    done = subprocess.run([timer, "-v", *command], cwd=REPO, env=env, capture_output=True, text=True, check=False)
    wall = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(done.stderr[-3000:])
    peak_kib = int(re.search(r"Maximum resident set size \(kbytes\): (\d+)", done.stderr).group(1))  # type: ignore[union-attr]
    summary = json.loads(done.stdout.strip().splitlines()[-1])
    expected = manifest["identity"]["conflicts"]
    shutil.rmtree(out)
    database.unlink()
    return {"agents": agents, "flavour": flavour, "batch_size": batch_size, "wall_seconds": round(wall, 1),
            "peak_rss_mib": round(peak_kib / 1024, 1), "setup_seconds": round(setup, 1),
            "persons": summary["persons"], "accounts": manifest["identity"]["source_accounts_mapped"],
            "open_conflicts": sum(summary["conflicts"].values()),
            "conflicts_equal_manifest": summary["conflicts"] == expected}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--agents", type=int, nargs="+", default=[20_000, 200_000])
    parser.add_argument("--flavour", default="ad", choices=["ad", "supann"])
    parser.add_argument("--batch-size", type=int, default=5000)
    args = parser.parse_args()
    runs = []
    with tempfile.TemporaryDirectory(prefix="bascule-bench-") as workdir:
        for agents in args.agents:
            run = measure(agents, args.flavour, args.batch_size, Path(workdir))
            print(f"{agents:>7} agents: map-identities {run['wall_seconds']} s, peak RSS {run['peak_rss_mib']} MiB, "
                  f"{run['persons']} persons, {run['accounts']} accounts, {run['open_conflicts']} conflicts "
                  f"(equal to the manifest: {run['conflicts_equal_manifest']})")
            runs.append(run)
    result = {"benchmark": "identities", "runs": runs}
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "identities.json").write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result))


if __name__ == "__main__":
    main()
