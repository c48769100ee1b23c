"""Benchmark: the organisers' calendar scan of a ministry in Exchange Online — the first listing, then scans that
read only what changed (Graph calendarView/delta) — on the zero-latency sandbox (run on demand, not by pytest).

    .venv/bin/python tests/bench/bench_calendars.py [--agents 20000] [--edited 0.05]

Setup (timed, not the point): generate the ministry with its organisers' Outlook calendars, serve it, onboard,
directory load, extract, identities map (bench_cutover.served_ministry). Measured, each command in a fresh process
under /usr/bin/time -v (wall time, peak RSS): `calendars scan` (the first: every mailbox listed), `calendars scan`
again (nothing changed), then after `--edited` of the organisers' Zoom/Webex series were edited in their mailboxes,
`calendars scan` (those read again), and `calendars scan --full`. Prints one JSON object on its last line and
writes it to tests/bench/results/calendars.json.
"""

from __future__ import annotations

import argparse
import base64
import json
import random
import secrets
import sys
import tempfile
from pathlib import Path
from typing import Any

import orjson

REPO = Path(__file__).resolve().parents[2]
RESULTS = REPO / "tests" / "bench" / "results"
sys.path.insert(0, str(REPO))

from tests.bench.bench_cutover import _run, served_ministry  # noqa: E402


def _edit(graph: Any, share: float) -> int:
    """Organisers edit `share` of their Zoom/Webex series (a line added to the body: a new change key)."""
    masters = [record for record in graph.events.records()
               if record.get("type") == "seriesMaster" and "uid" in (record.get("_truth") or {})]
    chosen = random.Random(7).sample(masters, int(len(masters) * share))
    for record in chosen:
        previous = orjson.loads(orjson.dumps(record))
        record["body"] = {**record["body"], "content": str(record["body"]["content"]) + "<p>Salle 4.</p>"}
        record["changeKey"] = base64.b64encode(secrets.token_bytes(12)).decode("ascii")
        graph.put_event(record, previous)
    return len(chosen)


def measure(agents: int, edited: float, workdir: Path) -> dict[str, Any]:
    from sandbox.graph import state_of

    with served_ministry(agents, workdir, outlook_calendars=True) as served:
        now = served.server.sandbox.now().isoformat()
        scan = ["calendars", "scan", "--tenant", served.tenant, "--now", now, "--json"]
        first = _run(scan, served.env, measured=True)
        quiet = _run(scan, served.env, measured=True)
        changed_series = _edit(state_of(served.server.sandbox), edited)
        changed = _run(scan, served.env, measured=True)
        full = _run([*scan, "--full"], served.env, measured=True)
    runs = {"first": first, "nothing_changed": quiet, "after_edits": changed, "full": full}
    return {"agents": agents, "setup_seconds": served.setup_seconds, "series_edited": changed_series,
            "events": first["output"]["events"], "matched": first["output"]["matched"],
            **{name: {"wall_seconds": run["wall_seconds"], "peak_rss_mib": run.get("peak_rss_mib"),
                      **{key: run["output"]["this_run"][key] for key in ("organisers", "listed", "by_delta",
                                                                         "events_read", "events", "forgotten")}}
               for name, run in runs.items()}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--agents", type=int, default=20_000)
    parser.add_argument("--edited", type=float, default=0.05, help="share of the series edited between scans")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bascule-bench-calendars-") as workdir:
        run = measure(args.agents, args.edited, Path(workdir))
    print(f"{run['agents']} agents, {run['events']} events: first scan {run['first']['wall_seconds']} s "
          f"({run['first']['events_read']} read), nothing changed {run['nothing_changed']['wall_seconds']} s "
          f"({run['nothing_changed']['events_read']} read), {run['series_edited']} series edited "
          f"{run['after_edits']['wall_seconds']} s ({run['after_edits']['events_read']} read), --full "
          f"{run['full']['wall_seconds']} s")
    result = {"benchmark": "calendars", "runs": [run]}
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "calendars.json").write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result))


if __name__ == "__main__":
    main()
