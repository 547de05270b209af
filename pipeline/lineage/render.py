"""Lineage answers as text trees, and model lineage as a Graphviz or Mermaid picture."""

from __future__ import annotations

import datetime
from typing import Any

from pipeline.lineage.queries import TRAINED_ON

# The headline metrics by task, in order; whichever the evaluation has.
_HEADLINE = ("auc", "binary_accuracy", "accuracy")


def _metrics(values: dict[str, float]) -> str:
    shown = [f"{k} {values[k]:.4f}" for k in _HEADLINE if k in values]
    return ", ".join(shown)


def _artifact(entry: dict[str, Any]) -> str:
    return f"{entry['type']} {entry['id']}: {entry['uri']}"


def _execution(entry: dict[str, Any]) -> str:
    return f"{entry['node']} execution {entry['id']} ({entry['state']})"


def model_tree(lineage: dict[str, Any]) -> str:
    """The upstream lineage of a model as an indented tree."""
    lines = [f"pipeline {lineage['pipeline']}, run {lineage['run']}"]
    for push in lineage["pushed"]:
        lines.append(
            f"PushedModel {push['id']}: version {push['version']} at {push['destination']}"
            f" (run {push['run']})"
        )
    if not lineage["pushed"]:
        lines.append("not pushed")
    blessing = lineage.get("blessing")
    if blessing:
        verdict = "BLESSED" if blessing["blessed"] else "NOT BLESSED"
        thresholds = ", ".join(f"{k} {v}" for k, v in blessing["thresholds"].items())
        lines.append(f"├─ ModelBlessing {blessing['id']}: {verdict} ({thresholds})")
        if "metrics" in blessing:
            baseline = blessing.get("baseline_model_id")
            against = f"; baseline model {baseline}" if baseline else "; no baseline"
            lines.append(f"│    metrics: {_metrics(blessing['metrics'])}{against}")
        lines.append(f"│    by {_execution(blessing['evaluator'])}")
    trainer = lineage["trainer"]
    params = trainer["parameters"]
    lines.append(f"└─ {_artifact(lineage['model'])}")
    lines.append(
        f"   └─ {_execution(trainer)}: train_steps {params.get('train_steps')}, "
        f"eval_steps {params.get('eval_steps')}, workers {trainer['workers']} "
        f"({trainer['launcher']})"
    )
    children = []
    if "transformed_examples" in lineage:
        children.append([f"{_artifact(lineage['transformed_examples'])} (transformed)"])
    if "transform_graph" in lineage:
        node = [_artifact(lineage["transform_graph"])]
        if "transform" in lineage:
            node.append(f"└─ {_execution(lineage['transform'])}")
        children.append(node)
    if "schema" in lineage:
        children.append([_artifact(lineage["schema"])])
    if "examples" in lineage:
        node = _examples_node(lineage["examples"])
        if lineage.get(TRAINED_ON) == "examples":
            node[0] += ", read by the trainer through the transform graph"
        children.append(node)
    for i, node in enumerate(children):
        last = i == len(children) - 1
        lines.append(f"      {'└─' if last else '├─'} {node[0]}")
        for extra in node[1:]:
            lines.append(f"      {'  ' if last else '│ '}    {extra}")
    return "\n".join(lines)


def _examples_node(examples: dict[str, Any]) -> list[str]:
    node = [f"{_artifact(examples)} (raw, span {examples.get('span')})"]
    gen = examples.get("example_gen")
    if gen:
        node.append(f"from {gen.get('input_base')} by {_execution(gen)}")
    stats = examples.get("statistics")
    if stats:
        counts = ", ".join(f"{k} {v}" for k, v in stats["split_counts"].items())
        node.append(f"{_artifact(stats)}: {counts or 'no split counts'}")
    anomalies = examples.get("anomalies")
    if anomalies:
        node.append(
            f"{_artifact(anomalies)}: {anomalies['anomaly_count']} anomalies against schema "
            f"{anomalies.get('checked_against_schema')}"
        )
    return node


def _ms(value: int) -> str:
    moment = datetime.datetime.fromtimestamp(value / 1000, tz=datetime.timezone.utc)
    return moment.strftime("%Y-%m-%d %H:%M:%S")


def runs_table(runs: list[dict[str, Any]]) -> str:
    """One line per run."""
    lines = [f"{'RUN':<34} {'STATUS':<10} {'START (UTC)':<20} {'END (UTC)':<20} PUSHED"]
    for run in runs:
        pushed = ", ".join(f"version {v}" for v in run["pushed_versions"]) or "-"
        status = run["status"]
        if run["failed_nodes"]:
            status += f" at {','.join(run['failed_nodes'])}"
        elif run["status"] in ("INTERRUPTED", "ABANDONED") and run.get("unfinished_nodes"):
            status += f" at {','.join(run['unfinished_nodes'])}"
        elif run["cached"] == run["executions"]:
            status += " (cached)"
        lines.append(
            f"{run['run']:<34} {status:<10} {_ms(run['start_ms']):<20} "
            f"{_ms(run['end_ms']):<20} {pushed}"
        )
    return "\n".join(lines)


def examples_tree(lineage: dict[str, Any]) -> str:
    """The models downstream of an Examples artifact."""
    lines = [_artifact(lineage["examples"])]
    models = lineage["models"]
    if not models:
        lines.append("└─ no model was trained on these examples")
    for i, model in enumerate(models):
        branch = "└─" if i == len(models) - 1 else "├─"
        blessed = {True: "blessed", False: "not blessed", None: "not evaluated"}[model["blessed"]]
        pushed = ", ".join(f"version {p['version']}" for p in model["pushed"]) or "not pushed"
        lines.append(f"{branch} Model {model['id']} (run {model['run']}): {blessed}, {pushed}")
    return "\n".join(lines)


def _graph_edges(lineage: dict[str, Any]) -> list[tuple[str, str]]:
    """(from, to) pairs between artifacts and executions of a model's lineage."""
    edges: list[tuple[str, str]] = []

    def a(entry: dict[str, Any]) -> str:
        return f"{entry['type']} {entry['id']}"

    def e(entry: dict[str, Any]) -> str:
        return f"{entry['node']} #{entry['id']}"

    examples = lineage.get("examples", {})
    if examples.get("example_gen"):
        edges.append((e(examples["example_gen"]), a(examples)))
    if examples.get("statistics"):
        edges.append((a(examples), e(examples["statistics"]["execution"])))
        edges.append((e(examples["statistics"]["execution"]), a(examples["statistics"])))
    if examples.get("anomalies"):
        edges.append((a(examples["statistics"]), e(examples["anomalies"]["execution"])))
        edges.append((e(examples["anomalies"]["execution"]), a(examples["anomalies"])))
    if lineage.get("transform"):
        if examples:
            edges.append((a(examples), e(lineage["transform"])))
        for key in ("transform_graph", "transformed_examples"):
            if key in lineage:
                edges.append((e(lineage["transform"]), a(lineage[key])))
    for key in ("transformed_examples", "transform_graph", "schema"):
        if key in lineage:
            edges.append((a(lineage[key]), e(lineage["trainer"])))
    if lineage.get(TRAINED_ON) == "examples" and examples:
        edges.append((a(examples), e(lineage["trainer"])))
    edges.append((e(lineage["trainer"]), a(lineage["model"])))
    blessing = lineage.get("blessing")
    if blessing:
        edges.append((a(lineage["model"]), e(blessing["evaluator"])))
        edges.append((e(blessing["evaluator"]), a(blessing)))
    for push in lineage["pushed"]:
        edges.append((a(lineage["model"]), f"PushedModel {push['id']} (version {push['version']})"))
    return edges


def model_dot(lineage: dict[str, Any]) -> str:
    """Graphviz: artifacts as boxes, executions as ellipses."""
    edges = _graph_edges(lineage)
    nodes = sorted({n for edge in edges for n in edge})
    lines = ["digraph lineage {", "  rankdir=LR;"]
    for node in nodes:
        shape = "ellipse" if "#" in node else "box"
        lines.append(f'  "{node}" [shape={shape}];')
    lines += [f'  "{src}" -> "{dst}";' for src, dst in edges]
    lines.append("}")
    return "\n".join(lines)


def model_mermaid(lineage: dict[str, Any]) -> str:
    """Mermaid flowchart: artifacts as boxes, executions as rounded nodes."""
    edges = _graph_edges(lineage)
    ids = {node: f"n{i}" for i, node in enumerate(sorted({n for edge in edges for n in edge}))}
    lines = ["flowchart LR"]
    for node, key in ids.items():
        lines.append(f'  {key}("{node}")' if "#" in node else f'  {key}["{node}"]')
    lines += [f"  {ids[src]} --> {ids[dst]}" for src, dst in edges]
    return "\n".join(lines)


def model_figure(lineage: dict[str, Any]) -> Any:
    """A matplotlib figure of a model's lineage: columns by depth, left to right."""
    import matplotlib.pyplot as plt

    edges = _graph_edges(lineage)
    nodes = sorted({n for edge in edges for n in edge})
    depth = dict.fromkeys(nodes, 0)
    for _ in nodes:  # longest path from a source; the graph is a DAG
        for src, dst in edges:
            depth[dst] = max(depth[dst], depth[src] + 1)
    columns: dict[int, list[str]] = {}
    for node in nodes:
        columns.setdefault(depth[node], []).append(node)
    position = {
        node: (d, -i + (len(column) - 1) / 2)
        for d, column in columns.items()
        for i, node in enumerate(column)
    }
    width = max(columns) + 1
    fig, ax = plt.subplots(figsize=(3.2 * width, 1.2 * max(len(c) for c in columns.values()) + 1))
    for src, dst in edges:
        (x0, y0), (x1, y1) = position[src], position[dst]
        ax.annotate("", xy=(x1 - 0.3, y1), xytext=(x0 + 0.3, y0), arrowprops={"arrowstyle": "->"})
    for node, (x, y) in position.items():
        execution = "#" in node
        ax.text(
            x,
            y,
            node,
            ha="center",
            va="center",
            fontsize=8,
            bbox={
                "boxstyle": "round" if execution else "square",
                "facecolor": "#fde7c8" if execution else "#d7e8fb",
            },
        )
    ax.set_xlim(-0.6, width - 0.4)
    ax.set_ylim(
        min(y for _, y in position.values()) - 0.8, max(y for _, y in position.values()) + 0.8
    )
    ax.axis("off")
    ax.set_title(
        f"lineage of Model {lineage['model']['id']} (boxes: artifacts, rounded: executions)"
    )
    return fig
