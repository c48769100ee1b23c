"""/finance: the savings dashboard of savings.md §4 (role finance), read from the stored month — headline figures
(booked or estimated), breakdowns by direction, tool, SKU, contract, wave and month (each a chart with its table
and a CSV export), the contract calendar by next deadline, utilisation, the funnel per wave, the forecast to the end
of 2027 against the benchmark, and the audit trail every realised figure links to."""

from __future__ import annotations

import itertools
from typing import Any

from fastapi import APIRouter, HTTPException, Request
from starlette.responses import Response

from web.auth import FinanceCaller
from web.charts import Chart
from web.pages import render
from web.savings_view import DIMENSION_LABELS, DIMENSIONS, TABLES, Dashboard, csv_text, parse_month, read_dashboard

__all__ = ["router"]

FUNNEL = (("in_scope", "Dans le périmètre"), ("seen_in_visio", "Vus dans Visio"),
          ("released_people", "Licence libérée"), ("contract_reduced_seats", "Contrat réduit (sièges)"))


def _charts(dash: Dashboard) -> dict[str, Chart]:
    charts = {name: Chart.of(f"chart-{name}", "bar", f"Économies par {DIMENSION_LABELS[name].lower()}",
                             dash.breakdowns[name], "key",
                             [("potential_annual", "Potentiel annuel"), ("realised_run_rate", "Réalisé annuel"),
                              ("stranded", "Coût échoué")]) for name in DIMENSIONS}
    charts["months"] = Chart.of("chart-months", "line", "Évolution mois par mois", dash.history, "month",
                                [("potential_annual", "Potentiel annuel"), ("realised_run_rate", "Réalisé annuel")])
    benchmark = dash.headline.get("benchmark_annual", "0")
    forecast = [{**item, "benchmark": benchmark} for item in dash.forecast]
    charts["forecast"] = Chart.of("chart-forecast", "line", "Prévision jusqu'à fin 2027 et référence de l'État",
                                  forecast, "month", [("run_rate", "Économie annuelle prévue"),
                                                      ("net_run_rate", "Économie nette"),
                                                      ("benchmark", "Référence 10 € par agent et par an")])
    charts["funnel"] = Chart.of("chart-funnel", "bar", "Entonnoir par vague", dash.funnel, "wave",
                                list(FUNNEL), unit="agents")
    return charts


def _stalled(stage: dict[str, Any]) -> list[str]:
    """The funnel stages that stopped: nothing there although the stage before has people, in a wave cut over."""
    if stage.get("state") not in ("cut_over", "verified"):
        return []
    keys = [key for key, _ in FUNNEL]
    return [key for before, key in itertools.pairwise(keys)
            if int(stage.get(before) or 0) > 0 and int(stage.get(key) or 0) == 0]


def router() -> APIRouter:
    routes = APIRouter(include_in_schema=False)

    @routes.get("")
    def dashboard(request: Request, caller: FinanceCaller, month: str | None = None) -> Response:
        with request.app.state.sessions() as session:
            dash = read_dashboard(session, caller.tenant_id, parse_month(month))
        if dash is None:
            return render(request, "finance_empty.html", {"title": "Économies", "caller": caller,
                                                          "asked": month})
        return render(request, "finance.html", {
            "title": f"Économies {dash.month:%m/%Y}", "caller": caller, "dash": dash, "charts": _charts(dash),
            "dimensions": DIMENSIONS, "labels": DIMENSION_LABELS, "funnel_stages": FUNNEL,
            "stalled": {stage["wave"]: _stalled(stage) for stage in dash.funnel},
            "query": f"tenant={caller.tenant_id}&month={dash.month:%Y-%m}"})

    @routes.get("/export/{table}.csv")
    def export(request: Request, table: str, caller: FinanceCaller, month: str | None = None
               ) -> Response:
        if table not in TABLES:
            raise HTTPException(status_code=404, detail=f"no table {table[:40]!r}: one of {', '.join(TABLES)}")
        with request.app.state.sessions() as session:
            dash = read_dashboard(session, caller.tenant_id, parse_month(month))
        if dash is None:
            raise HTTPException(status_code=404, detail="no savings computed for this month yet "
                                                        "(bascule savings report)")
        name = f"savings-{dash.tenant}-{dash.month:%Y-%m}-{table}.csv"
        return Response(csv_text(dash.table(table)), media_type="text/csv; charset=utf-8",
                        headers={"Content-Disposition": f'attachment; filename="{name}"'})

    return routes
