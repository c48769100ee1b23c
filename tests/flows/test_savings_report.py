"""The savings ledger through the state database (issue 12, point 5): the worked example of savings.md §2 end to
end, snapshots recomputed idempotently, each person who left counted once, a released-then-restored seat leaving
the figures as they were, SKUs without a contract estimated at the benchmark, breakdowns and CSV files that add up to
the headline. On SQLite and PostgreSQL."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, insert, select, update

from db import models
from db.models import table_of
from flows.runtime import transaction
from tests.conftest import REPO

TENANT = "min-savings-test"
AT = datetime(2026, 11, 1, 9, 0, tzinfo=UTC)
NOVEMBER, MARCH = date(2026, 11, 1), date(2027, 3, 1)


def _tenant(tmp_path: Path, extra: str = "") -> Path:
    (tmp_path / "empty.ldif").write_text("version: 1\n", encoding="utf-8")
    path = tmp_path / "tenant.toml"
    path.write_text(f"""id = "{TENANT}"
name = "Ministère de l'exemple chiffré"
siret = "11004601800013"
domains = ["chiffre.gouv.fr"]

[directory]
kind = "ldif"
flavour = "ad"
ldif_path = "empty.ldif"

[[contracts]]
contract_ref = "ZOOM-BIZ"
vendor = "Zoom Video Communications"
platform = "zoom"
sku_key = "zoom:type:2"
unit_price = "150.00"
billing_period_months = 12
committed_qty = 1000
commit_floor = 600
term_start = 2026-03-01
term_end = 2027-03-01
renewal_date = 2027-03-01
notice_days = 90
{extra}""", encoding="utf-8")
    return path


def _state(url: str, *, zoom_released: int = 900, zoom_assigned: int = 100, webex: int = 0) -> None:
    """People with a Zoom Business seat each (the first `zoom_released` released by bascule), the first `webex` of
    them also holding a Webex meeting licence, released too. The wave cut them over."""
    now = AT
    synced = {"content_hash": "x", "last_seen_pass": "p", "created_at": now, "updated_at": now, "removed_at": None}
    people = zoom_released + zoom_assigned
    anchors = [f"person-{index:05d}" for index in range(people)]
    with transaction(url) as session:
        def put(model: Any, rows: list[dict[str, Any]]) -> None:
            if rows:
                session.execute(insert(table_of(model)), rows)

        put(models.Tenant, [{"id": TENANT, "name": "Test", "siret": None, "config_path": None, "config_hash": None,
                             "ready": True, "registered_at": now, "updated_at": now, "readiness": None}])
        put(models.Person, [{"tenant_id": TENANT, "anchor": anchor, "primary_email": f"{anchor}@chiffre.gouv.fr",
                             "email_normalised": f"{anchor}@chiffre.gouv.fr", "display_name": None,
                             "department": f"DIR{index % 3}/BUREAU", "population": None, "disabled": False,
                             "proconnect_email": None, "expected_idp": None, "siret": None,
                             "visio_provisioning": None, "login_hint_url": None, "excluded_reason": None,
                             "content_hash": "x", "created_at": now, "updated_at": now, "removed_at": None}
                            for index, anchor in enumerate(anchors)])
        put(models.LicenceSku, [{"tenant_id": TENANT, "platform": platform, "sku_key": key, "name": name,
                                 "includes_meetings": True, "prepaid_units": None, "consumed_units": None,
                                 "site_url": None, "annual_unit_cost": None, **synced}
                                for platform, key, name in (("zoom", "zoom:type:2", "Licensed"),
                                                            ("webex", "webex-meetings-id", "Meeting - Webex"))])
        accounts = [("zoom", f"z{index}", anchor, index < zoom_released) for index, anchor in enumerate(anchors)]
        accounts += [("webex", f"w{index}", anchors[index], True) for index in range(webex)]
        put(models.SourceAccount, [{"tenant_id": TENANT, "platform": platform, "external_id": account,
                                    "email": f"{anchor}@chiffre.gouv.fr", "email_normalised": None,
                                    "status": "active", "licensed": True, "licences": [], "display_name": None,
                                    "given_name": None, "surname": None, "aliases": [], "employee_id": None,
                                    "immutable_id": None, "role": None, "account_type": None, "department": None,
                                    "last_activity": now, **synced} for platform, account, anchor, _ in accounts])
        put(models.IdentityMatch, [{"tenant_id": TENANT, "platform": platform, "account_external_id": account,
                                    "person_anchor": anchor, "method": "email", "last_seen_pass": "p",
                                    "updated_at": now} for platform, account, anchor, _ in accounts])
        put(models.LicenceAssignment, [{"tenant_id": TENANT, "platform": platform, "account_external_id": account,
                                        "sku_key": "zoom:type:2" if platform == "zoom" else "webex-meetings-id",
                                        "assigned_by_group": None, "state": "released" if released else "assigned",
                                        "first_seen_at": now, "released_at": now if released else None}
                                       for platform, account, _, released in accounts])
        put(models.Wave, [{"tenant_id": TENANT, "name": "vague-1", "state": "verified", "selection": {},
                           "created_at": now, "updated_at": now, "cut_over_at": now, "guard_until": None}])
        wave_id = session.execute(select(models.Wave.id)).scalar_one()
        put(models.WaveMember, [{"tenant_id": TENANT, "wave_id": wave_id, "person_anchor": anchor}
                                for anchor in anchors])


def _snapshots(url: str, tenant: Path, month: date) -> Any:
    from flows.savings import compute_snapshots
    from flows.tenant import TenantConfig

    return compute_snapshots(url, TenantConfig.load(tenant), month=month, now=AT)


def _sync(url: str, tenant: Path) -> None:
    from flows.contracts import sync_contracts
    from flows.tenant import TenantConfig

    sync_contracts(url, TenantConfig.load(tenant), tenant, now=AT)


def _stored(url: str) -> list[tuple[Any, ...]]:
    table = table_of(models.SavingsSnapshot)
    with transaction(url) as session:
        return [tuple(row) for row in session.execute(select(*[column for column in table.c if column.name != "id"])
                                                      .order_by(table.c.month, table.c.sku_key)).all()]


def test_the_worked_example_end_to_end(migrated_url: str, tmp_path: Path) -> None:
    """savings.md §2: €45,000 stranded on 2026-11-01, €60,000 a year realised from the renewal (not €135,000: the
    floor holds 600), €9,000 benchmark for the 900 users who left."""
    from flows.contracts import amend_contract

    tenant = _tenant(tmp_path)
    _state(migrated_url)
    _sync(migrated_url, tenant)
    november = _snapshots(migrated_url, tenant, NOVEMBER)
    head = november.headline
    assert (head["stranded"], head["benchmark_annual"], head["users_left"]) == ("45000.00", "9000.00", 900)
    assert head["reclaimed_seats"] == 900 and head["realised_run_rate"] == "0.00"
    (row,) = november.rows
    assert (row["assigned"], row["reclaimed"], row["committed"], row["commit_floor"]) == (100, 900, 1000, 600)

    # The renewal order: the quantity falls to the floor (100 still needed, 600 allowed).
    amend_contract(migrated_url, TENANT, "ZOOM-BIZ", quantity=600, effective=MARCH, evidence="order 2027-114",
                   recorded_by="finance", now=AT)
    march = _snapshots(migrated_url, tenant, MARCH)
    assert march.headline["realised_run_rate"] == "60000.00" and march.headline["realised_status"] == "booked"
    assert march.rows[0]["evidence"] == ["order 2027-114"]
    assert march.headline["benchmark_annual"] == "9000.00"       # beside, never added
    assert march.forecast[-1]["run_rate"] == "60000.00"
    # The 500 other reclaimed seats stay paid (committed 600, 100 held) until the floor can be renegotiated.
    assert (march.rows[0]["committed"], march.rows[0]["assigned"], march.rows[0]["reclaimed"]) == (600, 100, 900)
    # The funnel: of the 900 seats the wave released, the 400 the order removed are the contract reduced.
    assert [(stage["released_seats"], stage["contract_reduced_seats"]) for stage in march.funnel] == [(900, 400)]


def test_recomputing_gives_the_same_rows_and_no_duplicates(migrated_url: str, tmp_path: Path) -> None:
    tenant = _tenant(tmp_path)
    _state(migrated_url)
    _sync(migrated_url, tenant)
    first = _snapshots(migrated_url, tenant, NOVEMBER)
    stored = _stored(migrated_url)
    second = _snapshots(migrated_url, tenant, NOVEMBER)
    assert _stored(migrated_url) == stored and len(stored) == 1
    assert first.headline == second.headline and first.breakdowns == second.breakdowns
    with transaction(migrated_url) as session:
        assert session.execute(select(func.count()).select_from(models.SavingsBreakdown)).scalar_one() == sum(
            len(rows) for rows in first.breakdowns.values())


def test_a_person_who_left_two_platforms_counts_once_and_a_sku_without_contract_is_estimated(
        migrated_url: str, tmp_path: Path) -> None:
    tenant = _tenant(tmp_path)
    _state(migrated_url, zoom_released=10, zoom_assigned=5, webex=4)
    _sync(migrated_url, tenant)
    report = _snapshots(migrated_url, tenant, NOVEMBER)
    assert report.headline["users_left"] == 10                    # 4 of them left Webex too: still 10 people
    webex = next(row for row in report.rows if row["platform"] == "webex")
    assert (webex["contract"], webex["status"], webex["annual_unit_cost"]) == ("-", "estimated", "10.00")
    assert webex["reclaimed"] == 4
    assert report.headline["realised_status"] == "estimated"      # a row rests on the benchmark


def test_a_released_then_restored_seat_leaves_potential_and_stranded_as_they_were(
        migrated_url: str, tmp_path: Path) -> None:
    tenant = _tenant(tmp_path)
    _state(migrated_url, zoom_released=0, zoom_assigned=50)
    _sync(migrated_url, tenant)
    before = _snapshots(migrated_url, tenant, NOVEMBER).headline
    held = table_of(models.LicenceAssignment)
    with transaction(migrated_url) as session:
        session.execute(update(held).where(held.c.account_external_id == "z7").values(state="released"))
    released = _snapshots(migrated_url, tenant, NOVEMBER).headline
    assert released["reclaimed_seats"] == 1 and released["stranded"] != before["stranded"]
    with transaction(migrated_url) as session:
        session.execute(update(held).where(held.c.account_external_id == "z7").values(state="assigned"))
    restored = _snapshots(migrated_url, tenant, NOVEMBER).headline
    assert (restored["potential_annual"], restored["stranded"]) == (before["potential_annual"], before["stranded"])


def test_every_breakdown_adds_up_to_the_headline(migrated_url: str, tmp_path: Path) -> None:
    tenant = _tenant(tmp_path)
    _state(migrated_url, zoom_released=37, zoom_assigned=63, webex=11)
    _sync(migrated_url, tenant)
    report = _snapshots(migrated_url, tenant, NOVEMBER)
    totals = {name: sum(Decimal(row[name]) for row in report.rows) for name in
              ("potential_annual", "stranded", "realised_run_rate", "gov_expected")}
    assert totals["stranded"] > 0 and totals["gov_expected"] > 0
    for dimension in ("direction", "wave", "tool", "sku", "contract"):
        rows = report.breakdowns[dimension]
        assert rows, dimension
        for name, total in totals.items():
            assert sum(Decimal(row[name]) for row in rows) == total, (dimension, name)
        assert sum(row["reclaimed"] for row in rows) == 37 + 11, dimension
    # Spare seats (committed, held by nobody) are a group of their own in potential.
    assert {row["key"] for row in report.breakdowns["direction"]} == {"DIR0", "DIR1", "DIR2", "(spare seats)"}
    assert {row["key"] for row in report.breakdowns["wave"]} == {"vague-1", "(spare seats)"}


@pytest.mark.slow
def test_the_command_prints_json_and_writes_csv_whose_totals_match(migrated_url: str, tmp_path: Path) -> None:
    tenant = _tenant(tmp_path)
    _state(migrated_url, zoom_released=900, zoom_assigned=100)
    _sync(migrated_url, tenant)
    env = {**os.environ, "BASCULE_DATA_DIR": str(tmp_path / ".bascule"), "BASCULE_DATABASE_URL": migrated_url}
    env.pop("PREFECT_HOME", None)
    done = subprocess.run([sys.executable, "-m", "flows.cli", "savings", "report", "--tenant", str(tenant),
                           "--month", "2026-11", "--json", "--csv", str(tmp_path / "out")], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    report = json.loads(done.stdout)
    assert report["headline"]["stranded"] == "45000.00" and report["month"] == "2026-11-01"
    with (tmp_path / "out" / f"savings-{TENANT}-2026-11-by-contract.csv").open(encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    assert sum(Decimal(row["stranded"]) for row in rows) == Decimal(report["headline"]["stranded"])
    assert sum(Decimal(row["potential_annual"]) for row in rows) == Decimal(report["headline"]["potential_annual"])
    files = sorted(path.name for path in (tmp_path / "out").iterdir())
    assert len(files) == 11 and all(name.endswith(".csv") for name in files)
    # The dashboard's source: the month's summary is stored as the report printed it, the funnel with it.
    from db.engine import make_engine, make_session_factory
    from db.savings import SavingsRepository

    engine = make_engine(migrated_url)
    with make_session_factory(engine)() as session:
        stored = SavingsRepository(session, TENANT).summary(date(2026, 11, 1))
    engine.dispose()
    assert stored is not None and stored[1]["headline"] == report["headline"]
    assert stored[1]["funnel"] == report["funnel"] and stored[1]["calendar"] == report["calendar"]
    # 1,000 people in the wave, 900 released (their seats too), none seen in Visio (no webhook in this state);
    # the contract is not amended yet: no seat reduced.
    assert report["funnel"] == [{"wave": "vague-1", "state": "verified", "in_scope": 1000, "seen_in_visio": 0,
                                 "released_people": 900, "released_seats": 900, "contract_reduced_seats": 0}]
    human = subprocess.run([sys.executable, "-m", "flows.cli", "savings", "report", "--tenant", str(tenant),
                            "--month", "2026-11"], cwd=REPO, env=env, capture_output=True, text=True, timeout=300,
                           check=False)
    assert human.returncode == 0 and "Stranded" in human.stdout and "€45 000.00" in human.stdout
    bad = subprocess.run([sys.executable, "-m", "flows.cli", "savings", "report", "--tenant", str(tenant),
                          "--month", "novembre"], cwd=REPO, env=env, capture_output=True, text=True, timeout=300,
                         check=False)
    assert bad.returncode == 2 and "not a month (YYYY-MM)" in bad.stderr and bad.stderr.count("\n") == 1
