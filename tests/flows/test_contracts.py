"""`bascule contracts sync | amend | list`: contract lines validated and stored, amendments with evidence recorded and
audited, the calendar with the seats the platforms report beside it (issue 12, point 4)."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select
from typer.testing import CliRunner

from db import models
from flows.cli import app
from flows.runtime import transaction
from tests.conftest import REPO

EXAMPLE = (REPO / "tenants" / "example.toml").read_text(encoding="utf-8")
TENANT_ID = "min-culture-exemple"


def _tenant(tmp_path: Path, text: str = EXAMPLE) -> Path:
    path = tmp_path / "tenant.toml"
    path.write_text(text.replace("../.bascule/sandbox/directory.ldif", "x.ldif")
                    .replace("../.bascule/sandbox/tls/cert.pem", "cert.pem"), encoding="utf-8")
    (tmp_path / "x.ldif").write_text("version: 1\n", encoding="utf-8")
    (tmp_path / "cert.pem").write_text("-----BEGIN CERTIFICATE-----\n", encoding="utf-8")
    return path


def _run(url: str, monkeypatch: pytest.MonkeyPatch, *args: str) -> Any:
    monkeypatch.setenv("BASCULE_DATABASE_URL", url)
    return CliRunner().invoke(app, ["contracts", *args], catch_exceptions=False)


def _refused(result: Any, *fragments: str) -> None:
    assert result.exit_code == 2, (result.stdout, result.stderr)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("bascule: error: "), result.stderr
    for fragment in fragments:
        assert fragment in lines[0], lines[0]


def _count(url: str, model: Any) -> int:
    with transaction(url) as session:
        return int(session.execute(select(func.count()).select_from(model)).scalar_one())


def _tenant_id(path: Path) -> str:
    from flows.tenant import TenantConfig

    return TenantConfig.load(path).id


def _observe(url: str, tenant_id: str, platform: str, sku_key: str, name: str, prepaid: int | None,
             consumed: int | None) -> None:
    """A licence SKU as the extract flow stores it."""
    now = datetime(2026, 12, 1, tzinfo=UTC)
    with transaction(url) as session:
        session.add(models.LicenceSku(tenant_id=tenant_id, platform=platform, sku_key=sku_key, name=name,
                                      includes_meetings=True, prepaid_units=prepaid, consumed_units=consumed,
                                      site_url=None, annual_unit_cost=None, content_hash="x", last_seen_pass="p1",
                                      created_at=now, updated_at=now, removed_at=None))


# --------------------------------------------------------------------------------------------- tenant-file lines

BAD_LINES = [
    ("commit_floor = 591", "commit_floor = 2000", "contracts[ZOOM-2025-001]", "commit_floor must not exceed"),
    ('unit_price = "12.50"', 'unit_price = "-12.50"', "contracts[ZOOM-2025-001].unit_price", "greater than 0"),
    ('unit_price = "12.50"', 'unit_price = "12.50"\ncurrency = "eur"', "contracts[ZOOM-2025-001].currency",
     "ISO 4217"),
    ("term_start = 2025-03-01", "term_start = 2027-04-01", "contracts[ZOOM-2025-001]", "term_start"),
    ("renewal_date = 2027-03-01", "renewal_date = 2025-01-01", "contracts[ZOOM-2025-001]", "renewal_date"),
    ("committed_qty = 1083", "committed_qty = -1", "contracts[ZOOM-2025-001].committed_qty", "greater than or equal"),
    ('contract_ref = "MS-EA-2024-17"', 'contract_ref = "ZOOM-2025-001"', "contracts", "appears twice"),
    ("notice_days = 90", "notice_days = -3", "contracts[ZOOM-2025-001].notice_days", "greater than or equal"),
    ("billing_period_months = 1\ncommitted_qty = 1083", "billing_period_months = 0\ncommitted_qty = 1083",
     "contracts[ZOOM-2025-001].billing_period_months", "greater than or equal"),
    ('sku_key = "zoom:type:2"\nunit_price', 'sku_key = "zoom:type:9"\nunit_price', "contracts[ZOOM-2025-001]",
     "sku_key 'zoom:type:9' is neither in [[cost_model.skus]]"),
    ("term_start = 2025-03-01\nterm_end = 2027-03-01\nrenewal_date = 2027-03-01\n", "",
     "contracts[ZOOM-2025-001]", "term_start: required"),
]


@pytest.mark.parametrize(("old", "new", "where", "why"), BAD_LINES,
                         ids=["floor-above-quantity", "negative-price", "currency", "term-order",
                              "renewal-before-start", "negative-quantity", "duplicate-ref", "negative-notice",
                              "billing-period", "unknown-sku", "no-term"])
def test_a_bad_contract_line_is_one_line_naming_the_contract_and_field_and_writes_nothing(
        tmp_path: Path, migrated_url: str, monkeypatch: pytest.MonkeyPatch,
        old: str, new: str, where: str, why: str) -> None:
    assert old in EXAMPLE
    result = _run(migrated_url, monkeypatch, "sync", "--tenant", str(_tenant(tmp_path, EXAMPLE.replace(old, new, 1))))
    _refused(result, where, why)
    assert _count(migrated_url, models.Contract) == 0
    assert _count(migrated_url, models.Tenant) == 0


def test_sync_stores_every_line_once_then_updates_only_what_changed(
        tmp_path: Path, migrated_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    tenant = _tenant(tmp_path)
    first = _run(migrated_url, monkeypatch, "sync", "--tenant", str(tenant))
    assert first.exit_code == 0, first.stderr
    assert "3 contracts: 3 created, 0 updated, 0 unchanged" in first.stdout
    # no Webex SKU is known before the first extraction: the Webex line cannot be checked, and says so
    assert "warning: contracts[WEBEX-SUB-CULTURE01]: sku_key 'Meeting - Webex Meeting Center' not checked" \
        in first.stderr
    again = _run(migrated_url, monkeypatch, "sync", "--tenant", str(tenant))
    assert "0 created, 0 updated, 3 unchanged" in again.stdout
    _tenant(tmp_path, EXAMPLE.replace('unit_price = "5.30"', 'unit_price = "5.10"'))
    changed = _run(migrated_url, monkeypatch, "sync", "--tenant", str(tenant))
    assert "0 created, 1 updated, 2 unchanged" in changed.stdout
    assert _count(migrated_url, models.Contract) == 3
    listing = json.loads(_run(migrated_url, monkeypatch, "list", "--tenant", str(tenant), "--json").stdout)
    prices = {row["contract_ref"]: row["unit_price"] for row in listing["contracts"]}
    assert prices == {"ZOOM-2025-001": "12.50", "MS-EA-2024-17": "5.10", "WEBEX-SUB-CULTURE01": "132.00"}


def test_an_unknown_webex_sku_is_refused_once_the_extraction_knows_that_platform(
        tmp_path: Path, migrated_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    tenant = _tenant(tmp_path)
    assert _run(migrated_url, monkeypatch, "sync", "--tenant", str(tenant)).exit_code == 0
    _observe(migrated_url, TENANT_ID, "webex", "Y2lzY29zcGFyazovL3VzL0xJQ0VOU0UvMTIz", "Meeting - Webex Enterprise",
             500, 420)
    _refused(_run(migrated_url, monkeypatch, "sync", "--tenant", str(tenant)),
             "contracts[WEBEX-SUB-CULTURE01]", "extracted webex licence SKUs")
    _observe(migrated_url, TENANT_ID, "webex", "Y2lzY29zcGFyazovL3VzL0xJQ0VOU0UvNDU2", "Meeting - Webex Meeting Center",
             500, 430)
    done = _run(migrated_url, monkeypatch, "sync", "--tenant", str(tenant))
    assert done.exit_code == 0 and "warning" not in done.stderr


# --------------------------------------------------------------------------------------------- amendments

@pytest.fixture
def synced(tmp_path: Path, migrated_url: str, monkeypatch: pytest.MonkeyPatch) -> tuple[str, Path]:
    tenant = _tenant(tmp_path)
    assert _tenant_id(tenant) == TENANT_ID
    assert _run(migrated_url, monkeypatch, "sync", "--tenant", str(tenant)).exit_code == 0
    return migrated_url, tenant


def test_an_amendment_is_recorded_audited_and_listed(synced: tuple[str, Path],
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    url, tenant = synced
    result = _run(url, monkeypatch, "amend", "--tenant", str(tenant), "--contract", "ZOOM-2025-001",
                  "--quantity", "700", "--effective", "2026-03-01", "--evidence", "order 2027-114", "--by", "alice")
    assert result.exit_code == 0, result.stderr
    assert "1083 -> 700 seats from 2026-03-01 (evidence: order 2027-114; by alice)" in result.stdout
    with transaction(url) as session:
        events = list(session.execute(select(models.AuditEvent).where(
            models.AuditEvent.action == "contract.amend")).scalars())
        assert [(event.actor, event.target_id, event.before, event.after) for event in events] == [
            ("alice", "ZOOM-2025-001", {"committed_qty": 1083, "effective": "2026-03-01"},
             {"committed_qty": 700, "effective": "2026-03-01", "evidence": "order 2027-114"})]
        stored = session.execute(select(models.Contract.committed_qty).where(
            models.Contract.contract_ref == "ZOOM-2025-001")).scalar_one()
        assert stored == 1083  # the contract line stays as signed; the amendment changes it from its date
    listing = json.loads(_run(url, monkeypatch, "list", "--tenant", str(tenant), "--json",
                              "--as-of", "2026-12-04").stdout)
    zoom = next(row for row in listing["contracts"] if row["contract_ref"] == "ZOOM-2025-001")
    assert zoom["committed_qty"] == 700 and zoom["contract_qty"] == 1083 and zoom["commit_floor"] == 591
    assert zoom["amendments"] == [{"effective": "2026-03-01", "quantity": 700, "evidence": "order 2027-114",
                                   "recorded_by": "alice"}]
    assert zoom["notice_deadline"] == "2026-12-01" and zoom["renewal_date"] == "2027-03-01"
    before = json.loads(_run(url, monkeypatch, "list", "--tenant", str(tenant), "--json",
                             "--as-of", "2026-02-28").stdout)
    assert next(row for row in before["contracts"]
                if row["contract_ref"] == "ZOOM-2025-001")["committed_qty"] == 1083
    text = _run(url, monkeypatch, "list", "--tenant", str(tenant), "--as-of", "2026-12-04").stdout
    assert "amended: 700 seats from 2026-03-01 (evidence: order 2027-114; by alice)" in text


AMEND_REFUSALS = [
    (["--contract", "ZOOM-2025-01", "--quantity", "700"], ["no contract 'ZOOM-2025-01'", "did you mean ZOOM-2025-001"]),
    (["--contract", "ZOOM-2025-001", "--quantity", "700", "--evidence", "   "], ["--evidence must name"]),
    (["--contract", "ZOOM-2025-001", "--quantity", "500"], ["below the commitment floor 591"]),
    (["--contract", "ZOOM-2025-001", "--quantity", "-1"], ["--quantity must be 0 or more"]),
    (["--contract", "ZOOM-2025-001", "--quantity", "700", "--effective", "2025-02-28"],
     ["before the term start 2025-03-01"]),
    (["--contract", "ZOOM-2025-001", "--quantity", "700", "--effective", "1 March"], ["not a date"]),
]


@pytest.mark.parametrize(("options", "fragments"), AMEND_REFUSALS,
                         ids=["unknown-contract", "blank-evidence", "below-floor", "negative", "before-term",
                              "bad-date"])
def test_a_bad_amendment_is_one_line_and_writes_nothing(synced: tuple[str, Path], monkeypatch: pytest.MonkeyPatch,
                                                        options: list[str], fragments: list[str]) -> None:
    url, tenant = synced
    defaults = {"--effective": "2026-03-01", "--evidence": "order 2027-114"}
    args = list(options)
    for option, value in defaults.items():
        if option not in args:
            args += [option, value]
    _refused(_run(url, monkeypatch, "amend", "--tenant", str(tenant), *args), *fragments)
    assert _count(url, models.ContractAmendment) == 0
    assert _count(url, models.AuditEvent) == 0


def test_an_amendment_without_evidence_is_refused_by_the_command_line(synced: tuple[str, Path],
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    url, tenant = synced
    result = _run(url, monkeypatch, "amend", "--tenant", str(tenant), "--contract", "ZOOM-2025-001",
                  "--quantity", "700", "--effective", "2026-03-01")
    assert result.exit_code == 2 and "--evidence" in result.stderr
    assert _count(url, models.ContractAmendment) == 0


# --------------------------------------------------------------------------------------------- observed seats

def test_observed_seats_that_disagree_with_the_contract_are_reported_not_corrected(
        synced: tuple[str, Path], monkeypatch: pytest.MonkeyPatch) -> None:
    url, tenant = synced
    _observe(url, TENANT_ID, "teams", "7e31c0d9-9551-471d-836f-32ee72be4a01", "MCOEV", 120, 96)  # 20 seats outside
    _observe(url, TENANT_ID, "webex", "Y2lzY29zcGFyazovL3VzL0xJQ0VOU0UvNDU2", "Meeting - Webex Meeting Center",
             500, 430)  # agrees
    listing = json.loads(_run(url, monkeypatch, "list", "--tenant", str(tenant), "--json",
                              "--as-of", "2026-11-22").stdout)
    rows = {row["contract_ref"]: row for row in listing["contracts"]}
    assert listing["mismatches"] == ["MS-EA-2024-17"]
    assert rows["MS-EA-2024-17"]["mismatch"] == {"observed": 120, "basis": "paid seats", "committed": 100,
                                                 "difference": 20}
    assert rows["WEBEX-SUB-CULTURE01"]["observed"]["seats"] == 500
    assert rows["WEBEX-SUB-CULTURE01"]["mismatch"] is None
    assert rows["ZOOM-2025-001"]["observed"] is None  # nothing extracted for Zoom: nothing to compare
    assert rows["MS-EA-2024-17"]["nce_window_open"] is True  # renewed 2026-11-20: the 7-day window is open
    assert rows["MS-EA-2024-17"]["nce_window_closes"] == "2026-11-27"
    text = _run(url, monkeypatch, "list", "--tenant", str(tenant), "--as-of", "2026-11-22").stdout
    assert "MISMATCH: the platform reports 120 paid seats, the contract commits 100 (+20)" in text
    assert "NCE cancellation window OPEN until 2026-11-27" in text
    with transaction(url) as session:
        assert session.execute(select(models.Contract.committed_qty).where(
            models.Contract.contract_ref == "MS-EA-2024-17")).scalar_one() == 100


def test_zoom_licensed_users_are_compared_when_the_plan_seats_are_not_readable(
        synced: tuple[str, Path], monkeypatch: pytest.MonkeyPatch) -> None:
    url, tenant = synced
    _observe(url, TENANT_ID, "zoom", "zoom:type:2", "Licensed", None, 1100)
    listing = json.loads(_run(url, monkeypatch, "list", "--tenant", str(tenant), "--json",
                              "--as-of", "2026-12-04").stdout)
    zoom = next(row for row in listing["contracts"] if row["contract_ref"] == "ZOOM-2025-001")
    assert zoom["mismatch"] == {"observed": 1100, "basis": "licensed users", "committed": 1083, "difference": 17}


def test_list_without_contracts_says_how_to_add_them(tmp_path: Path, migrated_url: str,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    result = _run(migrated_url, monkeypatch, "list", "--tenant", str(_tenant(tmp_path)))
    assert result.exit_code == 0 and "no contract recorded (run bascule contracts sync" in result.stdout
