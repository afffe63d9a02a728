"""The dashboard's pictures as inline SVG, drawn on the server (no script, no library):
a timeline of a run's steps and attempts (`gantt`), bars per step (`bars`), cumulative
cost over time per metadata value (`cost_lines`), and the dependency graph (`graph`).

Every text that comes from a run (names, labels, values) goes through `html.escape`;
the functions return SVG markup ready to be put into a page as is.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta, timezone
from html import escape
from urllib.parse import quote

from ._store import StepView

__all__ = ["bars", "cost_lines", "gantt", "graph"]

_ROW = 16
_LEFT = 170
_WIDTH = 900
_PALETTE = ("#2563eb", "#16a34a", "#dc2626", "#9333ea", "#ea580c", "#0891b2", "#ca8a04", "#db2777")


def _svg(width: int, height: int, body: list[str], label: str) -> str:
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" class="chart" role="img" '
        f'aria-label="{escape(label)}" viewBox="0 0 {width} {height}" '
        f'width="{width}" height="{height}">' + "".join(body) + "</svg>"
    )


def _seconds(value: float) -> str:
    if value < 60:
        return f"{value:.1f}s"
    if value < 3600:
        return f"{value / 60:.1f}m"
    return f"{value / 3600:.1f}h"


def _short(text: str, limit: int = 24) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


_DETAILED_ROWS = 200
"""Up to this many steps the timeline has a label per row and a tooltip per bar; a
longer run gets thin rows, every tenth labelled, and tooltips only on failures and
waits, so a 1,000-step page stays light for the browser."""


def gantt(steps: Sequence[StepView], now: datetime | None = None) -> str:
    """One row per step: its attempts as bars (green success, red failure, blue
    running), the wait before each retry as a hatched bar, on one time axis."""
    now = now or datetime.now(timezone.utc)
    spans: list[tuple[datetime, datetime]] = []
    for step in steps:
        if step.started_at is not None:
            spans.append((step.started_at, step.ended_at or now))
        for a in step.attempt_list:
            spans.append((a.started_at, a.ended_at))
    if not spans:
        return ""
    t0 = min(s for s, _ in spans)
    t1 = max(e for _, e in spans)
    total = max((t1 - t0).total_seconds(), 0.001)
    plot = _WIDTH - _LEFT - 10
    detailed = len(steps) <= _DETAILED_ROWS
    row = _ROW if detailed else 6
    height = row * len(steps) + 24

    def x(t: datetime) -> float:
        return _LEFT + plot * max(0.0, (t - t0).total_seconds()) / total

    body = [
        '<defs><pattern id="wait" width="4" height="4" patternUnits="userSpaceOnUse" '
        'patternTransform="rotate(45)"><rect width="2" height="4" fill="#cbd5e1"/></pattern>'
        "</defs>"
    ]
    for i, step in enumerate(steps):
        y = 4 + i * row
        if detailed or i % 10 == 0:
            body.append(
                f'<text x="{_LEFT - 6}" y="{y + min(11, row + 4)}" text-anchor="end" '
                f'class="lbl">{step.n}. {escape(_short(step.label))}</text>'
            )
        bars: list[tuple[datetime, datetime, str, str]] = []
        for a in step.attempt_list:
            if a.waited_s > 0:
                bars.append(
                    (
                        a.started_at - timedelta(seconds=a.waited_s),
                        a.started_at,
                        "wait",
                        f"waited {_seconds(a.waited_s)} before attempt {a.number}",
                    )
                )
            kind = "ok" if a.success else "fail"
            tip = f"attempt {a.number}: {'success' if a.success else a.error_type or 'failed'}"
            bars.append((a.started_at, a.ended_at, kind, f"{tip} · {_seconds(a.duration_s)}"))
        if not step.attempt_list and step.started_at is not None:
            kind = {"success": "ok", "failed": "fail", "running": "run"}.get(step.status, "other")
            bars.append((step.started_at, step.ended_at or now, kind, step.status))
        for start, end, kind, tip in bars:
            left, right = x(start), x(end)
            title = (
                f"<title>{step.n}. {escape(step.label)}: {escape(tip)}</title>"
                if detailed or kind != "ok"
                else ""
            )
            body.append(
                f'<rect class="bar {kind}" x="{left:.1f}" y="{y + 1 if row < 8 else y + 2}" '
                f'width="{max(right - left, 1.5):.1f}" height="{row - 2 if row < 8 else row - 4}">'
                f"{title}</rect>"
            )
    axis_y = 4 + len(steps) * row + 14
    body.append(f'<text x="{_LEFT}" y="{axis_y}" class="axis">0s</text>')
    body.append(
        f'<text x="{_WIDTH - 10}" y="{axis_y}" text-anchor="end" class="axis">'
        f"{_seconds(total)}</text>"
    )
    return _svg(_WIDTH, height, body, "timeline of the steps")


def bars(values: Sequence[tuple[str, float | None]], unit: str, title: str) -> str:
    """Vertical bars, one per (label, value); a missing value draws no bar (and no
    value at all, no chart)."""
    if not any(v for _, v in values):
        return ""
    top = max((v for _, v in values if v), default=0.0) or 1.0
    height, plot_h, left = 150, 110, 50
    width = max(300, min(_WIDTH, left + 10 + len(values) * 14))
    step_w = (width - left - 10) / len(values)
    fmt = (lambda v: f"${v:.4f}") if unit == "usd" else _seconds
    body = [
        f'<text x="{left - 4}" y="14" text-anchor="end" class="axis">{escape(fmt(top))}</text>',
        f'<text x="{left - 4}" y="{plot_h + 10}" text-anchor="end" class="axis">0</text>',
        f'<line x1="{left}" y1="{plot_h + 10}" x2="{width - 10}" y2="{plot_h + 10}" class="rule"/>',
    ]
    for i, (label, value) in enumerate(values):
        if not value:
            continue
        h = plot_h * value / top
        body.append(
            f'<rect class="col" x="{left + i * step_w + 1:.1f}" y="{plot_h + 10 - h:.1f}" '
            f'width="{max(step_w - 2, 1):.1f}" height="{h:.1f}">'
            f"<title>{escape(label)}: {escape(fmt(value))}</title></rect>"
        )
    body.append(f'<text x="{left}" y="{height - 8}" class="axis">{escape(title)}</text>')
    return _svg(width, height, body, title)


def cost_lines(series: Mapping[str, Sequence[tuple[datetime, float]]], title: str) -> str:
    """Cumulative cost over time, one line per key (a metadata value), with a legend."""
    points = [p for s in series.values() for p in s]
    if not points:
        return ""
    t0 = min(t for t, _ in points)
    t1 = max(t for t, _ in points)
    span = max((t1 - t0).total_seconds(), 0.001)
    totals = {k: sum(c for _, c in s) for k, s in series.items()}
    top = max(totals.values()) or 1.0
    width, height, left, plot_h = _WIDTH, 200, 60, 150
    plot_w = width - left - 200
    body = [
        f'<text x="{left - 4}" y="14" text-anchor="end" class="axis">${top:.4f}</text>',
        f'<line x1="{left}" y1="{plot_h + 10}" x2="{left + plot_w}" y2="{plot_h + 10}" '
        'class="rule"/>',
        f'<text x="{left}" y="{height - 10}" class="axis">{escape(t0.strftime("%Y-%m-%d %H:%M"))}'
        f" → {escape(t1.strftime('%Y-%m-%d %H:%M'))} UTC · {escape(title)}</text>",
    ]
    for i, (key, pts) in enumerate(sorted(series.items())):
        color = _PALETTE[i % len(_PALETTE)]
        total, coords = 0.0, []
        for t, cost in sorted(pts):
            total += cost
            px = left + plot_w * (t - t0).total_seconds() / span
            coords.append(f"{px:.1f},{plot_h + 10 - plot_h * total / top:.1f}")
        if len(coords) == 1:
            coords.append(coords[0])
        body.extend(
            f'<circle cx="{c.split(",")[0]}" cy="{c.split(",")[1]}" r="2" fill="{color}"/>'
            for c in coords[-1:]
        )
        body.append(
            f'<polyline fill="none" stroke="{color}" stroke-width="2" points="{" ".join(coords)}">'
            f"<title>{escape(key)}: ${total:.4f}</title></polyline>"
        )
        body.append(
            f'<rect x="{left + plot_w + 16}" y="{12 + i * 16}" width="10" height="10" '
            f'fill="{color}"/><text x="{left + plot_w + 30}" y="{21 + i * 16}" class="lbl">'
            f"{escape(_short(key, 20))} ${total:.4f}</text>"
        )
    return _svg(width, max(height, 24 + len(series) * 16), body, title)


def graph(steps: Sequence[StepView], run_id: str) -> str:
    """The dependency graph: a column per depth (a step right of all it depends on),
    boxes coloured by status, an arrow per dependency. Empty when no step has any."""
    if not any(s.depends_on for s in steps):
        return ""
    by_name = {s.name: s for s in steps if s.name}
    depth: dict[int, int] = {}

    def level(step: StepView, seen: frozenset[int] = frozenset()) -> int:
        if step.n in depth:
            return depth[step.n]
        parents = [by_name[d] for d in step.depends_on if d in by_name and by_name[d].n not in seen]
        value = 1 + max((level(p, seen | {step.n}) for p in parents), default=-1)
        depth[step.n] = value
        return value

    for s in steps:
        level(s)
    columns: dict[int, list[StepView]] = {}
    for s in steps:
        columns.setdefault(depth[s.n], []).append(s)
    box_w, box_h, gap_x, gap_y = 150, 30, 60, 14
    pos: dict[int, tuple[float, float]] = {}
    for col, members in columns.items():
        for row, s in enumerate(members):
            pos[s.n] = (10 + col * (box_w + gap_x), 10 + row * (box_h + gap_y))
    width = int(20 + (max(columns) + 1) * (box_w + gap_x))
    height = int(20 + max(len(m) for m in columns.values()) * (box_h + gap_y))
    body = [
        '<defs><marker id="arrow" viewBox="0 0 10 10" refX="10" refY="5" markerWidth="6" '
        'markerHeight="6" orient="auto"><path d="M0,0L10,5L0,10z" fill="#64748b"/></marker>'
        "</defs>"
    ]
    for s in steps:
        x2, y2 = pos[s.n]
        for d in s.depends_on:
            parent = by_name.get(d)
            if parent is None:
                continue
            x1, y1 = pos[parent.n]
            body.append(
                f'<line class="edge" x1="{x1 + box_w:.0f}" y1="{y1 + box_h / 2:.0f}" '
                f'x2="{x2:.0f}" y2="{y2 + box_h / 2:.0f}" marker-end="url(#arrow)"/>'
            )
    for s in steps:
        x, y = pos[s.n]
        body.append(
            f'<a href="/runs/{escape(quote(run_id, safe=""))}/steps/{s.n}">'
            f'<rect class="node {escape(s.status)}" '
            f'x="{x:.0f}" y="{y:.0f}" width="{box_w}" height="{box_h}" rx="5"/>'
            f'<text x="{x + 8:.0f}" y="{y + 19:.0f}" class="lbl">{s.n}. '
            f"{escape(_short(s.label, 18))}</text><title>{escape(s.label)}: "
            f"{escape(s.status)}</title></a>"
        )
    return _svg(width, height, body, "dependency graph of the steps")
