"""Benchmark: the licence release plan and the savings snapshots of a 200,000-agent ministry (on demand, not pytest).

    .venv/bin/python tests/bench/bench_savings.py [--agents 200000] [--database URL]

Setup (timed, not the point): a fresh state database filled in bulk with what those two steps read — people,
accounts on every platform (Zoom paid users, Microsoft E3 with Teams plus a standalone Teams SKU, Webex meeting
licences), their licences and identity matches, four waves (two verified three weeks ago, one cut over, one
planned), three meetings per host (some webinars, some over 150 invitees), the Visio rooms of the verified waves and
three days of LiveKit evidence for most of their hosts, and contract lines with an amendment. Measured, each in a
fresh process (wall time and peak RSS of that process): the release plan over every person (`compute_plan`, the
dry run) and the snapshots of the current month (`compute_snapshots`). Goal: each under 60 s and 500 MiB on a
2-core machine. Prints one JSON object on its last line and writes it to tests/bench/results/savings.json.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
RESULTS = REPO / "tests" / "bench" / "results"
sys.path.insert(0, str(REPO))

TENANT = "min-bench-savings"
E3 = "6fd2c87f-b296-42f0-b197-1e91e994b900"
TEAMS_ENT = "7e31c0d9-9551-471d-836f-32ee72be4a01"
WEBEX_MEETINGS = "webex-licence-meeting-center"
NOW = datetime(2026, 12, 4, 12, 0, tzinfo=UTC)
CHUNK = 20_000


def tenant_text(workdir: Path, agents: int = 200_000) -> str:
    """The bench tenant: contract quantities in proportion to the ministry (Zoom 30 %, Teams 10 %, Webex 20 %)."""
    ldif = workdir / "empty.ldif"
    ldif.write_text("version: 1\n", encoding="utf-8")
    return f"""id = "{TENANT}"
name = "Ministère du banc d'essai"
siret = "11004601800013"
domains = ["bench.gouv.fr"]

[directory]
kind = "ldif"
flavour = "ad"
ldif_path = "{ldif}"

[cost_model]
default_annual_unit_cost = "10.00"

[[contracts]]
contract_ref = "ZOOM-BENCH"
vendor = "Zoom Video Communications"
platform = "zoom"
sku_key = "zoom:type:2"
unit_price = "150.00"
billing_period_months = 12
committed_qty = {agents * 3 // 10}
commit_floor = {agents * 3 // 20}
term_start = 2026-03-01
term_end = 2027-03-01
renewal_date = 2027-03-01
notice_days = 90

[[contracts]]
contract_ref = "MS-TEAMS-BENCH"
vendor = "Microsoft"
platform = "teams"
sku_key = "{TEAMS_ENT}"
unit_price = "5.30"
billing_period_months = 1
committed_qty = {agents // 10}
term_start = 2026-11-20
term_end = 2027-11-20
cancellation_window_days = 7

[[contracts]]
contract_ref = "WEBEX-BENCH"
vendor = "Cisco Webex"
platform = "webex"
sku_key = "{WEBEX_MEETINGS}"
unit_price = "132.00"
billing_period_months = 12
committed_qty = {agents // 5}
commit_floor = {agents // 10}
term_start = 2024-07-01
term_end = 2027-06-30
"""


def fill(url: str, agents: int) -> dict[str, int]:
    """The tenant's rows in bulk (Core inserts, chunked): what the plan and the snapshots read."""
    from sqlalchemy import insert

    from db import models
    from db.engine import make_engine
    from db.models import table_of

    engine = make_engine(url)
    counts: dict[str, int] = {}

    def put(model: Any, rows: list[dict[str, Any]]) -> None:
        table = table_of(model)
        counts[table.name] = counts.get(table.name, 0) + len(rows)
        with engine.begin() as connection:
            for start in range(0, len(rows), CHUNK):
                connection.execute(insert(table), rows[start:start + CHUNK])

    synced = {"content_hash": "x", "last_seen_pass": "bench", "created_at": NOW - timedelta(days=60),
              "updated_at": NOW - timedelta(days=60), "removed_at": None}
    put(models.Tenant, [{"id": TENANT, "name": "Bench", "siret": None, "config_path": None, "config_hash": None,
                         "registered_at": NOW, "updated_at": NOW, "readiness": None, "ready": True}])
    anchors = [f"{uuid.UUID(int=i + 1)}" for i in range(agents)]
    put(models.Person, [{"tenant_id": TENANT, "anchor": anchor, "primary_email": f"agent{i}@bench.gouv.fr",
                         "email_normalised": f"agent{i}@bench.gouv.fr", "display_name": f"Agent {i}",
                         "department": f"D{i % 12:02d}/S{i % 7}", "population": "agent", "disabled": False,
                         "proconnect_email": None, "expected_idp": None, "siret": None, "visio_provisioning": None,
                         "login_hint_url": None, "excluded_reason": None, "content_hash": "x", "created_at": NOW,
                         "updated_at": NOW, "removed_at": None} for i, anchor in enumerate(anchors)])
    put(models.LicenceSku, [
        {"tenant_id": TENANT, "platform": platform, "sku_key": key, "name": name, "includes_meetings": meetings,
         "prepaid_units": prepaid, "consumed_units": None, "site_url": None, "annual_unit_cost": None, **synced}
        for platform, key, name, meetings, prepaid in (
            ("zoom", "zoom:type:2", "Licensed", True, None), ("zoom", "zoom:type:1", "Basic", False, None),
            ("teams", E3, "ENTERPRISEPACK", True, agents), ("teams", TEAMS_ENT, "Microsoft_Teams_Enterprise_New",
                                                             True, agents // 10),
            ("webex", WEBEX_MEETINGS, "Meeting - Webex Meeting Center", True, agents // 5))])
    accounts, held, matches = [], [], []
    for i, anchor in enumerate(anchors):
        owned = [("teams", f"t{i}", [E3] + ([TEAMS_ENT] if i % 10 == 0 else []))]
        if i % 10 < 3:
            owned.append(("zoom", f"z{i}", ["zoom:type:2"]))
        if i % 5 == 1:
            owned.append(("webex", f"w{i}", [WEBEX_MEETINGS]))
        for platform, external, skus in owned:
            accounts.append({"tenant_id": TENANT, "platform": platform, "external_id": external,
                             "email": f"agent{i}@bench.gouv.fr", "email_normalised": f"agent{i}@bench.gouv.fr",
                             "status": "active", "licensed": True, "licences": skus, "display_name": None,
                             "given_name": None, "surname": None, "aliases": [], "employee_id": None,
                             "immutable_id": None, "role": None, "account_type": None, "department": None,
                             "last_activity": None if i % 9 == 0 else NOW - timedelta(days=i % 120), **synced})
            matches.append({"tenant_id": TENANT, "platform": platform, "account_external_id": external,
                            "person_anchor": anchor, "method": "email", "last_seen_pass": "bench",
                            "updated_at": NOW})
            held += [{"tenant_id": TENANT, "platform": platform, "account_external_id": external, "sku_key": sku,
                      "assigned_by_group": None, "state": "assigned", "first_seen_at": NOW - timedelta(days=60),
                      "released_at": None} for sku in skus]
    put(models.SourceAccount, accounts)
    put(models.IdentityMatch, matches)
    put(models.LicenceAssignment, held)
    del accounts, held
    waves = []
    for number, (state, cut) in enumerate((("verified", 25), ("verified", 21), ("cut_over", 3), ("planned", None))):
        waves.append({"tenant_id": TENANT, "name": f"vague-{number + 1}", "state": state, "selection": {},
                      "created_at": NOW - timedelta(days=40), "updated_at": NOW - timedelta(days=(cut or 40) - 1),
                      "cut_over_at": NOW - timedelta(days=cut) if cut else None, "guard_until": None})
    put(models.Wave, waves)
    with engine.connect() as connection:
        wave_ids = [row[0] for row in connection.execute(table_of(models.Wave).select().with_only_columns(
            table_of(models.Wave).c.id).order_by(table_of(models.Wave).c.id))]
    per_wave = agents // 5
    put(models.WaveMember, [{"tenant_id": TENANT, "wave_id": wave_ids[i // per_wave], "person_anchor": anchor}
                            for i, anchor in enumerate(anchors[:per_wave * 4])])
    meetings = []
    for match in matches:
        host = match["account_external_id"]
        i = int(host[1:])
        for n in range(3 if host.startswith("t") else 1):
            meetings.append({"tenant_id": TENANT, "platform": match["platform"], "external_id": f"{host}-m{n}",
                             "host_account_id": host, "host_email": f"agent{i}@bench.gouv.fr", "topic": "Point",
                             "kind": "weekly", "timezone": "Europe/Paris", "rrule": "FREQ=WEEKLY", "rrule_timezone":
                             None, "exclusions": [], "exceptions": [], "start_at": NOW, "ends_at": None,
                             "duration_minutes": 30, "join_url": f"https://x/{host}-{n}", "link_key": f"{host}-{n}",
                             "number_key": None, "invitee_count": 200 if i % 97 == 0 else 8, "invitees": [],
                             "alternative_hosts": [], "flags": {"webinar": i % 89 == 0}, **synced})
            if len(meetings) >= CHUNK * 5:
                put(models.Meeting, meetings)
                meetings = []
    put(models.Meeting, meetings)
    del meetings
    hosts = anchors[:per_wave * 2]   # the two verified waves
    rooms = [{"tenant_id": TENANT, "meet_id": str(uuid.UUID(int=10**12 + i)), "action_key": f"room:{i}",
              "slug": f"bench-{i}", "url": None, "access_level": "trusted", "owner_email": f"agent{i}@bench.gouv.fr",
              "owner_user_id": None, "telephony": None, "wave_id": wave_ids[i // per_wave], "host_anchor": anchor,
              "adopted": False, "created_at": NOW - timedelta(days=25), "verified_at": None}
             for i, anchor in enumerate(hosts)]
    put(models.Room, rooms)
    events = []
    for i, room in enumerate(rooms):
        if i % 10 == 9:
            continue   # never seen in Visio
        for day in range(3 if i % 10 < 8 else 1):
            events.append({"tenant_id": TENANT, "event_id": f"EV_{i}_{day}", "event": "participant_joined",
                           "room_meet_id": room["meet_id"], "participant_identity": f"sub-{i}", "authenticated": True,
                           "room_role": "owner", "occurred_at": NOW - timedelta(days=5 + day, hours=i % 9)})
            if len(events) >= CHUNK * 5:
                put(models.AdoptionEvent, events)
                events = []
    put(models.AdoptionEvent, events)
    engine.dispose()
    return counts


def step(name: str, url: str, tenant_file: Path) -> None:
    """One measured step, in this (fresh) process; prints its JSON result."""
    os.environ["BASCULE_DATABASE_URL"] = url
    from flows.tenant import TenantConfig

    tenant = TenantConfig.load(tenant_file)
    started = time.perf_counter()
    if name == "plan":
        from flows.licences import compute_plan

        plan = compute_plan(url, tenant, wave=None, now=NOW)
        output: dict[str, Any] = {"people": plan.people, "releasable": plan.people_releasable,
                                  "licences_releasable": plan.licences_releasable, "held": plan.people_held}
    else:
        from flows.savings import compute_snapshots

        report = compute_snapshots(url, tenant, month=NOW.date().replace(day=1), now=NOW)
        output = {"rows": len(report.rows), **{key: report.headline[key] for key in (
            "potential_annual", "reclaimed_seats", "stranded", "realised_run_rate", "benchmark_annual")}}
    wall = time.perf_counter() - started
    print(json.dumps({"wall_seconds": round(wall, 1), "peak_rss_mib": round(_peak_mib(), 1), "output": output},
                     default=str))


def _peak_mib() -> float:
    """This process's peak resident set (VmHWM): getrusage's ru_maxrss would include the parent's at fork."""
    for line in Path("/proc/self/status").read_text(encoding="utf-8").splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def measure(agents: int, workdir: Path, database: str | None) -> dict[str, Any]:
    from db.migrate import upgrade

    url = database or f"sqlite:///{workdir / 'savings.db'}"
    upgrade(url)
    tenant_file = workdir / "tenant.toml"
    tenant_file.write_text(tenant_text(workdir, agents), encoding="utf-8")
    started = time.perf_counter()
    counts = fill(url, agents)
    from flows.contracts import amend_contract, sync_contracts
    from flows.tenant import TenantConfig

    tenant = TenantConfig.load(tenant_file)
    sync_contracts(url, tenant, tenant_file, now=NOW)
    amend_contract(url, TENANT, "ZOOM-BENCH", quantity=agents * 2 // 10, effective=date(2027, 3, 1),
                   evidence="avenant 2027-001", recorded_by="bench", now=NOW)
    setup = time.perf_counter() - started
    result: dict[str, Any] = {"agents": agents, "database": url.split(":", 1)[0], "setup_seconds": round(setup, 1),
                              "rows": counts}
    for name in ("plan", "snapshots"):
        done = subprocess.run([sys.executable, __file__, "--step", name, "--database", url, "--tenant",
                               str(tenant_file)], cwd=REPO, capture_output=True, text=True, check=False,
                              env={**os.environ, "PREFECT_LOGGING_LEVEL": "WARNING"})
        if done.returncode != 0:
            result[name] = {"error": done.stderr.strip().splitlines()[-1] if done.stderr.strip() else "failed"}
            continue
        result[name] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--agents", type=int, default=200_000)
    parser.add_argument("--database", help="a state database URL (default: a fresh SQLite file)")
    parser.add_argument("--step", choices=("plan", "snapshots"), help=argparse.SUPPRESS)
    parser.add_argument("--tenant", type=Path, help=argparse.SUPPRESS)
    arguments = parser.parse_args()
    if arguments.step:
        step(arguments.step, arguments.database, arguments.tenant)
        return
    with tempfile.TemporaryDirectory(prefix="bench-savings-") as scratch:
        result = measure(arguments.agents, Path(scratch), arguments.database)
    result["goal"] = {"wall_seconds": 60, "peak_rss_mib": 500}
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "savings.json").write_text(json.dumps(result, indent=2, default=str) + "\n", encoding="utf-8")
    print(json.dumps(result, default=str))


if __name__ == "__main__":
    main()
