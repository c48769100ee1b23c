"""What the finance pages and /api/savings show, read from the stored month (db.savings): the summary document the
report wrote (headline, calendar, utilisation, funnel, forecast), the snapshot rows, the breakdowns, the stored
months, and the contracts' audit trail. Nothing here recomputes a figure: sums of stored rows are only ever
compared, never shown in place of the stored headline."""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy.orm import Session

from db.contracts import ContractRepository
from db.savings import SavingsRepository

__all__ = ["DIMENSIONS", "TABLES", "Dashboard", "csv_text", "parse_month", "read_dashboard"]

DIMENSIONS = ("direction", "tool", "sku", "contract", "wave")
DIMENSION_LABELS = {"direction": "Direction", "tool": "Outil", "sku": "Licence (SKU)", "contract": "Contrat",
                    "wave": "Vague"}
AMOUNTS = ("potential_annual", "stranded", "realised_run_rate", "gov_expected")


@dataclass
class Dashboard:
    """One tenant's stored month."""

    tenant: str
    month: date
    months: list[date]
    currency: str
    computed_at: datetime
    headline: dict[str, Any]
    calendar: list[dict[str, Any]]
    forecast: list[dict[str, Any]]
    utilisation: list[dict[str, Any]]
    funnel: list[dict[str, Any]]
    rows: list[dict[str, Any]]
    breakdowns: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    history: list[dict[str, Any]] = field(default_factory=list)
    evidence: list[dict[str, Any]] = field(default_factory=list)

    def table(self, name: str) -> list[dict[str, Any]]:
        """A table by its export name (TABLES)."""
        if name.startswith("by-"):
            return self.breakdowns.get(name[3:], [])
        return {"snapshots": self.rows, "calendar": self.calendar, "forecast": self.forecast,
                "utilisation": self.utilisation, "months": self.history, "funnel": self.funnel,
                "evidence": self.evidence}.get(name, [])

    def as_json(self) -> dict[str, Any]:
        return {"tenant": self.tenant, "month": self.month.isoformat(), "currency": self.currency,
                "computed_at": self.computed_at.isoformat(), "months": [m.isoformat() for m in self.months],
                "headline": self.headline, "rows": self.rows, "breakdowns": self.breakdowns,
                "calendar": self.calendar, "forecast": self.forecast, "utilisation": self.utilisation,
                "funnel": self.funnel, "history": self.history, "evidence": self.evidence}


TABLES = ("snapshots", *(f"by-{name}" for name in DIMENSIONS), "calendar", "forecast", "utilisation", "months",
          "funnel", "evidence")


def parse_month(text: str | None) -> date | None:
    """`YYYY-MM` (or an ISO date) → the month's first day; None when absent or unreadable."""
    if not text:
        return None
    try:
        year, month = (int(part) for part in text.strip()[:7].split("-"))
        return date(year, month, 1)
    except ValueError:
        return None


def _plain(value: Any) -> Any:
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, (date, datetime)):
        return value.isoformat()
    return value


def read_dashboard(session: Session, tenant_id: str, month: date | None = None) -> Dashboard | None:
    """The stored month (the latest by default); None when no month was computed (or not that one)."""
    store = SavingsRepository(session, tenant_id)
    months = store.summary_months()
    if not months:
        return None
    wanted = month or months[0]
    found = store.summary(wanted)
    if found is None:
        return None
    currency, document, computed_at = found
    rows = [{"platform": row["platform"], "sku": row["sku_key"], "contract": row["contract_ref"],
             **{name: _plain(row[name]) for name in ("assigned", "active", "never_active", "reclaimed", "committed",
                                                      "commit_floor", "annual_unit_cost", "potential_annual",
                                                      "stranded", "realised_run_rate", "realised_in_fy", "net",
                                                      "gov_expected", "status")},
             "evidence": list(row["evidence_refs"] or [])} for row in store.snapshots(wanted)]
    breakdowns: dict[str, list[dict[str, Any]]] = {name: [] for name in DIMENSIONS}
    for item in store.breakdowns(wanted):
        if item["dimension"] in breakdowns:
            breakdowns[item["dimension"]].append(
                {"key": item["key"], "assigned": item["assigned"], "reclaimed": item["reclaimed"],
                 **{name: _plain(item[name]) for name in AMOUNTS}, "status": item["status"]})
    history = [{"month": when.isoformat(), "potential_annual": str(potential), "stranded": str(stranded),
                "realised_run_rate": str(realised), "reclaimed": seats}
               for when, potential, stranded, realised, seats in store.month_totals()]
    evidence = [{"contract": record.contract_ref, "effective": record.effective.isoformat(),
                 "before": record.before, "after": record.after, "delta": record.delta, "evidence": record.evidence,
                 "recorded_by": record.recorded_by, "recorded_at": record.recorded_at.isoformat()}
                for record in ContractRepository(session, tenant_id).evidence()]
    return Dashboard(tenant=tenant_id, month=wanted, months=months, currency=currency, computed_at=computed_at,
                     headline=dict(document.get("headline", {})), calendar=list(document.get("calendar", [])),
                     forecast=list(document.get("forecast", [])), utilisation=list(document.get("utilisation", [])),
                     funnel=list(document.get("funnel", [])), rows=rows, breakdowns=breakdowns, history=history,
                     evidence=evidence)


def csv_text(rows: list[dict[str, Any]]) -> str:
    """A table as CSV (UTF-8 with a header row; lists joined by `;`), as `savings report --csv` writes it."""
    handle = io.StringIO()
    columns = list(rows[0]) if rows else ["(empty)"]
    writer = csv.DictWriter(handle, fieldnames=columns, lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({key: ";".join(map(str, value)) if isinstance(value, list) else value
                         for key, value in row.items()})
    return handle.getvalue()
