"""Charts as server-rendered SVG: no script, no library, readable without colour (each series
also has a pattern-free label and a table beside it)."""
from __future__ import annotations

from datetime import datetime, timedelta
from html import escape

#: one colour per source kind, distinguishable by people with the common colour-vision deficiencies
KIND_COLOURS = {"cms": "#0072b2", "wire": "#e69f00", "partner": "#009e73"}


def ingest_chart(rows: list[tuple[str, str, int]], now: datetime, hours: int = 48) -> dict[str, object]:
    """Entries ingested per hour over the last ``hours`` hours, stacked by source kind: the SVG,
    and the totals per kind (for the legend and the table)."""
    slots = [(now - timedelta(hours=hours - 1 - i)).strftime("%Y-%m-%d %H") for i in range(hours)]
    index = {h: i for i, h in enumerate(slots)}
    counts: dict[str, list[int]] = {k: [0] * hours for k in KIND_COLOURS}
    for hour, kind, n in rows:
        if hour in index:
            counts.setdefault(kind, [0] * hours)[index[hour]] += n
    totals = [sum(c[i] for c in counts.values()) for i in range(hours)]
    peak = max(totals) or 1
    width, height, left, bottom = 720, 200, 40, 24
    bar = (width - left) / hours
    parts = [f'<svg viewBox="0 0 {width} {height + bottom}" role="img" aria-labelledby="ingest-title" '
             f'xmlns="http://www.w3.org/2000/svg" class="chart">',
             '<title id="ingest-title">Entries ingested per hour over the last 48 hours, by source kind</title>',
             f'<line x1="{left}" y1="{height}" x2="{width}" y2="{height}" stroke="#555"/>',
             f'<text x="{left - 4}" y="12" text-anchor="end" font-size="11">{peak}</text>',
             f'<text x="{left - 4}" y="{height}" text-anchor="end" font-size="11">0</text>']
    for i in range(hours):
        y = float(height)
        for kind, series in counts.items():
            n = series[i]
            if not n:
                continue
            h = n / peak * (height - 10)
            y -= h
            colour = KIND_COLOURS.get(kind, "#777")
            parts.append(f'<rect x="{left + i * bar + 1:.1f}" y="{y:.1f}" width="{bar - 2:.1f}" height="{h:.1f}" '
                         f'fill="{colour}"><title>{escape(slots[i])}:00 UTC, {escape(kind)}: {n}</title></rect>')
        if i % 12 == 0:
            parts.append(f'<text x="{left + i * bar:.1f}" y="{height + 16}" font-size="11">'
                         f'{escape(slots[i][5:])}h</text>')
    parts.append("</svg>")
    return {"svg": "".join(parts), "totals": {k: sum(v) for k, v in counts.items()}, "colours": KIND_COLOURS,
            "peak": peak}
