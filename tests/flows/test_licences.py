"""Licences released at the source only after adoption evidence, through the outbox (issue 12, points 2-3).

End to end on the sandbox: a wave cut over and verified, Visio use arriving as signed LiveKit webhooks through the
receiver, a host who goes on scheduling Zoom meetings, then `licences plan` (the dry run), `licences release
--apply` killed mid-way and run again, and `licences restore`. The sources are the sandbox's Zoom, Graph and Webex,
read back after each write."""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from connectors.livekit import WebhookVerifier
from sandbox import livekit
from sandbox import zoom as sandbox_zoom
from tests.flows import test_cutover as cutover_tests
from tests.flows.test_cutover import WAVE, Killed, Pipeline, _cutover, _hosts_log_in_first

# The cutover tests' fixtures: a ministry extracted and mapped, a wave planned and frozen, a fresh sandbox.
planned = cutover_tests.planned
pipeline = cutover_tests.pipeline

T0 = datetime.now(UTC).replace(microsecond=0)          # the wave is verified now
PLAN_AT = T0 + timedelta(days=10)                       # past the 7 days of grace, inside the 30-day window


@pytest.fixture
def receiver(pipeline: Pipeline) -> Iterator[str]:
    """The LiveKit webhook receiver over the pipeline's database, for its tenant (served as the demo serves it)."""
    from flows.demo_release import serving
    from flows.tenant import TenantConfig
    from web.adoption import WEBHOOK_PATH, adoption_app

    verifier = WebhookVerifier(api_key=livekit.API_KEY, api_secret=livekit.API_SECRET)
    with serving(adoption_app(pipeline.url, TenantConfig.load(pipeline.tenant).id, verifier)) as base:
        yield base + WEBHOOK_PATH


def _verified(pipeline: Pipeline) -> None:
    """Cut over, then verified at T0. The contract ministry carries deliberate refusals (a domain Visio does not
    allow…) that keep its wave open, so the wave is marked verified directly once verify found no problem in what
    was applied (verification itself is tested with the cutover)."""
    from core.waves import WaveState
    from db.waves import WaveRepository
    from flows.cutover import verify_wave
    from flows.runtime import transaction
    from flows.tenant import TenantConfig

    _hosts_log_in_first(pipeline)
    _cutover(pipeline)
    report = verify_wave(str(pipeline.tenant), WAVE, now=T0.isoformat())
    assert report["problem_count"] == 0, report["problems"][:3]
    with transaction(pipeline.url) as session:
        waves = WaveRepository(session, TenantConfig.load(pipeline.tenant).id)
        found = waves.get(WAVE)
        assert found is not None
        waves.set_state(found.id, WaveState.VERIFIED, now=T0)


def _use_visio(url: str, rooms: dict[str, str], days: dict[str, int]) -> livekit.LiveKitSimulator:
    """Each host joins their migrated room as its owner on `days[host]` distinct days after the cutover."""
    clock = [T0]
    sim = livekit.LiveKitSimulator(livekit.LiveKitOptions(webhook_urls=(url,)), clock=lambda: clock[0])
    for host, count in days.items():
        for day in range(count):
            clock[0] = T0 + timedelta(days=1 + day, hours=9)
            sub = f"sub-{host}"
            sim.join(rooms[host], sub, room_role="owner")
            sim.leave(rooms[host], sub)
    assert sim.posted and all(posted.status == 200 for posted in sim.posted), sim.posted[:3]
    return sim


def _in_scope(pipeline: Pipeline) -> dict[str, list[tuple[str, str, str]]]:
    """Wave members holding a licence that includes meetings: anchor → (platform, account, sku)."""
    rows = pipeline.query(
        "select m.person_anchor, a.platform, a.account_external_id, a.sku_key from identity_match m "
        "join licence_assignment a on a.tenant_id = m.tenant_id and a.platform = m.platform "
        " and a.account_external_id = m.account_external_id and a.state = 'assigned' "
        "join licence_sku s on s.tenant_id = a.tenant_id and s.platform = a.platform and s.sku_key = a.sku_key "
        " and s.includes_meetings = :yes "
        "join wave_member w on w.person_anchor = m.person_anchor", yes=True)
    found: dict[str, list[tuple[str, str, str]]] = {}
    for anchor, platform, account, sku in rows:
        found.setdefault(anchor, []).append((platform, account, sku))
    return found


def _plan(pipeline: Pipeline, **options: Any) -> Any:
    from flows.licences import compute_plan
    from flows.tenant import TenantConfig

    return compute_plan(pipeline.url, TenantConfig.load(pipeline.tenant), wave=None, now=PLAN_AT, **options)


def _rows(pipeline: Pipeline, path: Path) -> list[dict[str, str]]:
    import csv

    from flows.licences import compute_plan
    from flows.tenant import TenantConfig

    compute_plan(pipeline.url, TenantConfig.load(pipeline.tenant), wave=None, now=PLAN_AT, csv_path=path)
    with path.open(encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def _release(pipeline: Pipeline) -> Any:
    from flows.licences import release_licences

    return release_licences(str(pipeline.tenant), apply=True, now=PLAN_AT.isoformat(), actor="test")


def _zoom_type(pipeline: Pipeline, user_id: str) -> int | None:
    api = sandbox_zoom._APIS[pipeline.server.sandbox]
    record = api.users.get(user_id)
    return None if record is None else record.get("type")


def test_only_people_with_evidence_are_released_exactly_once_and_restore_gives_the_seat_back(
        pipeline: Pipeline, receiver: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from db.releases import ReleaseRepository

    _verified(pipeline)
    scope = _in_scope(pipeline)
    rooms = {host: meet_id for meet_id, host in pipeline.query("select meet_id, host_anchor from room")}
    zoom_hosts = sorted(anchor for anchor, lines in scope.items() if anchor in rooms
                        and any(platform == "zoom" for platform, _, _ in lines))
    assert len(zoom_hosts) >= 4, zoom_hosts
    stalled, hosting, *active = zoom_hosts
    sim = _use_visio(receiver, rooms, {stalled: 1, hosting: 3, **dict.fromkeys(active, 3)})

    # A forged and a replayed delivery change nothing: the stalled host still has one day.
    joined = next(item for item in sim.deliveries if item.event == "participant_joined"
                  and item.room == rooms[stalled])
    forged = livekit.Delivery("EV_forged00001", joined.event, joined.room, joined.created_at,
                              joined.body.replace(joined.event_id.encode(), b"EV_forged00001"),
                              joined.authorization)
    assert [posted.status for posted in sim.deliver(forged)] == [400]
    assert [posted.status for posted in sim.replay(joined.event_id, times=2)] == [200, 200]

    # The `hosting` host schedules a new Zoom meeting after the cutover; the next extraction sees it.
    (zoom_account, like), = pipeline.query(
        "select m.account_external_id, mt.external_id from identity_match m join meeting mt "
        "on mt.platform = m.platform and mt.host_account_id = m.account_external_id "
        "where m.person_anchor = :anchor and m.platform = 'zoom' order by mt.external_id limit 1", anchor=hosting)
    sandbox_zoom.schedule_meeting(pipeline.server.sandbox, zoom_account, like, meeting_id=98765432101,
                                  topic="Point hebdo (créé après la bascule)")
    from flows.extract import extract

    # Zoom only: the Graph delta link stored by the template names the port of an earlier sandbox.
    extract(str(pipeline.tenant), platforms=["zoom"], now=(T0 + timedelta(days=2)).isoformat())

    assert pipeline.query("select created_at from meeting where external_id = '98765432101'"), "not extracted"
    # The dry run: writes nothing, one reason per person held.
    before = pipeline.query("select count(*) from decommission")
    rows = _rows(pipeline, tmp_path / "plan.csv")
    assert pipeline.query("select count(*) from decommission") == before == [(0,)]
    by_person: dict[str, list[dict[str, str]]] = {}
    for row in rows:
        by_person.setdefault(row["person"], []).append(row)
    assert {row["reason"] for row in by_person[stalled]} == {"NOT_ENOUGH_VISIO_DAYS"}
    assert {row["reason"] for row in by_person[hosting]} == {"HOSTS_ON_SOURCE"}
    releasable = {row["person"] for row in rows if row["releasable"] == "yes"}
    assert releasable and releasable <= set(active), "only people seen in Visio on enough days are releasable"
    for anchor in set(active) - releasable:   # an active host still held is held for a reason that is not evidence
        assert {row["reason"] for row in by_person[anchor]} - {"NOT_ENOUGH_VISIO_DAYS", "HOSTS_ON_SOURCE", ""}
    expected = {(row["platform"], row["account"], row["sku_key"]) for row in rows if row["releasable"] == "yes"}
    plan = _plan(pipeline)
    assert plan.licences_releasable == len(expected) and plan.people_releasable == len(releasable)
    assert sum(line.releasable for line in plan.skus) == len(expected)

    # Released, killed after the sources were called for part of the first batch, then run again.
    monkeypatch.setenv("BASCULE_DATABASE_URL", pipeline.url)
    real_record = ReleaseRepository.record
    calls = Counter[str]()

    def record(self: Any, *args: Any, **kwargs: Any) -> None:
        calls["record"] += 1
        if calls["record"] == 2:
            raise Killed("killed")
        real_record(self, *args, **kwargs)

    monkeypatch.setattr(ReleaseRepository, "record", record)
    with pytest.raises(Killed):
        _release(pipeline)
    monkeypatch.setattr(ReleaseRepository, "record", real_record)
    assert pipeline.query("select count(*) from decommission where state = 'claimed'")[0][0] > 0
    writes_before = dict(pipeline.server.sandbox.stats)
    outcome = _release(pipeline)
    released = {(platform, account, sku) for platform, account, sku in pipeline.query(
        "select platform, account_external_id, sku_key from decommission where state = 'released'")}
    refused = {(platform, account, sku) for platform, account, sku in pipeline.query(
        "select platform, account_external_id, sku_key from decommission where state = 'refused'")}
    assert released | refused == expected and not released & refused
    assert outcome.reconciled > 0 and outcome.totals.get("claimed", 0) == 0
    writes = Counter({key: pipeline.server.sandbox.stats[key] for key in (
        "zoom:write:patch_user", "teams:write:assign_license", "webex:write:patch_licences")})
    by_platform = Counter(platform for platform, _, _ in released)
    # Exactly one write per licence freed, across the killed run and the re-run (the re-run read first).
    assert writes["zoom:write:patch_user"] == by_platform["zoom"]
    assert writes["teams:write:assign_license"] == by_platform["teams"]
    assert writes["webex:write:patch_licences"] == by_platform["webex"] + sum(
        1 for platform, _, _ in refused if platform == "webex")
    assert writes_before["zoom:write:patch_user"] >= 1   # the killed run had sent some
    for platform, account, _sku in released:
        if platform == "zoom":
            assert _zoom_type(pipeline, account) == 1
    # Audited, and the licence's assignment follows.
    assert pipeline.query("select count(*) from audit_event where action = 'licence.release'")[0][0] >= len(expected)
    assert {row[0] for row in pipeline.query(
        "select a.state from licence_assignment a join decommission d on d.platform = a.platform "
        "and d.account_external_id = a.account_external_id and d.sku_key = a.sku_key where d.state = 'released'")} \
        == {"released"}

    # Run again: nothing more is sent, nothing changes.
    again = _release(pipeline)
    assert again.released == 0 and pipeline.server.sandbox.stats["zoom:write:patch_user"] == writes[
        "zoom:write:patch_user"]

    # Restore one person's Zoom licence: the sandbox shows it paid again, the next plan holds it.
    (person, account), (late_person, late_account) = [(anchor, acc) for anchor, platform, acc in pipeline.query(
        "select person_anchor, platform, account_external_id from decommission where state = 'released' "
        "order by 1") if platform == "zoom"][:2]
    emails = dict(pipeline.query("select anchor, primary_email from person where anchor in (:a, :b)", a=person,
                                 b=late_person))
    from flows.licences import restore_licences

    soon = (PLAN_AT + timedelta(days=1)).isoformat()
    dry = restore_licences(str(pipeline.tenant), emails=[emails[person].upper()], now=soon)
    assert dry.dry_run and dry.queued >= 1 and _zoom_type(pipeline, account) == 1
    done = restore_licences(str(pipeline.tenant), emails=[emails[person]], apply=True, now=soon, actor="test")
    assert done.restored >= 1 and not done.failed
    assert _zoom_type(pipeline, account) == 2
    assert pipeline.query("select state from decommission where account_external_id = :a", a=account) == [
        ("restored",)]
    assert pipeline.query("select state from licence_assignment where account_external_id = :a and platform = "
                          "'zoom'", a=account) == [("assigned",)]
    assert {row["reason"] for row in _rows(pipeline, tmp_path / "after.csv")
            if row["person"] == person and row["platform"] == "zoom"} == {"RESTORED"}
    # Outside the window (30 days after its release) nothing is granted, and the outcome says so.
    late = restore_licences(str(pipeline.tenant), emails=[emails[late_person]], apply=True,
                            now=(PLAN_AT + timedelta(days=31)).isoformat())
    assert late.restored == 0 and late.queued == 0 and late.outside_window
    assert _zoom_type(pipeline, late_account) == 1


def _tenant_with(pipeline: Pipeline, extra: str) -> Path:
    """The pipeline's tenant file with its [release] table replaced."""
    text = re.sub(r"\n\[release\][^\n]*\n(?:[^\n\[]+\n)*", "\n", pipeline.tenant.read_text(encoding="utf-8"))
    assert "[release]" not in text and "min_visio_days" not in text
    path = pipeline.tenant.with_name("tenant-release.toml")
    path.write_text(text + "\n[release]\n" + extra, encoding="utf-8")
    return path


def test_exemptions_and_the_keep_list_hold_people_who_would_be_released(
        pipeline: Pipeline, receiver: str, tmp_path: Path) -> None:
    from flows.licences import compute_plan
    from flows.tenant import TenantConfig

    _verified(pipeline)
    scope = _in_scope(pipeline)
    rooms = {host: meet_id for meet_id, host in pipeline.query("select meet_id, host_anchor from room")}
    hosts = sorted(anchor for anchor in scope if anchor in rooms)
    _use_visio(receiver, rooms, dict.fromkeys(hosts, 3))
    base = compute_plan(pipeline.url, TenantConfig.load(pipeline.tenant), wave=None, now=PLAN_AT)
    first = {row for row in _releasable(pipeline, pipeline.tenant)}
    assert len(first) >= 3 and base.people_releasable == len(first)
    listed, large, *_rest = sorted(first)

    # One person on the ministry's keep list (as Excel saves it: Windows-1252, semicolons, a sep= line), one who
    # hosts a meeting of 200 invitees; a row naming nobody is counted, not fatal.
    (email,), = pipeline.query("select primary_email from person where anchor = :a", a=listed)
    keep = tmp_path / "garder.csv"
    keep.write_bytes(f"sep=;\r\nemail;raison\r\n{email.upper()};élue\r\nnobody@nowhere.example;départ\r\n"
                     .encode("cp1252"))
    from sqlalchemy import text

    from flows.runtime import transaction

    with transaction(pipeline.url) as session:
        session.execute(text("update meeting set invitee_count = 200 where host_account_id in (select "
                             "account_external_id from identity_match where person_anchor = :a)"), {"a": large})
    tenant = _tenant_with(pipeline, f'keep_licence_csv = "{keep}"\n')
    plan = compute_plan(pipeline.url, TenantConfig.load(tenant), wave=None, now=PLAN_AT)
    assert plan.keep_list == {"rows": 2, "people": 1, "unknown": 1}
    after = _releasable(pipeline, tenant)
    assert after == first - {listed, large}
    assert plan.people_held.get("EXEMPT_LISTED") == base.people_held.get("EXEMPT_LISTED", 0) + 1
    assert plan.people_held.get("EXEMPT_LARGE_MEETINGS", 0) >= 1

    # The exemption switched off (and a larger threshold) gives them back; a stricter policy holds everyone.
    relaxed = _tenant_with(pipeline, "exempt_large_meetings = false\n")
    assert large in _releasable(pipeline, relaxed)
    strict = _tenant_with(pipeline, "min_visio_days = 4\n")
    assert not _releasable(pipeline, strict)
    late = _tenant_with(pipeline, "grace_days = 20\n")
    held = compute_plan(pipeline.url, TenantConfig.load(late), wave=None, now=PLAN_AT)
    assert held.people_releasable == 0 and held.people_held.get("IN_GRACE_PERIOD", 0) >= base.people_releasable


def _releasable(pipeline: Pipeline, tenant: Path) -> set[str]:
    from flows.licences import compute_plan
    from flows.tenant import TenantConfig

    path = tenant.with_suffix(".csv")
    compute_plan(pipeline.url, TenantConfig.load(tenant), wave=None, now=PLAN_AT, csv_path=path)
    import csv

    with path.open(encoding="utf-8") as handle:
        return {row["person"] for row in csv.DictReader(handle) if row["releasable"] == "yes"}


@pytest.mark.slow
def test_the_commands_plan_dry_run_and_refuse_what_cannot_be(pipeline: Pipeline, tmp_path: Path) -> None:
    """Through `bascule licences` in its own process: the plan in JSON and CSV, the release's dry run, a restore
    naming nobody refused in one line."""
    import json
    import os
    import subprocess
    import sys

    from tests.conftest import REPO

    env = {**os.environ, "BASCULE_DATA_DIR": str(tmp_path / ".bascule"), "BASCULE_DATABASE_URL": pipeline.url}
    env.pop("PREFECT_HOME", None)

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "flows.cli", "licences", *args, "--tenant",
                               str(pipeline.tenant)], cwd=REPO, env=env, capture_output=True, text=True,
                              timeout=300, check=False)

    planned = run("plan", "--json", "--csv", str(tmp_path / "plan.csv"))
    assert planned.returncode == 0, planned.stderr[-2000:]
    plan = json.loads(planned.stdout)
    # The wave is frozen, not cut over: everyone in scope is held, by their wave's state.
    assert plan["people"] > 0 and plan["people_releasable"] == 0
    assert set(plan["people_held"]) <= {"WAVE_NOT_VERIFIED", "NOT_IN_WAVE", "EXEMPT_WEBINAR_HOST",
                                        "EXEMPT_LARGE_MEETINGS"}
    assert "@" not in json.dumps(plan["sample"])   # anchors, never e-mail addresses, outside the CSV file
    assert len((tmp_path / "plan.csv").read_text(encoding="utf-8").splitlines()) == 1 + plan["licences_releasable"] \
        + sum(plan["licences_held"].values())
    dry = run("release")
    assert dry.returncode == 0 and dry.stdout.startswith("DRY RUN"), dry.stdout[:500]
    assert "People held, by reason" in dry.stdout and pipeline.query("select count(*) from decommission") == [(0,)]
    refused = run("restore", "--email", "personne@nulle-part.example", "--apply")
    assert refused.returncode == 2 and refused.stderr.count("\n") == 1
    assert "no person known with that address" in refused.stderr
    assert "nulle-part" not in refused.stderr   # the log file gets the same line: no e-mail address in it
