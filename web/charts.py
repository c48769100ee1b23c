"""Charts of the dashboard: one spec, drawn by dsfr-chart's custom elements in the DSFR theme (JSON in string
attributes, contracts/dsfr.md §6) or as a static SVG in the neutral theme. The chart is only an enhancement: each
is followed by the table of its data, which is also the CSV export."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal
from html import escape
from typing import Literal

from markupsafe import Markup

__all__ = ["Chart"]

PALETTE = ("#000091", "#e1000f", "#18753c", "#b34000", "#695240", "#6e445a")


@dataclass(frozen=True)
class Chart:
    """A bar or line chart: `labels` on the x axis, one series of numbers per name."""

    id: str
    kind: Literal["bar", "line"]
    caption: str
    labels: Sequence[str]
    names: Sequence[str]
    series: Sequence[Sequence[float]]
    unit: str = "€"

    @staticmethod
    def of(id: str, kind: Literal["bar", "line"], caption: str, rows: Sequence[dict[str, object]], label: str,
           columns: Sequence[tuple[str, str]], unit: str = "€") -> Chart:
        """A chart of `rows`: x from the `label` column, one series per (column, name)."""
        labels = [str(row[label])[:40] for row in rows]
        series = [[float(Decimal(str(row.get(column) or 0))) for row in rows] for column, _ in columns]
        return Chart(id, kind, caption, labels, [name for _, name in columns], series, unit)

    @property
    def x_json(self) -> str:
        return json.dumps([list(self.labels) for _ in self.series], ensure_ascii=False)

    @property
    def y_json(self) -> str:
        return json.dumps([list(values) for values in self.series])

    @property
    def names_json(self) -> str:
        return json.dumps(list(self.names), ensure_ascii=False)

    def svg(self, width: int = 640, height: int = 240) -> Markup:
        """A static drawing (neutral theme): grouped bars or polylines, a legend; hidden from assistive
        technologies (the table that follows carries the data)."""
        values = [value for series in self.series for value in series] or [0.0]
        top = max(max(values), 0.0) or 1.0
        left, bottom, plot_w, plot_h = 8, 28, width - 16, height - 44
        count = max(len(self.labels), 1)
        slot = plot_w / count
        parts = [f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {height}" class="chart-svg" '
                 f'aria-hidden="true" focusable="false">',
                 f'<line x1="{left}" y1="{bottom + plot_h}" x2="{left + plot_w}" y2="{bottom + plot_h}" '
                 f'stroke="#666"/>']
        for index, (name, series) in enumerate(zip(self.names, self.series, strict=True)):
            colour = PALETTE[index % len(PALETTE)]
            parts.append(f'<rect x="{left + index * 150}" y="4" width="10" height="10" fill="{colour}"/>'
                         f'<text x="{left + index * 150 + 14}" y="13" font-size="11">{escape(name[:22])}</text>')
            if self.kind == "bar":
                bar = slot * 0.8 / max(len(self.series), 1)
                for position, value in enumerate(series):
                    h = plot_h * max(value, 0.0) / top
                    x = left + position * slot + slot * 0.1 + index * bar
                    parts.append(f'<rect x="{x:.1f}" y="{bottom + plot_h - h:.1f}" width="{bar:.1f}" '
                                 f'height="{h:.1f}" fill="{colour}"/>')
            else:
                points = " ".join(f"{left + (position + 0.5) * slot:.1f},"
                                  f"{bottom + plot_h - plot_h * max(v, 0) / top:.1f}"
                                  for position, v in enumerate(series))
                parts.append(f'<polyline fill="none" stroke="{colour}" stroke-width="2" points="{points}"/>')
        parts.append("</svg>")
        return Markup("".join(parts))  # noqa: S704 — built from numbers and escaped names only
