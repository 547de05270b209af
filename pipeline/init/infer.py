"""Column summaries from TFDV statistics, and what `init` makes of each column.

Every decision reads the two statistics passes of `pipeline.init.data`
(types and numeric stats; distinct counts and value frequencies); no CSV
is read here, only the values TFDV counted. "Few values" means at most 20
distinct values, or at most 5% of the rows with a value. Missing tokens
are the cells CSV writers put for "no value": NA, N/A, NaN, nan, null,
NULL, None, -, ? (any case).

Features, in this order (the first rule that applies wins):

1. ignored, empty: no row has a value (or only missing tokens).
2. ignored, constant: a single distinct value.
3. FLOAT: numeric.
4. INT: ignored as id-like when every value is distinct; numeric with many
   values; categorical with few (a code, a month, an hour).
5. STRING whose values are all numbers (as the transform graph's parser
   reads them) or missing tokens: numeric, parsed in the graph. When more
   than 1000 distinct values exist, the 1000 most frequent are checked.
6. STRING with numbers in at least half of its rows and other junk:
   categorical with few values, else ignored with an example of the junk.
7. STRING with every value distinct and no whitespace: ignored, id-like.
8. STRING with more distinct values than half its rows, 20 characters or
   more on average, and whitespace in most values: text.
9. Any other STRING: categorical.

Parameters:

- numeric `fill`: the median when a cell is missing (TFDV's median; for
  numeric strings the exact median of the counted numbers, or 0 when not
  all of them were counted), rounded to 4 significant digits (integers for
  INT columns and values of 1000 or more); 0 when nothing is missing.
- categorical: `vocab_size` is the distinct count, at most 1000;
  `oov_buckets` is one per 100 values, 1 to 10.
- text: `max_tokens` is the next power of two at or above twice the
  average characters over 6 (a word and its space), 32 to 512;
  `vocab_size` is a tenth of the estimated token count (rows times average
  characters over 6), rounded down to thousands, 1,000 to 10,000;
  `oov_buckets` is one per 1,000 vocabulary entries, 1 to 10; `encoding`
  is bag_of_words below EMBEDDING_MIN_ROWS rows (a linear model over token
  counts learns from a few hundred documents; averaged embeddings need more:
  on the 100 IMDB reviews the two gave an eval AUC of 0.78 and 0.53), else
  embedding.

The label (never a feature): two values make it binary, three or more
multiclass, counting every class (pass 2 lists up to 1000). `positive` is
"1" for {0, 1} (and {-1, 1}), "true" for {false, true}, "yes" for {no, yes},
as the data spells them; else the less frequent value. Refused: an empty
label, a single class, more than 1000 classes, numbers with more than 20
values (a quantity: regression is not supported), and fewer than two rows
per class on average. A decimal label's classes are counted by value, so
that "0" and "0.0" are one class.

Thresholds: binary labels gate on AUC >= 0.7 and a drop of at most 0.01;
multiclass labels on accuracy halfway between the majority class's share
and 1.0 (rounded down to 2 decimals), with a drop of at most 0.02.

slice_by: the categorical feature with the fewest distinct values (at
least 2), the first in header order on a tie.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from tensorflow_metadata.proto.v0 import statistics_pb2

from components.contracts import GATE_METRICS
from components.workload import (
    BAG_OF_WORDS,
    BINARY,
    CATEGORICAL,
    EMBEDDING,
    FLOAT,
    INPUT_NAME,
    INT,
    MISSING_TOKENS,
    MULTICLASS,
    NUMBER_PATTERN,
    NUMERIC,
    STRING,
    TEXT,
    Scalar,
)
from pipeline.init.data import TOP_VALUES, Statistics
from pipeline.init.errors import LabelError

IGNORED = "ignored"

FEW_VALUES = 20
FEW_FRACTION = 0.05
MAX_VOCABULARY = 1000
# The numbers the transform graph parses in a string column (optional sign,
# exponent); the same grammar as models/declarative's parser, so that a
# column called numeric here parses there.
# Rows of text from which averaged embeddings beat a bag of words, as a rule of thumb.
EMBEDDING_MIN_ROWS = 10_000
NUMBER = re.compile(NUMBER_PATTERN)

TEXT_MIN_LENGTH = 20
CHARS_PER_TOKEN = 6
MIN_TOKENS, MAX_TOKENS = 32, 512
MIN_TEXT_VOCABULARY, MAX_TEXT_VOCABULARY = 1000, 10_000

BINARY_MIN_AUC = 0.7
BINARY_MAX_DROP = 0.01
MULTICLASS_MAX_DROP = 0.02

_DTYPES = {
    statistics_pb2.FeatureNameStatistics.INT: INT,
    statistics_pb2.FeatureNameStatistics.FLOAT: FLOAT,
    statistics_pb2.FeatureNameStatistics.STRING: STRING,
    statistics_pb2.FeatureNameStatistics.BYTES: STRING,
}


@dataclass(frozen=True)
class ColumnSummary:
    """What the statistics say about one CSV column.

    Attributes:
        name: The column.
        dtype: float, int or string, as TFDV typed it (pass 1).
        rows: Rows of the data.
        present: Rows with a value (an empty cell is missing).
        distinct: Distinct values among them.
        values: (value, rows) of up to TOP_VALUES values, most frequent
            first, as text (integers and decimals as the CSV writes them).
        avg_length: Average characters per value.
        median: The median of a numeric column (TFDV's estimate), else None.
    """

    name: str
    dtype: str
    rows: int
    present: int
    distinct: int
    values: tuple[tuple[str, int], ...]
    avg_length: float
    median: float | None = None

    @property
    def missing(self) -> int:
        return self.rows - self.present

    @property
    def complete(self) -> bool:
        """`values` lists every distinct value."""
        return len(self.values) >= self.distinct


@dataclass(frozen=True)
class ColumnDecision:
    """How the config uses one column.

    Attributes:
        name: The column.
        kind: numeric, categorical or text; or `ignored`.
        params: The FeatureSpec fields written beside `kind`, in order.
        note: Why: the YAML comment of a feature, the reason for an ignored column.
        dtype: float, int or string, the column's type in the schema.
        distinct: Distinct values of the column.
    """

    name: str
    kind: str
    note: str
    dtype: str
    distinct: int
    params: dict[str, Scalar] = field(default_factory=dict)

    @property
    def ignored(self) -> bool:
        return self.kind == IGNORED


@dataclass(frozen=True)
class LabelDecision:
    """The label column and its task.

    Attributes:
        column: The label column.
        task: binary or multiclass.
        classes: (class, rows) of every class, most frequent first.
        positive: binary: the positive class, as the data spells it; else "".
        positive_reason: binary: why that class is the positive one.
        missing: Rows without a label.
        dtype: float, int or string.
    """

    column: str
    task: str
    classes: tuple[tuple[str, int], ...]
    positive: str
    positive_reason: str
    missing: int
    dtype: str

    @property
    def majority_share(self) -> float:
        """The share of labelled rows in the most frequent class."""
        return self.classes[0][1] / sum(count for _, count in self.classes)


@dataclass(frozen=True)
class Thresholds:
    """The Evaluator's blessing thresholds that suit the task.

    Attributes:
        metric: auc (binary) or accuracy (multiclass).
        min_value: The candidate's metric must reach this.
        max_drop: The candidate may be at most this far below the baseline.
    """

    metric: str
    min_value: float
    max_drop: float


def summarize(statistics: Statistics, columns: Sequence[str]) -> dict[str, ColumnSummary]:
    """One summary per column, in header order.

    Args:
        statistics: Both TFDV passes.
        columns: The CSV header.

    Returns:
        Column name -> summary.
    """
    types = statistics.types.datasets[0]
    values = statistics.values.datasets[0]
    rows = int(types.num_examples)
    by_name = {f.path.step[0]: f for f in types.features}
    counted = {f.path.step[0]: f.string_stats for f in values.features}
    summaries = {}
    for name in columns:
        feature = by_name[name]
        dtype = _DTYPES.get(feature.type, STRING)
        kind = feature.WhichOneof("stats")
        stats = getattr(feature, kind)
        strings = counted[name]
        summaries[name] = ColumnSummary(
            name=name,
            dtype=dtype,
            rows=rows,
            present=int(stats.common_stats.num_non_missing),
            distinct=int(strings.unique),
            values=tuple((v.value, int(v.frequency)) for v in strings.top_values),
            avg_length=float(strings.avg_length),
            median=float(stats.median) if kind == "num_stats" else None,
        )
    return summaries


def few_values(distinct: int, present: int) -> bool:
    """At most FEW_VALUES distinct values, or at most FEW_FRACTION of the rows with a value."""
    return distinct <= FEW_VALUES or distinct <= FEW_FRACTION * present


def is_missing_token(value: str) -> bool:
    """A blank or a cell that writers put for "no value" (see MISSING_TOKENS)."""
    return not value.strip() or value.strip().lower() in MISSING_TOKENS


def _quote(value: str, limit: int = 30) -> str:
    return repr(value if len(value) <= limit else value[: limit - 3] + "...")


def _round(value: float, dtype: str) -> Scalar:
    """A fill a person reads easily: 4 significant digits, integers from 1000 up."""
    if dtype == INT:
        return round(value)
    if value == 0 or not math.isfinite(value):
        return 0.0
    digits = max(0, 3 - math.floor(math.log10(abs(value))))
    return float(round(value, digits))


def _median(numbers: Sequence[tuple[float, int]]) -> float:
    """The median of values given with their counts."""
    ordered = sorted(numbers)
    total = sum(count for _, count in ordered)
    # The middle rows, 0-based: one for an odd total, the two middle ones for an even.
    wanted = sorted({(total - 1) // 2, total // 2})
    found: list[float] = []
    seen = 0
    for value, count in ordered:
        while wanted and wanted[0] < seen + count:
            found.append(value)
            wanted.pop(0)
        seen += count
    return sum(found) / len(found)


def _numeric(summary: ColumnSummary) -> ColumnDecision:
    """A FLOAT or INT column used as a number."""
    what = "decimal numbers" if summary.dtype == FLOAT else f"{summary.distinct} distinct integers"
    if summary.missing and summary.median is not None:
        fill = _round(summary.median, summary.dtype)
        note = f"{what}; {summary.missing} of {summary.rows} empty: the median fills them"
    else:
        fill = 0 if summary.dtype == INT else 0.0
        note = f"{what}, none missing"
    return ColumnDecision(
        summary.name, NUMERIC, note, summary.dtype, summary.distinct, {"fill": fill}
    )


def _numeric_strings(summary: ColumnSummary, tokens: Sequence[tuple[str, int]]) -> ColumnDecision:
    """A STRING column of numbers and missing tokens, parsed in the graph."""
    missing = summary.missing + sum(count for _, count in tokens)
    spelled = ", ".join(sorted({value for value, _ in tokens})) or "empty cells"
    note = f"numbers, {spelled} for missing ({missing} of {summary.rows}), parsed in the graph"
    if not summary.complete:
        note += f" (checked the {len(summary.values)} most frequent values)"
    fill: float = 0.0
    if missing and summary.complete:
        numbers = [(float(v), c) for v, c in summary.values if not is_missing_token(v)]
        fill = float(_round(_median(numbers), FLOAT))
        note += "; fill: the median"
    elif missing:
        note += "; fill 0.0: the median of the uncounted values is unknown"
    return ColumnDecision(
        summary.name, NUMERIC, note, summary.dtype, summary.distinct, {"fill": fill}
    )


def _categorical(summary: ColumnSummary, note: str) -> ColumnDecision:
    vocabulary = min(summary.distinct, MAX_VOCABULARY)
    if summary.distinct > MAX_VOCABULARY:
        note += f"; the vocabulary keeps the {MAX_VOCABULARY} most frequent"
    if summary.missing:
        note += f"; {summary.missing} of {summary.rows} empty"
    params: dict[str, Scalar] = {
        "vocab_size": vocabulary,
        "oov_buckets": min(10, max(1, vocabulary // 100)),
    }
    return ColumnDecision(summary.name, CATEGORICAL, note, summary.dtype, summary.distinct, params)


def _text(summary: ColumnSummary) -> ColumnDecision:
    tokens = math.ceil(2 * summary.avg_length / CHARS_PER_TOKEN)
    max_tokens = min(MAX_TOKENS, max(MIN_TOKENS, 1 << max(0, tokens - 1).bit_length()))
    estimated = summary.present * summary.avg_length / CHARS_PER_TOKEN
    vocabulary = min(
        MAX_TEXT_VOCABULARY, max(MIN_TEXT_VOCABULARY, int(estimated / 10) // 1000 * 1000)
    )
    note = (
        f"free text, {summary.distinct} distinct values, {summary.avg_length:.0f} "
        "characters on average"
    )
    params: dict[str, Scalar] = {
        "max_tokens": max_tokens,
        "vocab_size": vocabulary,
        "oov_buckets": min(10, max(1, vocabulary // 1000)),
        "encoding": EMBEDDING if summary.present >= EMBEDDING_MIN_ROWS else BAG_OF_WORDS,
    }
    if summary.present < EMBEDDING_MIN_ROWS:
        note += f"; bag of words: fewer than {EMBEDDING_MIN_ROWS:,} rows"
    return ColumnDecision(summary.name, TEXT, note, summary.dtype, summary.distinct, params)


def _ignored(summary: ColumnSummary, reason: str) -> ColumnDecision:
    return ColumnDecision(summary.name, IGNORED, reason, summary.dtype, summary.distinct)


def _looks_like_text(summary: ColumnSummary) -> bool:
    spaced = sum(1 for value, _ in summary.values if any(c.isspace() for c in value.strip()))
    return (
        summary.distinct > summary.present / 2
        and summary.avg_length >= TEXT_MIN_LENGTH
        and spaced > len(summary.values) / 2
    )


def _string(summary: ColumnSummary) -> ColumnDecision:
    """Rules 5 to 9 of the module docstring."""
    numbers, tokens, junk = [], [], []
    for value, count in summary.values:
        if is_missing_token(value):
            tokens.append((value, count))
        elif NUMBER.fullmatch(value):
            numbers.append((value, count))
        else:
            junk.append((value, count))
    if numbers and not junk:
        return _numeric_strings(summary, tokens)
    number_rows = sum(count for _, count in numbers)
    if junk and number_rows >= summary.present / 2:
        example, rows = max(junk, key=lambda item: item[1])
        if few_values(summary.distinct, summary.present):
            return _categorical(
                summary,
                f"{summary.distinct} values, numbers mixed with {_quote(example)} "
                f"({rows} of {summary.rows} rows), so a category",
            )
        return _ignored(
            summary,
            f"mostly numbers, but {_quote(example)} in {rows} of {summary.rows} rows: "
            "fix those cells to use it as numeric",
        )
    if summary.distinct == summary.present and not any(
        any(c.isspace() for c in value) for value, _ in summary.values
    ):
        return _ignored(
            summary, f"id-like, every value distinct ({summary.distinct} strings without spaces)"
        )
    if _looks_like_text(summary):
        return _text(summary)
    note = f"{summary.distinct} values"
    if tokens:
        note += f", {', '.join(sorted(v for v, _ in tokens))} among them"
    return _categorical(summary, note)


def infer_column(summary: ColumnSummary) -> ColumnDecision:
    """The kind of one feature column and its parameters (see the module docstring).

    Args:
        summary: The column's statistics.

    Returns:
        The decision; an ignored column carries the reason in `note`.
    """
    listed_tokens = sorted({v for v, _ in summary.values if is_missing_token(v)})
    if not INPUT_NAME.match(summary.name):
        return _ignored(
            summary,
            "its name cannot be a served model's input (letters, digits, . _ - / only): "
            "rename the column to use it",
        )
    if summary.present == 0:
        return _ignored(summary, f"empty: no value in {summary.rows} rows")
    if summary.complete and len(listed_tokens) == summary.distinct:
        return _ignored(summary, f"empty: only {', '.join(listed_tokens)} in {summary.rows} rows")
    if summary.distinct == 1:
        value = _quote(summary.values[0][0]) if summary.values else "one value"
        if summary.missing:
            return _ignored(
                summary,
                f"constant: a single value {value} in {summary.present} of {summary.rows} "
                "rows, the rest empty",
            )
        return _ignored(summary, f"constant: {value} in every row")
    if summary.dtype == FLOAT:
        return _numeric(summary)
    if summary.dtype == INT:
        if summary.distinct == summary.present:
            return _ignored(summary, f"id-like, every value distinct ({summary.distinct} integers)")
        if not few_values(summary.distinct, summary.present):
            return _numeric(summary)
        return _categorical(
            summary,
            f"{summary.distinct} distinct integers as categories (an amount? make it numeric)",
        )
    return _string(summary)


def _positive(classes: Sequence[tuple[str, int]]) -> tuple[str, str]:
    """The positive class of a binary label and why (see the module docstring)."""
    (first, _), (second, _) = classes
    if NUMBER.fullmatch(first) and NUMBER.fullmatch(second):
        by_number = {float(first): first, float(second): second}
        if set(by_number) in ({0.0, 1.0}, {-1.0, 1.0}):
            return by_number[1.0].strip(), "1 marks the positive rows"
    by_word = {first.strip().lower(): first, second.strip().lower(): second}
    for negative, positive in (("false", "true"), ("no", "yes")):
        if set(by_word) == {negative, positive}:
            return by_word[positive], f"{positive} marks the positive rows"
    # The rarer class, the one worth detecting; on a tie the one sorting last.
    rarest = min(count for _, count in classes)
    value = max(value for value, count in classes if count == rarest)
    return value, "the rarer class" if classes[0][1] != rarest else "a tie: the last by name"


def _merge_spellings(values: Sequence[tuple[str, int]]) -> tuple[tuple[str, int], ...]:
    """Classes of a decimal label, which pass 2 counts as text: "0" and "0.0" are one.

    Each class keeps its most frequent spelling; the classes stay most frequent first.
    """
    merged: dict[float, tuple[str, int]] = {}
    for value, count in values:
        spelling, total = merged.get(float(value), (value, 0))
        merged[float(value)] = (spelling, total + count)
    return tuple(sorted(merged.values(), key=lambda item: -item[1]))


def infer_label(summary: ColumnSummary, files: int) -> LabelDecision:
    """The label's task, classes and positive class.

    Args:
        summary: The label column's statistics.
        files: How many CSV files hold the rows, for messages.

    Returns:
        The label decision.

    Raises:
        LabelError: The label is empty, has a single class, or is not a
            classification label (see the module docstring).
    """
    name = summary.name
    where = f"in {files} file{'s' if files != 1 else ''}, {summary.rows} rows"
    if summary.present == 0:
        raise LabelError(f"label {name!r} is empty {where}: a model needs labelled rows")
    if not summary.complete:
        raise LabelError(
            f"label {name!r} has {summary.distinct} distinct values {where}: this version "
            f"supports binary and multiclass labels with at most {TOP_VALUES} classes"
        )
    classes = _merge_spellings(summary.values) if summary.dtype == FLOAT else summary.values
    if len(classes) == 1:
        raise LabelError(
            f"label {name!r} has a single value {classes[0][0]!r} {where}: "
            "a model needs at least two classes"
        )
    if summary.dtype in (INT, FLOAT) and len(classes) > FEW_VALUES:
        numbers = "decimal numbers" if summary.dtype == FLOAT else "integers"
        raise LabelError(
            f"label {name!r} holds {numbers} with {len(classes)} distinct values {where}, "
            "like a quantity: this version supports binary and multiclass labels only, not "
            f"regression (classes written as numbers: at most {FEW_VALUES})"
        )
    if len(classes) * 2 > summary.present:
        raise LabelError(
            f"label {name!r} has {len(classes)} distinct values {where}, fewer than two rows "
            "per class: this version supports binary and multiclass labels only"
        )
    positive, reason = _positive(classes) if len(classes) == 2 else ("", "")
    return LabelDecision(
        column=name,
        task=BINARY if len(classes) == 2 else MULTICLASS,
        classes=classes,
        positive=positive,
        positive_reason=reason,
        missing=summary.missing,
        dtype=summary.dtype,
    )


def thresholds(label: LabelDecision) -> Thresholds:
    """The blessing thresholds for the label's task (see the module docstring)."""
    # The first metric the gate accepts for the task: auc (binary), accuracy (multiclass).
    metric = GATE_METRICS[label.task][0]
    if label.task == BINARY:
        return Thresholds(metric, BINARY_MIN_AUC, BINARY_MAX_DROP)
    halfway = (label.majority_share + 1.0) / 2
    return Thresholds(metric, math.floor(halfway * 100) / 100, MULTICLASS_MAX_DROP)


def slice_column(decisions: Mapping[str, ColumnDecision]) -> str | None:
    """The categorical feature with the fewest distinct values (at least 2), if any."""
    candidates = [d for d in decisions.values() if d.kind == CATEGORICAL and d.distinct >= 2]
    if not candidates:
        return None
    return min(candidates, key=lambda d: d.distinct).name
