"""The curated schema `init` writes beside the config: TFDV's inferred schema, curated.

The pipeline imports this schema instead of inferring one, and its
ExampleValidator fails a run on any anomaly. `curate` starts from
`tfdv.infer_schema` over the same data and changes what would make that
data, or serving requests, fail:

- Every column of the data stays, ignored ones too: a column in the data but
  not in the schema is an anomaly.
- Environments TRAINING and SERVING; the label alone is not in SERVING, since
  requests carry no label.
- The label keeps its classes: an integer label becomes categorical
  (`int_domain { is_categorical: true }`) so that statistics count its
  values, and `unique_constraints` demand 2 classes (binary) or 2 to
  TOP_VALUES (multiclass). Both bounds are written: an unset max reads as 0.
  A decimal label gets no unique_constraints: TFDV only counts the values
  of a categorical float with sketched (approximate) statistics.
- Inferred string domains are dropped where they only list what this data
  happened to hold: text, numbers written as strings, ignored columns. A
  categorical feature keeps its domain but tolerates 1% of unseen values
  (its OOV buckets take them).
"""

from __future__ import annotations

import textwrap
from collections.abc import Iterable, Mapping
from typing import Any

from components.workload import BINARY, CATEGORICAL
from pipeline.init.data import TOP_VALUES
from pipeline.init.infer import ColumnDecision, LabelDecision

TRAINING = "TRAINING"
SERVING = "SERVING"
MIN_DOMAIN_MASS = 0.99


def _drop_domain(schema: Any, feature: Any) -> None:
    """Removes the string domain `feature` refers to, and the reference."""
    if feature.WhichOneof("domain_info") != "domain":
        return
    name = feature.domain
    feature.ClearField("domain")
    kept = [d for d in schema.string_domain if d.name != name]
    del schema.string_domain[:]
    schema.string_domain.extend(kept)


def curate(types: Any, label: LabelDecision, decisions: Mapping[str, ColumnDecision]) -> Any:
    """TFDV's schema of the data, curated as the module docstring says.

    Args:
        types: TFDV's first statistics pass (`Statistics.types`).
        label: The label decision.
        decisions: Every other column's decision, by name.

    Returns:
        A tensorflow_metadata Schema with every column of the data.
    """
    import tensorflow_data_validation as tfdv
    from tensorflow_metadata.proto.v0 import schema_pb2

    schema = tfdv.infer_schema(types)
    schema.default_environment[:] = [TRAINING, SERVING]
    for feature in schema.feature:
        if feature.type == schema_pb2.FLOAT:
            # NaN and inf read as numbers and would poison the z-score statistics.
            feature.float_domain.disallow_nan = True
            feature.float_domain.disallow_inf = True
        if feature.name == label.column:
            feature.not_in_environment.append(SERVING)
            if feature.type == schema_pb2.INT:
                # Also replaces the bool_domain TFDV infers for 0/1 integers.
                feature.int_domain.CopyFrom(schema_pb2.IntDomain(is_categorical=True))
            if feature.type != schema_pb2.FLOAT:
                most = 2 if label.task == BINARY else TOP_VALUES
                feature.unique_constraints.min = 2
                feature.unique_constraints.max = most
            continue
        decision = decisions[feature.name]
        if decision.kind == CATEGORICAL and feature.WhichOneof("domain_info") == "domain":
            feature.distribution_constraints.min_domain_mass = MIN_DOMAIN_MASS
        elif decision.kind != CATEGORICAL:
            _drop_domain(schema, feature)
    return schema


def header(root: str, rows: int, files: int, label: str, date: str) -> list[str]:
    """The schema file's opening comment lines (without the `#`)."""
    plural = "s" if files != 1 else ""
    inferred = (
        f"Inferred by `python -m pipeline init` on {date} from {rows} rows of {files} CSV "
        f"file{plural}, then curated: every column is listed (ignored ones too); the label "
        f"`{label}` is not in the SERVING environment and must keep its classes; string "
        "domains stay only on categorical features and the label; decimal columns refuse "
        "NaN and inf."
    )
    return [
        f"Curated schema of the CSV files in {root} (raw columns).",
        "",
        *textwrap.wrap(inferred, 78),
        "",
        "Curate it before trusting it: ExampleValidator fails a run on any deviation.",
        "- Presence: `min_fraction: 1.0` says every row has the column; loosen it where",
        "  new data may leave cells empty.",
        "- Ranges: add int_domain / float_domain with the physically valid bounds.",
        "- Categories: a string_domain lists the values seen here; add those to expect.",
    ]


def render(schema: Any, comment: Iterable[str]) -> str:
    """The schema as a text proto under a `#` comment."""
    from google.protobuf import text_format

    lines = [f"# {line}".rstrip() for line in comment]
    return "\n".join(lines) + "\n\n" + text_format.MessageToString(schema)
