"""The run report as one self-contained HTML page: inline CSS and SVG, no scripts.

TFDV's own statistics HTML (`get_statistics_html`) is not used: it loads
Facets from raw.githubusercontent.com through an HTML Import, which needs
the network and which Chromium no longer supports, so offline it renders
nothing and logs errors. The page shows the same summary statistics as
tables instead.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from html import escape

from pipeline.report import svg
from pipeline.report.collect import FeatureRow, ReportData

SECTIONS = (
    ("overview", "Run"),
    ("statistics", "Data statistics"),
    ("anomalies", "Anomalies"),
    ("evaluation", "Evaluation against the baseline"),
    ("slices", "Metrics by slice"),
    ("training", "Training curves"),
    ("version", "Pushed version"),
    ("lineage", "Lineage"),
)

_CSS = """
body { font: 14px/1.45 system-ui, sans-serif; margin: 0; color: #222; }
header { background: #263238; color: #fff; padding: 14px 24px; }
header h1 { margin: 0; font-size: 20px; }
nav a { color: #cfd8dc; margin-right: 14px; text-decoration: none; font-size: 13px; }
main { padding: 8px 24px 40px; max-width: 1100px; }
section { margin-top: 24px; }
h2 { font-size: 17px; border-bottom: 1px solid #ddd; padding-bottom: 4px; }
table { border-collapse: collapse; margin: 6px 0 12px; font-size: 13px; }
th, td { border: 1px solid #ddd; padding: 3px 8px; text-align: right; }
th { background: #f5f5f5; } td.text, th.text { text-align: left; }
.blessed { color: #1b5e20; font-weight: 600; } .refused { color: #b71c1c; font-weight: 600; }
.muted { color: #777; }
svg text { font: 11px system-ui, sans-serif; fill: #333; }
svg text.title { font-weight: 600; font-size: 12px; } svg text.name { font-weight: 600; }
svg .axis { stroke: #999; } svg .reference { stroke: #d62728; stroke-dasharray: 4 3; }
svg .edge { fill: none; stroke: #999; stroke-width: 1.4; }
.charts { display: flex; flex-wrap: wrap; gap: 12px; }
pre { background: #f7f7f7; padding: 8px; overflow: auto; font-size: 12px; max-height: 360px; }
"""


def _number(value: float | None, digits: int = 4) -> str:
    if value is None:
        return ""
    if isinstance(value, int) or (float(value).is_integer() and abs(value) >= 1000):
        return f"{int(value):,}"
    return f"{value:.{digits}g}"


def _table(headers: Iterable[str], rows: Iterable[Iterable[str]], text_columns: int = 1) -> str:
    head = "".join(
        f'<th class="text">{escape(h)}</th>' if i < text_columns else f"<th>{escape(h)}</th>"
        for i, h in enumerate(headers)
    )
    body = "".join(
        "<tr>"
        + "".join(
            f'<td class="text">{cell}</td>' if i < text_columns else f"<td>{cell}</td>"
            for i, cell in enumerate(row)
        )
        + "</tr>"
        for row in rows
    )
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _overview(data: ReportData) -> str:
    s = data.summary
    verdict = (
        '<span class="muted">not evaluated</span>'
        if s.blessed is None
        else '<span class="blessed">blessed</span>'
        if s.blessed
        else '<span class="refused">not blessed</span>'
    )
    rows = [
        ("pipeline", escape(data.pipeline)),
        ("run", escape(data.summary.run_id or "(not recorded)")),
        ("verdict", verdict),
        (
            "pushed",
            escape(s.pushed_uri) if s.pushed_uri else '<span class="muted">nothing</span>',
        ),
    ]
    nodes = _table(
        ("node", "state", "seconds"),
        ((escape(n.node_id), escape(n.state.lower()), f"{n.seconds:.1f}") for n in s.nodes),
        text_columns=2,
    )
    facts = "".join(f'<tr><th class="text">{k}</th><td class="text">{v}</td></tr>' for k, v in rows)
    return f"<table><tbody>{facts}</tbody></table>" + nodes


def _stat_rows(rows: list[FeatureRow]) -> tuple[str, str]:
    numeric = [r for r in rows if r.kind == "numeric"]
    strings = [r for r in rows if r.kind != "numeric"]

    def missing(r: FeatureRow) -> str:
        total = r.count + r.missing
        share = r.missing / total if total else 0.0
        text = f"{r.missing:,} ({share:.1%})"
        return f'<span class="refused">{text}</span>' if share > 0.1 else text

    numeric_table = _table(
        ("feature", "count", "missing", "mean", "std dev", "zeros", "min", "max"),
        (
            (
                escape(r.name),
                f"{r.count:,}",
                missing(r),
                _number(r.mean),
                _number(r.std),
                f"{r.zeros:,}" if r.zeros is not None else "",
                _number(r.minimum),
                _number(r.maximum),
            )
            for r in numeric
        ),
    )
    string_table = _table(
        ("feature", "count", "missing", "unique", "top values"),
        (
            (
                escape(r.name),
                f"{r.count:,}",
                missing(r),
                f"{r.unique:,}" if r.unique is not None else "",
                escape(", ".join(f"{v[:24]!s} ({int(f):,})" for v, f in r.top)),
            )
            for r in strings
        ),
    )
    return (numeric_table if numeric else ""), (string_table if strings else "")


def _statistics(data: ReportData) -> str:
    if not data.splits:
        return '<p class="muted">No statistics were recorded for this run.</p>'
    parts = []
    for split, (examples, rows) in data.splits.items():
        numeric, strings = _stat_rows(rows)
        parts.append(f"<h3>{escape(split)}: {examples:,} examples</h3>{numeric}{strings}")
    return "".join(parts)


def _anomalies(data: ReportData) -> str:
    if data.anomalies is None:
        return '<p class="muted">ExampleValidator did not run.</p>'
    if not data.anomalies:
        return "<p>None: every split matches the curated schema.</p>"
    return _table(
        ("feature", "anomaly", "description"),
        ((escape(a.feature), escape(a.short), escape(a.description)) for a in data.anomalies),
        text_columns=3,
    )


def _evaluation(data: ReportData) -> str:
    s = data.summary
    if s.blessed is None:
        return '<p class="muted">The Evaluator did not run.</p>'
    names = sorted(set(s.metrics) | set(s.baseline_metrics))
    rows = []
    for name in names:
        candidate, baseline = s.metrics.get(name), s.baseline_metrics.get(name)
        change = (
            f"{candidate - baseline:+.4f}" if candidate is not None and baseline is not None else ""
        )
        label = f"<b>{escape(name)}</b> (gated)" if name == data.gated_metric else escape(name)
        rows.append((label, _number(candidate), _number(baseline), change))
    baseline_note = (
        f"baseline: model {s.baseline_model_id}, the pipeline's latest blessed one"
        if s.baseline_model_id is not None
        else "no baseline: the first blessed model is judged on the value threshold alone"
    )
    thresholds = ", ".join(f"{k} {v}" for k, v in data.thresholds.items())
    reasons = "".join(f"<li>{escape(r)}</li>" for r in s.reasons)
    recall = ""
    if s.class_recall:
        recall = "<h3>Recall by class</h3>" + svg.bar_chart(
            "recall", sorted(s.class_recall.items())
        )
    verdict = (
        '<span class="blessed">Blessed</span>'
        if s.blessed
        else '<span class="refused">Not blessed</span>'
    )
    return (
        f"<p>{verdict} on {escape(data.gated_metric)} ({escape(thresholds)}); "
        f"{escape(baseline_note)}.</p>"
        + _table(("metric", "candidate", "baseline", "change"), rows)
        + f"<ul>{reasons}</ul>"
        + recall
    )


def _slices(data: ReportData) -> str:
    if not data.slices:
        if not data.slice_columns:
            reason = "No slice columns are configured (model.slice_by)."
        elif not data.summary.evaluation_uri:
            reason = "The Evaluator did not run, so there are no metrics by slice."
        else:
            reason = f"TFMA recorded no slices by {', '.join(data.slice_columns)}."
        return f'<p class="muted">{escape(reason)}</p>'
    metric = data.gated_metric
    parts = []
    overall = data.summary.metrics.get(metric)
    for column, rows in data.slices.items():
        bars = [(r.value, r.metrics[metric]) for r in rows if metric in r.metrics]
        parts.append(
            svg.bar_chart(
                f"{metric} by {column}",
                bars,
                reference=overall,
                reference_label=f"overall {overall:.3f}" if overall is not None else "",
            )
        )
        names = sorted({m for r in rows for m in r.metrics})
        parts.append(
            _table(
                (column, "examples", *names),
                (
                    (
                        escape(r.value),
                        f"{r.examples:,}",
                        *(_number(r.metrics.get(n)) for n in names),
                    )
                    for r in rows
                ),
            )
        )
    return "".join(parts)


def _training(data: ReportData) -> str:
    if not data.curves:
        return '<p class="muted">No TensorBoard events were found in the Trainer\'s model run.</p>'
    charts = [svg.line_chart(tag, curves, x_label="epoch") for tag, curves in data.curves.items()]
    return '<div class="charts">' + "".join(charts) + "</div>"


def _version(data: ReportData) -> str:
    if data.manifest is None:
        return '<p class="muted">Nothing was pushed by this run.</p>'
    m = data.manifest
    rows = [
        (escape(k), escape(json.dumps(m[k]) if not isinstance(m[k], str) else m[k]))
        for k in sorted(m)
        if k != "files"
    ]
    files = m.get("files", {})
    listing = _table(
        ("file", "bytes", "sha256"),
        (
            (escape(name), f"{info.get('size', 0):,}", escape(str(info.get("sha256", ""))[:16]))
            for name, info in sorted(files.items())
        ),
    )
    return (
        f"<p>Version <b>{escape(str(m.get('version')))}</b> of "
        f"<b>{escape(str(m.get('model_name')))}</b>, {len(files)} files.</p>"
        + _table(("key", "value"), rows, text_columns=2)
        + "<details><summary>files</summary>"
        + listing
        + "</details>"
    )


def _lineage(data: ReportData) -> str:
    if not data.nodes:
        return '<p class="muted">No executions were recorded.</p>'
    figure = svg.dag(data.nodes, data.edges)
    edges = _table(
        ("from", "to", "artifact"),
        ((escape(a), escape(b), escape(k)) for a, b, k in data.edges),
        text_columns=3,
    )
    return figure + "<details><summary>edges</summary>" + edges + "</details>"


_RENDER = {
    "overview": _overview,
    "statistics": _statistics,
    "anomalies": _anomalies,
    "evaluation": _evaluation,
    "slices": _slices,
    "training": _training,
    "version": _version,
    "lineage": _lineage,
}


def render(data: ReportData) -> str:
    """The whole page."""
    nav = "".join(f'<a href="#{key}">{escape(title)}</a>' for key, title in SECTIONS)
    sections = "".join(
        f'<section id="{key}"><h2>{escape(title)}</h2>{_RENDER[key](data)}</section>'
        for key, title in SECTIONS
    )
    run_id = data.summary.run_id
    title = f"{data.pipeline} run {run_id}" if run_id else f"{data.pipeline} run"
    return (
        "<!DOCTYPE html>\n"
        f'<html lang="en"><head><meta charset="utf-8"><title>{escape(title)}</title>'
        f'<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<style>{_CSS}</style></head><body>"
        f"<header><h1>{escape(title)}</h1><nav>{nav}</nav></header>"
        f"<main>{sections}</main></body></html>\n"
    )
