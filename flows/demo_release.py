"""The demo after its wave: people use Visio, licences go, a contract shrinks, finance sees the figures (issue 12).

Simulated, in the demo's own process: LiveKit's signed webhooks for most of the wave's hosts (their own migrated
room, as its owner, on three distinct days after the cutover; some only once) go through the real webhook receiver
served on loopback; then the release plan (dry run), the release applied through the outbox against the sandbox's
Zoom, Graph and Webex, one contract amended with its evidence, and the savings report. The demo's clock moves ten
days on (past the grace period) for the plan and the release: `now` is given to them, nothing else changes.
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

__all__ = ["DAYS_LATER", "run_demo_release"]

DAYS_LATER = 10          # the release runs this many days after the wave was verified (grace: 7 days)
SHARE_ACTIVE = 0.8       # hosts seen on three days
SHARE_ONCE = 0.1         # hosts seen once (held: NOT_ENOUGH_VISIO_DAYS); the rest are never seen


@contextmanager
def serving(app: Any) -> Iterator[str]:
    """An ASGI app served by uvicorn on a free loopback port, in a thread; yields its base URL."""
    import socket

    import uvicorn

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = int(probe.getsockname()[1])
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True, name="demo-receiver")
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("the webhook receiver did not start")
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)


def simulate_visio_use(database_url: str, tenant_id: str, wave: str, *, since: datetime,
                       seed: int = 42) -> dict[str, int]:
    """Hosts of the wave's migrated rooms join them as owners, as LiveKit reports it: signed webhooks posted to the
    receiver (which verifies and stores them). Returns hosts by how often they were seen, and deliveries refused."""
    from sqlalchemy import select

    from connectors.livekit import WebhookVerifier
    from db import models
    from flows.runtime import transaction
    from sandbox import livekit
    from web.adoption import WEBHOOK_PATH, adoption_app

    with transaction(database_url) as session:
        rooms = sorted(session.execute(select(models.Room.host_anchor, models.Room.meet_id)
                                       .join(models.Wave, models.Wave.id == models.Room.wave_id)
                                       .where(models.Room.tenant_id == tenant_id, models.Wave.name == wave,
                                              models.Room.host_anchor.is_not(None))).all())
    first_room: dict[str, str] = {}
    for host, meet_id in rooms:
        first_room.setdefault(str(host), str(meet_id))
    hosts = sorted(first_room)
    random.Random(seed).shuffle(hosts)
    active = hosts[:int(len(hosts) * SHARE_ACTIVE)]
    once = hosts[len(active):len(active) + int(len(hosts) * SHARE_ONCE)]
    verifier = WebhookVerifier(api_key=livekit.API_KEY, api_secret=livekit.API_SECRET)
    clock = [since]
    with serving(adoption_app(database_url, tenant_id, verifier)) as base:
        sim = livekit.LiveKitSimulator(livekit.LiveKitOptions(webhook_urls=(base + WEBHOOK_PATH,)),
                                       clock=lambda: clock[0])
        try:
            for day in range(3):
                for index, host in enumerate(active + (once if day == 0 else [])):
                    clock[0] = since + timedelta(days=1 + day, hours=8, minutes=index % 480)
                    sub = f"demo-sub-{host}"
                    sim.join(first_room[host], sub, name="", room_role="owner")
                    sim.leave(first_room[host], sub)
        finally:
            sim.close()
    refused = sum(1 for posted in sim.posted if posted.status != 200)
    return {"hosts": len(hosts), "seen_three_days": len(active), "seen_once": len(once),
            "not_seen": len(hosts) - len(active) - len(once), "webhooks": len(sim.posted),
            "webhooks_refused": refused}


def run_demo_release(database_url: str, tenant_file: Path, wave: str) -> dict[str, Any]:
    """Visio use, the release plan, the release applied, one contract amended, the savings figures."""
    from flows.contracts import amend_contract, sync_contracts
    from flows.licences import ReleaseOutcome, compute_plan, release_licences
    from flows.tenant import TenantConfig

    tenant = TenantConfig.load(tenant_file)
    verified = _verified_at(database_url, tenant.id, wave)
    use = simulate_visio_use(database_url, tenant.id, wave, since=verified)
    at = verified + timedelta(days=DAYS_LATER)
    plan = compute_plan(database_url, tenant, wave=wave, now=at)
    released = release_licences(str(tenant_file), wave=wave, apply=True, now=at.isoformat(), actor="demo")
    assert isinstance(released, ReleaseOutcome)
    sync_contracts(database_url, tenant, tenant_file)
    amended = _amend_zoom(database_url, tenant, released_zoom=_released(database_url, tenant.id, "zoom"),
                          amend=amend_contract)
    from flows.savings import compute_snapshots

    savings = compute_snapshots(database_url, tenant, month=at.date().replace(day=1), now=at)
    head = savings.headline
    later = next((item for item in savings.forecast if amended and item["month"] >= amended["effective"]), None)
    return {
        "savings": {"month": savings.month.isoformat(), "potential_annual": head["potential_annual"],
                    "reclaimed_seats": head["reclaimed_seats"], "stranded": head["stranded"],
                    "realised_run_rate": head["realised_run_rate"], "realised_status": head["realised_status"],
                    "realised_from": later["month"] if later else None,
                    "realised_run_rate_then": later["run_rate"] if later else None,
                    "benchmark_annual": head["benchmark_annual"], "users_left": head["users_left"]},
        "visio_use": use,
        "plan": {"people": plan.people, "releasable_people": plan.people_releasable,
                 "releasable_licences": plan.licences_releasable, "held_by_reason": dict(plan.people_held),
                 "releasable_annual": str(plan.releasable_annual), "as_of": at.isoformat()},
        "release": {"released": released.released, "refused_by_reason": dict(released.refused),
                    "failed": released.failed, "seats_freed_annual": str(released.released_annual),
                    "held_by_reason": dict(released.plan.people_held)},
        "contract_amended": amended,
    }


def _verified_at(database_url: str, tenant_id: str, wave: str) -> datetime:
    from sqlalchemy import select

    from db import models
    from flows.runtime import transaction

    with transaction(database_url) as session:
        row = session.execute(select(models.Wave.state, models.Wave.updated_at).where(
            models.Wave.tenant_id == tenant_id, models.Wave.name == wave)).one()
    return row.updated_at if row.updated_at is not None else datetime.now(UTC)


def _released(database_url: str, tenant_id: str, platform: str) -> int:
    from sqlalchemy import func, select

    from db import models
    from flows.runtime import transaction

    with transaction(database_url) as session:
        return int(session.execute(select(func.count()).select_from(models.Decommission).where(
            models.Decommission.tenant_id == tenant_id, models.Decommission.platform == platform,
            models.Decommission.state == "released")).scalar_one())


def _amend_zoom(database_url: str, tenant: Any, *, released_zoom: int,
                amend: Any) -> dict[str, Any] | None:
    """The Zoom contract lowered at its renewal by the seats released, never below its floor (the order the
    ministry would place; the evidence names it)."""
    line = next((line for line in tenant.contracts if line.platform == "zoom"), None)
    if line is None or released_zoom == 0:
        return None
    quantity = max(line.commit_floor, line.committed_qty - released_zoom)
    effective = line.renewal_date or line.term_end
    evidence = f"avenant de démonstration {effective.year}-001 ({released_zoom} sièges libérés)"
    amend(database_url, tenant.id, line.contract_ref, quantity=quantity, effective=effective, evidence=evidence,
          recorded_by="demo")
    return {"contract": line.contract_ref, "from": line.committed_qty, "to": quantity,
            "effective": effective.isoformat(), "evidence": evidence}
