"""Benchmark: extraction (run on demand, not by pytest).

    .venv/bin/python tests/bench/bench_extract.py [--agents 20000] [--rate-agents 3000]

(a) Zoom meeting listing against a sandbox enforcing the Business plan's limits: achieved Medium-label request
    rate ÷ allowed rate (goal ≥ 0.9) and failed items (goal 0).
(b) A whole extraction (Zoom, Teams, Webex) of a generated ministry on a zero-latency sandbox: wall time and peak
    RSS of the flow process (sampled from /proc; Prefect's temporary server is a separate process).
The sandbox runs in a process of its own (`bascule sandbox serve`), as it would on another machine. Prints one JSON
object on its last line and writes it to tests/bench/results/extract.json.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import httpx

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))
RESULTS = REPO / "tests" / "bench" / "results"

from tests.support.served import served_sandbox  # noqa: E402  (needs the repository on sys.path)

AS_OF = date(2026, 11, 23)
NOW = datetime(AS_OF.year, AS_OF.month, AS_OF.day, 8, tzinfo=UTC)


def zoom_rate(agents: int, workdir: Path) -> dict[str, Any]:
    """Meeting listing of every Zoom host at the Business plan's limits."""
    from connectors.retry import RetryPolicy, RetryStats
    from connectors.throttle import LocalThrottle
    from connectors.zoom import ZoomConfig, ZoomMeetingSource, throttle_rates
    from core import HostRef, Meeting, Quarantined
    from sandbox.generator.ministry import GeneratorOptions, generate_ministry, iter_jsonl
    from sandbox.server import Credentials
    from tests.connectors.harness_zoom import expected_meetings

    data = workdir / "rate"
    manifest = generate_ministry(data, GeneratorOptions(agents=agents, seed=42, as_of=AS_OF))
    hosts = [HostRef(str(u["id"]), str(u["email"]).strip()) for u in iter_jsonl(data / "zoom" / "users.jsonl")
             if u.get("id") and u.get("type") == 2 and u.get("status") == "active"
             and "quarantine" not in str(u["_truth"]["outcome"])]
    hosts.sort(key=lambda h: h.external_id)
    with served_sandbox(data, rate_limits=True) as served:
        url = served.url
        account = manifest["tenant"]["zoom_account_id"]
        config = ZoomConfig(api_url=url + "/zoom/v2", oauth_url=url + "/zoom/oauth/token", account_id=account,
                            client_id=Credentials().zoom_client_id, client_secret=Credentials().zoom_client_secret,
                            plan="business")
        stats = RetryStats()
        source = ZoomMeetingSource(config, throttle=LocalThrottle(throttle_rates(account, "business")),
                                   retry=RetryPolicy(attempts=8, base_delay=0.5, max_delay=30), stats=stats,
                                   clock=lambda: NOW)
        before = httpx.get(url + "/_sandbox/stats").json()["requests"]
        started = time.perf_counter()
        delivered, quarantined = set(), {}
        for page in source.iter_meetings(hosts):
            for item in page.items:
                if isinstance(item, Meeting):
                    delivered.add(item.external_id)
                elif isinstance(item, Quarantined):
                    quarantined[item.record_key] = str(item.reason)
        elapsed = time.perf_counter() - started
        after = httpx.get(url + "/_sandbox/stats").json()["requests"]
    medium = after.get("zoom:label:Medium", 0) - before.get("zoom:label:Medium", 0)
    light = after.get("zoom:label:Light", 0) - before.get("zoom:label:Light", 0)
    limited = sum(v - before.get(k, 0) for k, v in after.items() if k.startswith("zoom:limited"))
    expected, expected_quarantine = expected_meetings(data, hosts)
    return {"agents": agents, "hosts": len(hosts), "meetings": len(delivered), "seconds": round(elapsed, 1),
            "medium_requests": medium, "medium_rate": round(medium / elapsed, 1), "medium_allowed": 60,
            "medium_ratio": round(medium / elapsed / 60, 3), "light_requests": light,
            "light_rate": round(light / elapsed, 1), "light_allowed": 80, "rate_limited_responses": limited,
            "retried": dict(stats.counts), "failed_items": len(expected - delivered) + len(set(expected_quarantine)
                                                                                      - set(quarantined)),
            "unexpected_items": len(delivered - expected)}


def full_extraction(agents: int, workdir: Path) -> dict[str, Any]:
    """`bascule extract` on a whole generated ministry, sandbox without limits or latency."""
    from db.migrate import upgrade
    from flows.demo import render_sandbox_tenant
    from sandbox.generator.ministry import GeneratorOptions, generate_ministry
    from sandbox.server import Credentials

    data = workdir / "full"
    manifest = generate_ministry(data, GeneratorOptions(agents=agents, seed=42, as_of=AS_OF))
    database = workdir / "extract.db"
    upgrade(f"sqlite:///{database}")
    credentials = Credentials()
    with served_sandbox(data, rate_limits=False) as served:
        url, tls_url, ca_file = served.url, served.tls_url, served.ca_file
        tenant = workdir / "tenant.toml"
        tenant.write_text(render_sandbox_tenant(manifest, ldif_path=str(data / "directory.ldif"), sandbox_url=url,
                                                tls_url=tls_url, ca_file=str(ca_file)), encoding="utf-8")
        env = {**os.environ, "BASCULE_DATABASE_URL": f"sqlite:///{database}", "BASCULE_JOB_CHILD": "1",
               "BASCULE_DATA_DIR": str(workdir / "data"), "PREFECT_HOME": str(workdir / "prefect"),
               "BASCULE_ZOOM_CLIENT_SECRET": credentials.zoom_client_secret,
               "BASCULE_GRAPH_CLIENT_SECRET": credentials.graph_client_secret,
               "BASCULE_WEBEX_ACCESS_TOKEN": credentials.webex_access_token, "PREFECT_LOGGING_LEVEL": "WARNING",
               # our own overhead: no pacing at the plans' rates against a sandbox that enforces none
               "BASCULE_PACING": "false"}
        started = time.perf_counter()
        process = subprocess.Popen([sys.executable, "-m", "flows.cli", "extract", "--force", "--tenant", str(tenant),
                                    "--now", NOW.isoformat(), "--json"], cwd=REPO, env=env, stdout=subprocess.PIPE,
                                   stderr=subprocess.PIPE, text=True)
        peak_kib = 0
        status = Path(f"/proc/{process.pid}/status")
        while process.poll() is None:
            try:
                for line in status.read_text().splitlines():
                    if line.startswith("VmHWM:"):
                        peak_kib = max(peak_kib, int(line.split()[1]))
            except OSError:
                pass
            time.sleep(0.2)
        stdout, stderr = process.communicate()
        elapsed = time.perf_counter() - started
    if process.returncode != 0:
        raise RuntimeError(f"extract failed: {stderr[-3000:]}")
    summary = json.loads(stdout.strip().splitlines()[-1])
    counts = {platform: {"accounts": s["users"]["inserted"], "meetings": s["meetings"]["inserted"],
                         "hosts": s["hosts"], "quarantined": {**s["users"]["quarantined"],
                                                              **s["meetings"]["quarantined"]}}
              for platform, s in summary.items()}
    return {"agents": agents, "wall_seconds": round(elapsed, 1), "flow_process_peak_rss_mib": round(peak_kib / 1024, 1),
            "records": counts}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--agents", type=int, default=20_000)
    parser.add_argument("--rate-agents", type=int, default=3_000)
    parser.add_argument("--skip-rate", action="store_true")
    parser.add_argument("--skip-full", action="store_true")
    args = parser.parse_args()
    result: dict[str, Any] = {"benchmark": "extract", "goal": {"medium_ratio": 0.9, "failed_items": 0}}
    with tempfile.TemporaryDirectory(prefix="bascule-bench-extract-") as directory:
        workdir = Path(directory)
        if not args.skip_rate:
            result["zoom_business_limits"] = zoom_rate(args.rate_agents, workdir)
            print(f"(a) Zoom meeting listing at Business limits: {result['zoom_business_limits']}")
        if not args.skip_full:
            result["full_extraction"] = full_extraction(args.agents, workdir)
            print(f"(b) full extraction: {result['full_extraction']}")
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "extract.json").write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result))


if __name__ == "__main__":
    main()
