"""Inline SVG figures for the run report: line charts, bar charts, the run's DAG.

Drawn here rather than with a plotting library or a JavaScript one, so that
the page is one file that opens from disk, offline, in any browser, and in
the Kubeflow UI's sandboxed HTML viewer, with nothing to fetch.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from html import escape

PALETTE = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b")


def _fmt(value: float) -> str:
    if value == 0:
        return "0"
    if 0.01 <= abs(value) < 10000:
        return f"{value:.3g}" if abs(value) >= 1 else f"{value:.3f}"
    return f"{value:.2e}"


def _range(values: Sequence[float]) -> tuple[float, float]:
    low, high = min(values), max(values)
    if math.isclose(low, high):
        pad = abs(low) * 0.05 or 1.0
        return low - pad, high + pad
    pad = (high - low) * 0.05
    return low - pad, high + pad


def _open(css_class: str, label: str, width: int, height: int) -> str:
    """An inline SVG's opening tag, sized in CSS pixels and labelled for screen readers."""
    return (
        f'<svg class="{css_class}" role="img" aria-label="{escape(label)}" width="{width}" '
        f'height="{height}" viewBox="0 0 {width} {height}" xmlns="http://www.w3.org/2000/svg">'
    )


def line_chart(
    title: str,
    series: Mapping[str, Sequence[tuple[float, float]]],
    width: int = 420,
    height: int = 220,
    x_label: str = "step",
) -> str:
    """One chart of several (x, y) series, with a legend and labelled axes."""
    # A non-finite value (a NaN loss) has no place on an axis: it is left out.
    series = {
        name: [(a, b) for a, b in values if math.isfinite(a) and math.isfinite(b)]
        for name, values in series.items()
    }
    points = [p for s in series.values() for p in s]
    if not points:
        return ""
    left, right, top, bottom = 56, 12, 40, 36
    xs, ys = [p[0] for p in points], [p[1] for p in points]
    x_low, x_high = _range(xs)
    y_low, y_high = _range(ys)

    def x(v: float) -> float:
        return left + (v - x_low) / (x_high - x_low) * (width - left - right)

    def y(v: float) -> float:
        return top + (y_high - v) / (y_high - y_low) * (height - top - bottom)

    parts = [
        _open("chart", title, width, height),
        f'<text x="{left}" y="16" class="title">{escape(title)}</text>',
        f'<line x1="{left}" y1="{height - bottom}" x2="{width - right}" y2="{height - bottom}" '
        'class="axis"/>',
        f'<line x1="{left}" y1="{top}" x2="{left}" y2="{height - bottom}" class="axis"/>',
    ]
    for v in (min(ys), (min(ys) + max(ys)) / 2, max(ys)):
        parts.append(f'<text x="{left - 4}" y="{y(v) + 4:.1f}" text-anchor="end">{_fmt(v)}</text>')
    for v in sorted({min(xs), max(xs)}):
        parts.append(
            f'<text x="{x(v):.1f}" y="{height - bottom + 14}" text-anchor="middle">{_fmt(v)}</text>'
        )
    parts.append(
        f'<text x="{(left + width - right) / 2:.0f}" y="{height - 4}" '
        f'text-anchor="middle">{escape(x_label)}</text>'
    )
    for i, (name, values) in enumerate(series.items()):
        color = PALETTE[i % len(PALETTE)]
        path = " ".join(f"{x(a):.1f},{y(b):.1f}" for a, b in values)
        parts.append(f'<polyline points="{path}" fill="none" stroke="{color}" stroke-width="2"/>')
        for a, b in values:
            parts.append(f'<circle cx="{x(a):.1f}" cy="{y(b):.1f}" r="2.5" fill="{color}"/>')
        legend_x = left + 90 * i
        parts.append(
            f'<rect x="{legend_x}" y="22" width="10" height="10" fill="{color}"/>'
            f'<text x="{legend_x + 14}" y="31">{escape(name)}</text>'
        )
    parts.append("</svg>")
    return "".join(parts)


def bar_chart(
    title: str,
    bars: Sequence[tuple[str, float]],
    reference: float | None = None,
    reference_label: str = "",
    width: int = 640,
) -> str:
    """Horizontal bars, one per (label, value), with an optional reference line."""
    if not bars:
        return ""
    row, left, right, top = 18, 120, 60, 28
    height = top + row * len(bars) + 24
    if reference is not None and not math.isfinite(reference):
        reference = None
    # A non-finite value (AUC of a one-class slice) is named, not drawn.
    values = [v for _, v in bars if math.isfinite(v)] or [0.0]
    values += [reference] if reference is not None else []
    high = max(max(values), 0.0) or 1.0
    low = min(min(values), 0.0)

    def x(v: float) -> float:
        return left + (v - low) / (high - low) * (width - left - right)

    parts = [
        _open("chart", title, width, height),
        f'<text x="{left}" y="16" class="title">{escape(title)}</text>',
    ]
    for i, (label, value) in enumerate(bars):
        y = top + i * row
        parts.append(
            f"<g><title>{escape(label)}: {value}</title>"
            f'<text x="{left - 6}" y="{y + 12}" text-anchor="end">{escape(label[:18])}</text>'
        )
        if math.isfinite(value):
            parts.append(
                f'<rect x="{x(min(value, 0)):.1f}" y="{y + 2}" '
                f'width="{abs(x(value) - x(0)):.1f}" height="{row - 5}" fill="{PALETTE[0]}"/>'
                f'<text x="{x(max(value, 0)) + 4:.1f}" y="{y + 12}">{_fmt(value)}</text>'
            )
        else:
            parts.append(f'<text x="{x(0) + 4:.1f}" y="{y + 12}">n/a ({value})</text>')
        parts.append("</g>")
    if reference is not None:
        rx = x(reference)
        parts.append(
            f'<line x1="{rx:.1f}" y1="{top - 4}" x2="{rx:.1f}" y2="{height - 20}" '
            f'class="reference"/><text x="{rx:.1f}" y="{height - 6}" text-anchor="middle">'
            f"{escape(reference_label)}</text>"
        )
    parts.append("</svg>")
    return "".join(parts)


STATE_COLORS = {"COMPLETE": "#e3f2e1", "CACHED": "#e6eef8", "FAILED": "#fbe3e1"}


def dag(
    nodes: Sequence[tuple[str, str]],
    edges: Sequence[tuple[str, str, str]],
    width: int = 980,
) -> str:
    """The run's nodes (id, state) in layers by dependency, artifact edges labelled."""
    ids = [n for n, _ in nodes]
    parents: dict[str, set[str]] = {n: set() for n in ids}
    for source, target, _ in edges:
        if source in parents and target in parents:
            parents[target].add(source)
    layer: dict[str, int] = {}

    def depth(node: str, seen: tuple[str, ...] = ()) -> int:
        if node not in layer:
            if node in seen:  # a cycle cannot come from ML Metadata; guard anyway
                return 0
            layer[node] = 1 + max((depth(p, (*seen, node)) for p in parents[node]), default=-1)
        return layer[node]

    for node in ids:
        depth(node)
    columns: dict[int, list[str]] = {}
    for node in ids:
        columns.setdefault(layer[node], []).append(node)
    box_w, box_h, gap_y = 132, 40, 22
    count = max(columns) + 1 if columns else 1
    step_x = max((width - box_w - 20) / max(count - 1, 1), box_w + 16)
    width = int(20 + step_x * (count - 1) + box_w)
    tallest = max(len(c) for c in columns.values()) if columns else 1
    height = 20 + tallest * (box_h + gap_y)
    where: dict[str, tuple[float, float]] = {}
    for index, members in columns.items():
        offset = (height - len(members) * (box_h + gap_y)) / 2
        for row, node in enumerate(members):
            where[node] = (10 + index * step_x, offset + row * (box_h + gap_y) + gap_y / 2)
    state_of = dict(nodes)
    parts = [
        _open("dag", "lineage of this run", width, height),
        '<defs><marker id="arrow" viewBox="0 0 10 10" refX="10" refY="5" markerWidth="7" '
        'markerHeight="7" orient="auto-start-reverse"><path d="M 0 0 L 10 5 L 0 10 z" '
        'fill="#777"/></marker></defs>',
    ]
    for source, target, key in edges:
        if source not in where or target not in where:
            continue
        (sx, sy), (tx, ty) = where[source], where[target]
        x1, y1, x2, y2 = sx + box_w, sy + box_h / 2, tx, ty + box_h / 2
        parts.append(
            f'<path d="M {x1:.1f} {y1:.1f} C {x1 + 30:.1f} {y1:.1f}, {x2 - 30:.1f} {y2:.1f}, '
            f'{x2:.1f} {y2:.1f}" class="edge" marker-end="url(#arrow)">'
            f"<title>{escape(source)} → {escape(target)}: {escape(key)}</title></path>"
        )
    for node, (nx, ny) in where.items():
        state = state_of[node]
        fill = STATE_COLORS.get(state, "#f4f4f4")
        parts.append(
            f'<g class="node"><rect x="{nx:.1f}" y="{ny:.1f}" width="{box_w}" height="{box_h}" '
            f'rx="6" fill="{fill}" stroke="#888"/>'
            f'<text x="{nx + box_w / 2:.1f}" y="{ny + 17:.1f}" text-anchor="middle" '
            f'class="name">{escape(node)}</text>'
            f'<text x="{nx + box_w / 2:.1f}" y="{ny + 32:.1f}" text-anchor="middle">'
            f"{escape(state.lower())}</text></g>"
        )
    parts.append("</svg>")
    return "".join(parts)
