"""The workload: which columns are features of which kind, the label and its task.

This is the configuration's `model` section. It names the model package
that turns it into a preprocessing_fn and a Keras model (see
docs/model_packages.md), and it is the one source every generic part
derives from: the Transform's and the Trainer's custom_config, the serving
columns that warmup requests and `predict --csv` send, the TFMA EvalConfig's
label and slices, and the run summary's metrics. It imports no TensorFlow.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from components.errors import ConfigError

NUMERIC = "numeric"
CATEGORICAL = "categorical"
TEXT = "text"
KINDS = (NUMERIC, CATEGORICAL, TEXT)

BINARY = "binary"
MULTICLASS = "multiclass"
TASKS = (BINARY, MULTICLASS)

EMBEDDING = "embedding"
BAG_OF_WORDS = "bag_of_words"
TEXT_ENCODINGS = (EMBEDDING, BAG_OF_WORDS)

# Raw column types, as the curated schema gives them.
FLOAT = "float"
INT = "int"
STRING = "string"

# What a served model's input may be called: TensorFlow's tensor-name rule,
# which the serving_raw signature's inputs (the REST `instances` keys) follow.
INPUT_NAME = re.compile(r"^[A-Za-z0-9.][A-Za-z0-9_.\-/]*$")

DEFAULT_PACKAGE = "models.declarative"
DEFAULT_VOCABULARY = 100
DEFAULT_TEXT_VOCABULARY = 10_000
DEFAULT_MAX_TOKENS = 256
_DOTTED = re.compile(r"^[A-Za-z_][\w]*(\.[A-Za-z_][\w]*)*$")

Scalar = float | int | str

# A decimal number as CSV writers print one (optional sign, exponent), as a
# full match. One pattern for everything that decides "is this cell a
# number": init's inference, the preflight's type check and the transform
# graph's parsing (RE2 and Python's re read it alike).
# Cells that CSV writers put for "no value" in a column of numbers (compared
# lowercased): init reads such a column as numbers, the preflight's type check
# does not count them as text, the graph reads any non-number as missing.
MISSING_TOKENS = frozenset({"na", "n/a", "nan", "null", "none", "-", "?"})
NUMBER_PATTERN = r"\s*[-+]?([0-9]+\.?[0-9]*|\.[0-9]+)([eE][-+]?[0-9]+)?\s*"

# What applies to which kind; everything else must stay at its default.
_KIND_PARAMS = {
    NUMERIC: {"fill", "buckets"},
    CATEGORICAL: {"fill", "vocab_size", "oov_buckets", "embedding_dim"},
    TEXT: {"vocab_size", "oov_buckets", "max_tokens", "encoding", "embedding_dim"},
}


@dataclass(frozen=True)
class FeatureSpec:
    """One raw column the model uses.

    Attributes:
        kind: numeric (missing filled, z-scored; `buckets` > 0 turns it into
            quantile buckets instead), categorical (top-k vocabulary plus OOV
            buckets) or text (tokenized in the graph: lowercase, punctuation
            stripped, split on whitespace, vocabulary with OOV, at most
            `max_tokens` tokens).
        fill: Value of a missing cell (numeric and categorical). Empty: 0 for
            numbers, -1 for integer categories, "" for strings.
        buckets: numeric: quantile buckets; 0 for none (a z-scored float).
        vocab_size: categorical and text: the vocabulary's top-k cap; 0:
            100 for categories, 10,000 for text.
        oov_buckets: categorical and text: hash buckets for unseen values.
        max_tokens: text: tokens kept per value (the rest is cut); 0: 256.
        encoding: text: `embedding` (averaged token embeddings, the default)
            or `bag_of_words` (token counts times a weight matrix).
        embedding_dim: categorical and text: embedding width; 0 takes
            `trainer.embedding_dim`.
    """

    kind: str
    fill: Scalar | None = None
    buckets: int = 0
    vocab_size: int = 0
    oov_buckets: int = 1
    max_tokens: int = 0
    encoding: str = ""
    embedding_dim: int = 0

    @property
    def vocabulary_cap(self) -> int:
        """`vocab_size`, or the kind's default when unset."""
        return self.vocab_size or (
            DEFAULT_TEXT_VOCABULARY if self.kind == TEXT else DEFAULT_VOCABULARY
        )

    @property
    def token_cap(self) -> int:
        return self.max_tokens or DEFAULT_MAX_TOKENS

    @property
    def text_encoding(self) -> str:
        return self.encoding or EMBEDDING

    def validate(self, key: str) -> None:
        if self.kind not in KINDS:
            raise ConfigError(f"{key}.kind must be one of {', '.join(KINDS)}, got {self.kind!r}")
        defaults = FeatureSpec(kind=self.kind)
        for name in ("fill", "buckets", "vocab_size", "oov_buckets", "max_tokens", "encoding"):
            if name not in _KIND_PARAMS[self.kind] and getattr(self, name) != getattr(
                defaults, name
            ):
                takes = sorted(k for k, v in _KIND_PARAMS.items() if name in v)
                raise ConfigError(
                    f"{key}.{name}: a {self.kind} feature takes no {name} "
                    f"(only {' and '.join(takes)} features do)"
                )
        for name in ("buckets", "embedding_dim", "vocab_size", "max_tokens"):
            if getattr(self, name) < 0:
                raise ConfigError(f"{key}.{name} must be >= 0, got {getattr(self, name)}")
        if self.kind == NUMERIC and isinstance(self.fill, str):
            raise ConfigError(
                f"{key}.fill: a numeric feature fills with a number, got {self.fill!r}"
            )
        if self.kind in (CATEGORICAL, TEXT) and self.oov_buckets < 1:
            raise ConfigError(f"{key}.oov_buckets must be >= 1, got {self.oov_buckets}")
        if self.kind == TEXT and self.encoding and self.encoding not in TEXT_ENCODINGS:
            raise ConfigError(
                f"{key}.encoding must be one of {', '.join(TEXT_ENCODINGS)}, got {self.encoding!r}"
            )


@dataclass(frozen=True)
class LabelSpec:
    """What the model predicts.

    Attributes:
        column: The raw column holding the label. Empty when `derive` computes it.
        derive: Dotted path of `fn(inputs) -> [batch] tensor` computing the
            label from raw columns inside the transform graph (binary: 0/1).
        inputs: The raw columns `derive` reads.
        task: binary (one probability) or multiclass (one per class).
        positive: binary with `column`: the label value that counts as the
            positive class, as text; empty: "1".
        name: What summaries call the positive outcome (binary) or the
            label; empty: `column`, or the name of `derive`'s function.
    """

    column: str = ""
    derive: str = ""
    inputs: tuple[str, ...] = ()
    task: str = BINARY
    positive: str = ""
    name: str = ""

    @property
    def display_name(self) -> str:
        return self.name or self.column or self.derive.rsplit(".", 1)[-1]

    @property
    def positive_value(self) -> str:
        return self.positive or "1"

    @property
    def columns(self) -> tuple[str, ...]:
        """The raw columns the label is computed from."""
        return (self.column,) if self.column else self.inputs

    def validate(self, key: str) -> None:
        if self.task not in TASKS:
            raise ConfigError(f"{key}.task must be one of {', '.join(TASKS)}, got {self.task!r}")
        if bool(self.column) == bool(self.derive):
            raise ConfigError(
                f"{key}: set exactly one of {key}.column (a label column) and {key}.derive "
                "(a function computing the label from other columns)"
            )
        if self.derive:
            if not _DOTTED.match(self.derive) or "." not in self.derive:
                raise ConfigError(
                    f"{key}.derive must be a dotted path module.function, got {self.derive!r}"
                )
            if not self.inputs:
                raise ConfigError(f"{key}.inputs: list the raw columns {self.derive} reads")
        elif self.inputs:
            raise ConfigError(f"{key}.inputs: only a derived label ({key}.derive) has inputs")
        if self.positive and (self.task != BINARY or self.derive):
            raise ConfigError(f"{key}.positive applies to a binary label column only")


@dataclass(frozen=True)
class Workload:
    """The `model` section: the package, the label and the features.

    Attributes:
        package: Dotted path of the model package (docs/model_packages.md).
        label: What to predict.
        features: Raw column name -> how the model uses it, in model order.
            Columns of the data that are not listed are ignored.
        slice_by: Raw columns whose values the Evaluator reports metrics for,
            beside the overall metrics (the thresholds gate the overall ones).
        params: Free-form settings for a custom model package.
    """

    package: str = DEFAULT_PACKAGE
    label: LabelSpec = field(default_factory=LabelSpec)
    features: dict[str, FeatureSpec] = field(default_factory=dict)
    slice_by: tuple[str, ...] = ()
    params: dict[str, Any] = field(default_factory=dict)

    @property
    def task(self) -> str:
        return self.label.task

    @property
    def feature_names(self) -> tuple[str, ...]:
        return tuple(self.features)

    @property
    def columns(self) -> tuple[str, ...]:
        """Every raw column the workload reads: features, then label inputs."""
        label_only = tuple(c for c in self.label.columns if c not in self.features)
        return self.feature_names + label_only

    def validate(self, key: str = "model") -> None:
        if not _DOTTED.match(self.package):
            raise ConfigError(f"{key}.package must be a dotted module path, got {self.package!r}")
        self.label.validate(f"{key}.label")
        if not self.features:
            raise ConfigError(f"{key}.features: configure at least one feature")
        for name, spec in self.features.items():
            if not name:
                raise ConfigError(f"{key}.features: a feature has an empty name")
            if not INPUT_NAME.match(name):
                raise ConfigError(
                    f"{key}.features: column {name!r} cannot be a served model's input name "
                    "(letters, digits, '.', '_', '-' and '/' only, not starting with '_', '-' "
                    "or '/'); rename the column in the CSV header and the schema"
                )
            spec.validate(f"{key}.features.{name}")
        if self.label.column and self.label.column in self.features:
            raise ConfigError(
                f"{key}.label.column={self.label.column!r} is also listed under {key}.features; "
                "a model cannot take its own label as input"
            )
        for column in self.slice_by:
            if not column:
                raise ConfigError(f"{key}.slice_by: an entry is empty")


@dataclass(frozen=True)
class ServingColumn:
    """A raw column that serving requests carry, with what fills an empty cell.

    Attributes:
        name: Column name, the serving_raw input name.
        dtype: float, int or string, as the curated schema types the column.
        fill: What a client sends for an empty cell: the value the transform
            graph itself fills a missing cell with, so both request forms and
            a tf.Example without the cell get the same answer.
    """

    name: str
    dtype: str
    fill: Scalar


def schema_dtypes(schema: Any) -> dict[str, str]:
    """float, int or string of every column of a tensorflow_metadata Schema."""
    from tensorflow_metadata.proto.v0 import schema_pb2

    names = {schema_pb2.FLOAT: FLOAT, schema_pb2.INT: INT, schema_pb2.BYTES: STRING}
    return {f.name: names[f.type] for f in schema.feature if f.type in names}


def graph_fill(name: str, spec: FeatureSpec, dtype: str) -> Scalar:
    """The value preprocessing fills a missing cell of feature `name` with.

    A numeric feature over a string column (numbers written with `NA` and
    the like for missing) is parsed inside the graph; its fill is a number.

    Raises:
        ConfigError: `fill` does not suit the column's type.
    """
    key = f"model.features.{name}.fill"
    fill = spec.fill
    if spec.kind == NUMERIC:
        if fill is None:
            fill = 0
        if isinstance(fill, str):
            raise ConfigError(f"{key}: a numeric feature fills with a number, got {fill!r}")
        if dtype == INT:
            if not float(fill).is_integer():
                raise ConfigError(
                    f"{key}: column {name!r} holds integers; fill with an integer, got {fill!r}"
                )
            return int(fill)
        return float(fill)
    if dtype == INT:
        if fill is None:
            return -1
        if not isinstance(fill, int):
            raise ConfigError(
                f"{key}: column {name!r} holds integers; fill with an integer, got {fill!r}"
            )
        return fill
    if dtype == FLOAT:
        raise ConfigError(
            f"model.features.{name}: column {name!r} holds decimal numbers; a {spec.kind} "
            "feature needs strings or integers (make it numeric)"
        )
    if fill is None:
        return ""
    if not isinstance(fill, str):
        raise ConfigError(f"{key}: column {name!r} holds strings; fill with a string, got {fill!r}")
    return fill


def serving_columns(workload: Workload, dtypes: Mapping[str, str]) -> list[ServingColumn]:
    """The raw columns a serving request carries, typed by the schema, in model order.

    Args:
        workload: The model section.
        dtypes: Column types, e.g. `schema_dtypes(schema)`.

    Raises:
        ConfigError: A feature's column is not in the schema, or its fill or
            kind does not suit the column's type.
    """
    columns = []
    for name, spec in workload.features.items():
        if name not in dtypes:
            raise ConfigError(
                f"model.features.{name}: the curated schema has no column {name!r} "
                f"(it has: {', '.join(sorted(dtypes))})"
            )
        dtype = dtypes[name]
        if spec.kind == TEXT and dtype != STRING:
            raise ConfigError(
                f"model.features.{name}: a text feature needs a string column; the schema "
                f"types {name!r} as {dtype}"
            )
        fill = graph_fill(name, spec, dtype)
        # A string column parsed as numbers in the graph: an empty cell reads as missing.
        parsed_in_graph = dtype == STRING and spec.kind == NUMERIC
        columns.append(ServingColumn(name, dtype, "" if parsed_in_graph else fill))
    return columns


def check_against_schema(workload: Workload, schema: Any) -> None:
    """Checks the workload against the curated schema (a tensorflow_metadata Schema).

    Every column it names exists with a usable type; no feature is a column
    the schema keeps out of serving (a model cannot take what requests never
    carry, such as the label's input); slices are categories; a binary
    label's positive value is one the label can take.

    Raises:
        ConfigError: naming the key and the column.
    """
    dtypes = schema_dtypes(schema)
    serving_columns(workload, dtypes)
    by_name = {f.name: f for f in schema.feature}
    for name in workload.features:
        if "SERVING" in by_name[name].not_in_environment:
            raise ConfigError(
                f"model.features.{name}: the curated schema keeps {name!r} out of serving "
                "(not_in_environment: SERVING), so requests never carry it; a label's input "
                "cannot be a feature"
            )
    for column in workload.label.columns:
        if column not in dtypes:
            raise ConfigError(
                f"model.label: the curated schema has no column {column!r} "
                f"(it has: {', '.join(sorted(dtypes))})"
            )
    for column in workload.slice_by:
        if column not in dtypes:
            raise ConfigError(
                f"model.slice_by: the curated schema has no column {column!r} "
                f"(it has: {', '.join(sorted(dtypes))})"
            )
        feature = workload.features.get(column)
        if dtypes[column] == FLOAT or (feature is not None and feature.kind == TEXT):
            kind = "decimal numbers" if dtypes[column] == FLOAT else "text"
            raise ConfigError(
                f"model.slice_by: {column!r} holds {kind}: one slice per distinct value is "
                "meaningless; slice by a categorical column"
            )
    _check_positive(workload.label, dtypes, schema)


def _check_positive(label: LabelSpec, dtypes: Mapping[str, str], schema: Any) -> None:
    if label.task != BINARY or not label.column:
        return
    dtype = dtypes[label.column]
    positive = label.positive_value
    if dtype in (INT, FLOAT):
        try:
            float(positive)
        except ValueError:
            raise ConfigError(
                f"model.label.positive={positive!r}: the label column {label.column!r} holds "
                "numbers; name the positive class by its number"
            ) from None
        return
    domains = {d.name: list(d.value) for d in schema.string_domain}
    feature = next(f for f in schema.feature if f.name == label.column)
    values = list(feature.string_domain.value) or domains.get(feature.domain, [])
    if values and positive not in values:
        raise ConfigError(
            f"model.label.positive={positive!r} is not a value of {label.column!r} "
            f"(the schema's domain: {', '.join(values)}); set model.label.positive"
        )


def from_plain(values: Mapping[str, Any] | str) -> Workload:
    """Rebuilds a Workload from its plain form or JSON (a component's custom_config)."""
    import json

    from components.typed import build

    tree = json.loads(values) if isinstance(values, str) else values
    workload = build(Workload, tree, "model.")
    workload.validate()
    return workload
