"""Server-rendered pages: the Jinja2 environment (autoescaped), the context every page shares (the agent, the
theme, the DSFR assets with their SRI hashes, the CSRF token, the areas the agent may open) and `render`."""

from __future__ import annotations

from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

from fastapi import Request
from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape
from starlette.responses import HTMLResponse, Response

from web.assets import CHART_DIR, DSFR_DIR, load_manifest

__all__ = ["build_templates", "euros", "render"]

TEMPLATES = Path(__file__).parent / "templates"


def euros(value: Any) -> str:
    """An amount as French readers write it: `57 093,60 €` (a non-breaking space between thousands)."""
    try:
        amount = Decimal(str(value))
    except (InvalidOperation, ValueError):
        return str(value)
    text = f"{amount:,.2f}".replace(",", "\u202f").replace(".", ",")
    return f"{text}\u00a0€"


def number(value: Any) -> str:
    try:
        return f"{int(value):,}".replace(",", "\u202f")
    except (TypeError, ValueError):
        return str(value)


def percent(value: Any) -> str:
    if value in (None, ""):
        return "—"
    return f"{Decimal(str(value)) * 100:.1f}\u00a0%".replace(".", ",")


STATUS_WORDS = {"booked": "comptabilisé", "estimated": "estimé"}


def status(value: Any) -> str:
    """A figure's status as finance reads it (savings.md: booked or estimated); anything else as stored."""
    return STATUS_WORDS.get(str(value), str(value or ""))


def build_templates() -> Environment:
    """The environment of the package's templates; undefined names fail loudly."""
    environment = Environment(loader=FileSystemLoader(TEMPLATES), autoescape=select_autoescape(["html"]),
                              undefined=StrictUndefined, trim_blocks=True, lstrip_blocks=True)
    manifest = load_manifest()
    environment.globals.update(dsfr=DSFR_DIR, chart_dir=CHART_DIR, sri=manifest.integrity)
    environment.filters.update(euros=euros, number=number, percent=percent, status=status)
    return environment


def render(request: Request, template: str, context: dict[str, Any] | None = None, *,
           status_code: int = 200) -> Response:
    """The page `template` with the shared context (the agent, the theme, the CSRF token, the areas)."""
    from web.auth import AREAS, csrf_token, current_agent, visible_areas

    state = request.app.state
    agent = getattr(request.state, "agent", None) or current_agent(request)
    page = {"request": request, "settings": state.settings, "agent": agent, "csrf_token": csrf_token(request),
            "areas": visible_areas(request, agent) if agent else [], "all_areas": AREAS,
            "path": request.url.path, **(context or {})}
    html = state.templates.get_template(template).render(page)
    return HTMLResponse(html, status_code=status_code)
