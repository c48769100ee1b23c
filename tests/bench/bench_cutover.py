"""Benchmark: a cutover wave of a whole 20k-agent ministry on the zero-latency sandbox (run on demand, not by pytest).

    .venv/bin/python tests/bench/bench_cutover.py [--agents 20000] [--batch-size 500]

Setup (timed, not the point): generate the ministry; serve it (sandbox in this process: Zoom, Graph, Webex, Visio
with every host already known to Visio, LiveKit; an SMTP sink); `bascule onboard`, `directory load`, `extract`,
`identities map`. Measured, each command in a fresh process under /usr/bin/time -v (wall time, peak RSS of the
largest process, Prefect's temporary server included): `wave plan` of every direction (every agent), `wave freeze`,
`wave cutover --apply`. Prints one JSON object on its last line and writes it to tests/bench/results/cutover.json.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
RESULTS = REPO / "tests" / "bench" / "results"
sys.path.insert(0, str(REPO))


def _run(command: list[str], env: dict[str, str], *, measured: bool) -> dict[str, Any]:
    timer = shutil.which("time") or "/usr/bin/time"
    started = time.perf_counter()
    done = subprocess.run([timer, "-v", sys.executable, "-m", "flows.cli", *command], cwd=REPO, env=env,
                          capture_output=True, text=True, check=False)
    wall = time.perf_counter() - started
    if done.returncode not in (0, 1):
        raise SystemExit(f"{' '.join(command[:2])} failed:\n{done.stderr[-3000:]}")
    peak = re.search(r"Maximum resident set size \(kbytes\): (\d+)", done.stderr)
    result: dict[str, Any] = {"wall_seconds": round(wall, 1)}
    if measured and peak:
        result["peak_rss_mib"] = round(int(peak.group(1)) / 1024, 1)
    lines = done.stdout.strip().splitlines()
    if lines and lines[-1].startswith("{"):
        result["output"] = json.loads(lines[-1])
    return result


@contextmanager
def served_ministry(agents: int, workdir: Path, **sandbox: Any) -> Iterator[Served]:
    """A generated ministry served by an in-process sandbox (zero latency, no rate limits, every host known to
    Visio), a tenant file for it, and the state database after onboard, directory load, extract and identities
    map (the setup, timed)."""
    from db.migrate import upgrade
    from flows.demo import render_sandbox_tenant
    from sandbox.generator.ministry import GeneratorOptions, generate_ministry
    from sandbox.meet import SANDBOX_CLIENT_SECRET, MeetOptions
    from sandbox.server import Credentials, SandboxConfig, SandboxServer
    from sandbox.smtp import SmtpSink

    started = time.perf_counter()
    data = workdir / "ministry"
    manifest = generate_ministry(data, GeneratorOptions(agents=agents, seed=42, as_of=date(2026, 11, 23)))
    database = workdir / "bench.db"
    upgrade(f"sqlite:///{database}")
    credentials = Credentials()
    config = SandboxConfig(data_dir=data, rate_limits=False, meet=MeetOptions(logged_in_share=1.0), **sandbox)
    with SandboxServer(config) as server, SmtpSink() as sink:
        tenant = workdir / "tenant.toml"
        tenant.write_text(render_sandbox_tenant(manifest, ldif_path=str(data / "directory.ldif"),
                                                sandbox_url=server.url, tls_url=server.tls_url,
                                                ca_file=str(server.ca_file), smtp_port=sink.port,
                                                outlook_calendars=bool(sandbox.get("outlook_calendars"))),
                          encoding="utf-8")
        env = {**os.environ, "BASCULE_DATABASE_URL": f"sqlite:///{database}", "BASCULE_DATA_DIR": str(workdir),
               "PREFECT_LOGGING_LEVEL": "WARNING", "BASCULE_PACING": "false",
               "BASCULE_ZOOM_CLIENT_SECRET": credentials.zoom_client_secret,
               "BASCULE_GRAPH_CLIENT_SECRET": credentials.graph_client_secret,
               "BASCULE_WEBEX_ACCESS_TOKEN": credentials.webex_access_token,
               "BASCULE_VISIO_CLIENT_SECRET": SANDBOX_CLIENT_SECRET}
        env.pop("PREFECT_HOME", None)
        t = str(tenant)
        for command in (["onboard", "--tenant", t], ["directory", "load", "--tenant", t],
                        ["extract", "--tenant", t, "--now", server.sandbox.now().isoformat()],
                        ["identities", "map", "--tenant", t]):
            _run(command, env, measured=False)
        yield Served(server, sink, manifest, t, env, database, round(time.perf_counter() - started, 1))


@dataclass
class Served:
    server: Any
    sink: Any
    manifest: dict[str, Any]
    tenant: str
    env: dict[str, str]
    database: Path
    setup_seconds: float


def measure(agents: int, batch_size: int, workdir: Path) -> dict[str, Any]:
    from sandbox.meet import state_of

    with served_ministry(agents, workdir) as served:
        server, sink, manifest, t, env, database = (served.server, served.sink, served.manifest, served.tenant,
                                                    served.env, served.database)
        setup = served.setup_seconds
        with sqlite3.connect(database) as connection:
            roots = sorted({str(d).split("/")[0] for (d,) in connection.execute(
                "select distinct department from person where department is not null")})
        plan = _run(["wave", "plan", "--tenant", t, "--wave", "bench", "--json",
                     *[arg for root in roots for arg in ("--department", root)]], env, measured=True)
        freeze = _run(["wave", "freeze", "--tenant", t, "--wave", "bench"], env, measured=True)
        cut = _run(["wave", "cutover", "--tenant", t, "--wave", "bench", "--apply", "--json", "--batch-size",
                    str(batch_size)], env, measured=True)
        rooms, messages = len(state_of(server.sandbox).rooms()), len(sink.messages)
        patches = server.sandbox.stats.get("teams:event_patches", 0)
    outcome = cut.pop("output")
    actions = sum(sum(states.values()) for states in plan["output"]["actions"].values())
    applied = outcome["rooms_created"] + outcome["events_rewritten"] + outcome["invitations_sent"]
    return {"agents": agents, "batch_size": batch_size, "setup_seconds": round(setup, 1),
            "meetings": sum(counts.get("total", 0) for counts in manifest["meetings"].values()),
            "wave_persons": plan["output"]["members"], "plan_actions": actions,
            "plan": {k: v for k, v in plan.items() if k != "output"}, "freeze": freeze, "cutover": cut,
            "applied_actions_per_second": round(applied / max(0.1, cut["wall_seconds"]), 1),
            "rooms_created": outcome["rooms_created"], "events_rewritten": outcome["events_rewritten"],
            "invitations_sent": outcome["invitations_sent"], "failed_by_reason": outcome["failed_by_reason"],
            "held": outcome["held"], "sandbox": {"rooms": rooms, "mails": messages, "event_patches": patches}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--agents", type=int, default=20_000)
    parser.add_argument("--batch-size", type=int, default=500)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bascule-bench-cutover-") as workdir:
        run = measure(args.agents, args.batch_size, Path(workdir))
    print(f"{run['agents']} agents, {run['plan_actions']} actions: plan {run['plan']['wall_seconds']} s, cutover "
          f"{run['cutover']['wall_seconds']} s (peak RSS {run['cutover'].get('peak_rss_mib')} MiB), "
          f"{run['rooms_created']} rooms, {run['events_rewritten']} events, {run['invitations_sent']} mails, "
          f"{run['applied_actions_per_second']} actions/s")
    result = {"benchmark": "cutover", "runs": [run]}
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "cutover.json").write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result))


if __name__ == "__main__":
    main()
