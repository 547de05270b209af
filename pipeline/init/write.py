"""The YAML config `init` writes: the keys the pipeline loads, commented for a person.

The text is rendered line by line rather than dumped, so that every value a
person may question carries its reason beside it (the class counts, why a
column is numeric, why one is ignored). Values are plain YAML where that
reads back unchanged and double-quoted otherwise; a label's positive class
is always quoted, since the config types it as text.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterable

import yaml

from components.workload import BINARY, DEFAULT_PACKAGE
from pipeline import config_schema
from pipeline.init.infer import ColumnDecision
from pipeline.init.result import InitResult

COMMENT_COLUMN = 40
SHOWN_CLASSES = 6
_PLAIN = re.compile(r"[A-Za-z_/.][A-Za-z0-9_./-]*")


def scalar(value: object, quote: bool = False) -> str:
    """One YAML scalar that reads back as `value`.

    Args:
        value: A str, int, float or bool.
        quote: Always double-quote a string.

    Returns:
        The YAML text of the value.
    """
    if not isinstance(value, str):
        # PyYAML spells floats so that they read back as floats (1.0e-05, not 1e-05).
        return yaml.safe_dump(value).removesuffix("\n...\n")
    text = value
    if not quote and _PLAIN.fullmatch(text) and yaml.safe_load(text) == text:
        return text
    return json.dumps(text, ensure_ascii=False)


def _line(indent: int, text: str, comment: str = "") -> str:
    line = " " * indent + text
    if not comment:
        return line
    return f"{line.ljust(COMMENT_COLUMN - 2)}  # {comment}"


def _flow(params: dict[str, object]) -> str:
    return "{" + ", ".join(f"{key}: {scalar(value)}" for key, value in params.items()) + "}"


def _plural(count: int, word: str, words: str = "") -> str:
    return f"{count} {word if count == 1 else words or word + 's'}"


def _classes(result: InitResult) -> str:
    label = result.label
    shown = ", ".join(f"{value} {count}" for value, count in label.classes[:SHOWN_CLASSES])
    rest = len(label.classes) - SHOWN_CLASSES
    if rest > 0:
        rarest, count = label.classes[-1]
        shown += f" and {rest} more, the rarest {rarest} {count}"
    note = f"{_plural(len(label.classes), 'class', 'classes')}: {shown}"
    if label.missing:
        note += f"; {label.missing} rows have no label"
    return note


def _evaluator(result: InitResult) -> list[str]:
    thresholds = result.thresholds
    if result.label.task == BINARY:
        metric = "area under the ROC curve, for a binary label"
        minimum = "a candidate below this is not blessed (0.5 is guessing)"
    else:
        majority, _ = result.label.classes[0]
        metric = "the share of rows whose most probable class is right"
        minimum = (
            f"halfway between always answering {majority} "
            f"({result.label.majority_share:.2f}) and 1.0"
        )
    return [
        "evaluator:",
        _line(2, f"metric: {thresholds.metric}", metric),
        _line(2, f"min_value: {scalar(thresholds.min_value)}", minimum),
        _line(
            2,
            f"max_drop: {scalar(thresholds.max_drop)}",
            "the most a candidate may fall below the latest blessed model",
        ),
    ]


def _relative(path: str) -> str:
    """`path` as a person types it from here: relative inside the current folder."""
    relative = os.path.relpath(path)
    return path if relative.startswith("..") else relative


def render_config(result: InitResult) -> str:
    """The config file's text for what `init` decided.

    Args:
        result: The decisions, paths and counts of the run.

    Returns:
        YAML with the sections data, run, metadata, registry, model and
        evaluator; every other setting keeps its default.
    """
    name = result.pipeline_name
    label = result.label
    files = _plural(len(result.files), "CSV file")
    lines = [
        config_schema.schema_header(),
        f"# Written by `python -m pipeline init` on {result.date} from {result.rows} rows "
        f"of {files} in {result.data_root}.",
        "# Edit it: change kinds, drop or add features, then "
        f"`python -m pipeline run --config {_relative(result.config_path)}`.",
        *(f"# Warning: {warning}" for warning in result.warnings),
        "data:",
        _line(2, f"root: {scalar(result.data_root)}", "the folder of CSV files, absolute"),
        _line(
            2,
            f"schema_file: {scalar(result.schema_path)}",
            "the curated schema beside this file; curate it too",
        ),
        "run:",
        _line(2, f"pipeline_name: {scalar(name)}", "--name, else the data folder's name"),
        _line(
            2,
            f"pipeline_root: {scalar(f'build/{name}/pipeline_root')}",
            "component outputs, relative to where you run",
        ),
        "metadata:",
        _line(
            2, f"sqlite_path: {scalar(f'build/{name}/metadata.sqlite')}", "the ML Metadata store"
        ),
        "registry:",
        _line(2, "uri: build/registry", "blessed models go to <uri>/<model_name>/<version>"),
        _line(2, f"model_name: {scalar(name)}", "the folder TF Serving watches"),
        "model:",
        _line(2, f"package: {DEFAULT_PACKAGE}", "builds preprocessing and model from the features"),
        "  label:",
        _line(4, f"column: {scalar(label.column)}"),
        _line(4, f"task: {label.task}", _classes(result)),
    ]
    if label.task == BINARY:
        lines.append(
            _line(4, f"positive: {scalar(label.positive, quote=True)}", label.positive_reason)
        )
    lines.append("  features:")
    lines.extend(
        _line(4, f"{scalar(c.name)}: {_flow({'kind': c.kind, **c.params})}", c.note)
        for c in result.features
    )
    if result.slice_by:
        lines.append(
            _line(2, f"slice_by: [{scalar(result.slice_by)}]", "metrics per value, beside overall")
        )
    else:
        lines.append(_line(2, "slice_by: []", "no categorical feature to slice by"))
    lines.extend(_ignored(result.ignored))
    lines.extend(_evaluator(result))
    return "\n".join(lines) + "\n"


def _ignored(columns: Iterable[ColumnDecision]) -> list[str]:
    notes = [f"  #   {c.name}: {c.note}" for c in columns]
    if not notes:
        return []
    return ["  # Ignored columns (move one under features to use it):", *notes]
