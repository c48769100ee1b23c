"""Benchmark: generating the synthetic ministry at 20k and 200k agents (run on demand, not by pytest).

    .venv/bin/python tests/bench/bench_generate.py [--agents 20000 200000] [--flavour ad]

Each size runs in a fresh process under /usr/bin/time -v (wall time, peak RSS). Prints one JSON object on its last
line and writes it to tests/bench/results/generate.json. Goal (issue 2): 200k agents in < 120 s, peak RSS < 500 MiB.
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
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
RESULTS = REPO / "tests" / "bench" / "results"


def measure(agents: int, flavour: str, workdir: Path) -> dict[str, object]:
    out = workdir / f"ministry-{agents}"
    command = [sys.executable, "-m", "flows.cli", "sandbox", "generate", "--agents", str(agents), "--seed", "42",
               "--flavour", flavour, "--as-of", "2026-11-23", "--out", str(out)]
    timer = shutil.which("time") or "/usr/bin/time"
    started = time.perf_counter()
    done = subprocess.run([timer, "-v", *command], cwd=REPO, capture_output=True, text=True, check=True)
    wall = time.perf_counter() - started
    peak_kib = int(re.search(r"Maximum resident set size \(kbytes\): (\d+)", done.stderr).group(1))  # type: ignore[union-attr]
    manifest = json.loads((out / "manifest.json").read_text())
    size = sum(path.stat().st_size for path in out.rglob("*") if path.is_file())
    meetings = sum(counts.get("total", 0) for counts in manifest["meetings"].values())
    shutil.rmtree(out)
    return {"agents": agents, "flavour": flavour, "wall_seconds": round(wall, 1),
            "peak_rss_mib": round(peak_kib / 1024, 1), "output_mib": round(size / 2**20),
            "directory_records": manifest["directory"]["records"], "meetings": meetings,
            "source_accounts": sum(p["total"] for p in manifest["platforms"].values())}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--agents", type=int, nargs="+", default=[20_000, 200_000])
    parser.add_argument("--flavour", default="ad", choices=["ad", "supann"])
    args = parser.parse_args()
    runs = []
    with tempfile.TemporaryDirectory(prefix="bascule-bench-") as workdir:
        for agents in args.agents:
            run = measure(agents, args.flavour, Path(workdir))
            print(f"{agents:>7} agents: {run['wall_seconds']} s, peak RSS {run['peak_rss_mib']} MiB, "
                  f"{run['meetings']} meetings, {run['output_mib']} MiB written")
            runs.append(run)
    result = {"benchmark": "generate", "goal": {"agents": 200_000, "max_wall_seconds": 120, "max_peak_rss_mib": 500},
              "runs": runs}
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "generate.json").write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result))


if __name__ == "__main__":
    main()
