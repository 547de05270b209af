"""CSV rows typed by the feature registry, as serving requests.

A row keeps its cells typed per `components.features.FEATURES`, with None for
an empty cell. Both request forms fill an empty cell with the feature's
registered `default`:

- `serving_raw` (REST) takes one dense value per feature, so a missing value
  cannot be expressed at all;
- `serving_default` (gRPC) parses required columns as fixed-length features,
  so leaving one out of the tf.Example is a parse error.

This is the same answer the model gives for a tf.Example with the cell left
out (as CsvExampleGen writes it): `preprocessing_fn` fills a missing value
with exactly this default before transforming it. The tests check that.
"""

from __future__ import annotations

import csv
import math
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from components.features import FEATURES, Feature, RawType

RawValue = float | int | str

_INT64_MIN, _INT64_MAX = -(2**63), 2**63 - 1


class RowError(ValueError):
    """A CSV file that cannot be turned into serving requests."""


@dataclass(frozen=True)
class Row:
    """One CSV row, typed.

    Attributes:
        number: 1-based data row number (the first row under the header is 1).
        values: Every registered feature's value; None where the cell was empty.
    """

    number: int
    values: Mapping[str, RawValue | None]


def _parse_cell(f: Feature, cell: str) -> RawValue | None:
    """The typed value of one cell; raises ValueError saying what was expected."""
    if cell == "":
        return None
    if f.raw_type is RawType.STRING:
        return cell
    if f.raw_type is RawType.FLOAT:
        try:
            number = float(cell)
        except ValueError:
            raise ValueError(f"expected a number, found {cell!r}") from None
        if not math.isfinite(number):
            raise ValueError(f"expected a finite number, found {cell!r}")
        return number
    try:
        integer = int(cell)
    except ValueError:
        # Exported spreadsheets often write integers as "5.0"; accept those,
        # but never truncate a real fraction silently.
        try:
            number = float(cell)
        except ValueError:
            raise ValueError(f"expected an integer, found {cell!r}") from None
        if not number.is_integer():
            raise ValueError(f"expected an integer, found {cell!r}") from None
        integer = int(number)
    if not _INT64_MIN <= integer <= _INT64_MAX:
        raise ValueError(f"expected a 64-bit integer, found {cell!r}")
    return integer


def parse_row(cells: Mapping[str, str | None], number: int, where: str = "row") -> Row:
    """Types the registered features' cells of one row; other columns are ignored.

    Args:
        cells: Cell text by column name, as `csv.DictReader` gives it.
        number: The row's 1-based data row number.
        where: Where the row comes from, for error messages (e.g. the file).

    Returns:
        The typed row.

    Raises:
        RowError: A feature's column is absent or its cell is not of the
            feature's raw type; the message names `where`, the row and the
            column.
    """
    values: dict[str, RawValue | None] = {}
    for f in FEATURES:
        cell = cells.get(f.name)
        if cell is None:
            raise RowError(f"{where}, row {number}: no cell for column {f.name!r}")
        try:
            values[f.name] = _parse_cell(f, cell)
        except ValueError as error:
            raise RowError(
                f"{where}, row {number}, column {f.name!r} ({f.raw_type.value}): {error}"
            ) from None
    return Row(number, values)


def read_rows(path: str | Path, limit: int | None = None) -> list[Row]:
    """Reads and types the rows of a CSV file with a header line.

    Columns the model does not use (the label's `tips`, timestamps, ...) are
    ignored; every registered feature must have a column.

    Args:
        path: The CSV file.
        limit: Read at most this many data rows; None for all.

    Returns:
        The typed rows, in file order.

    Raises:
        RowError: The file is missing or unreadable, lacks a feature's column,
            has a malformed or badly typed row (named by row and column), or
            has no data rows.
    """
    if limit is not None and limit < 1:
        raise RowError(f"the row limit must be at least 1, found {limit}")
    rows: list[Row] = []
    try:
        # utf-8-sig: spreadsheet exports often start with a byte order mark,
        # which would otherwise become part of the first column's name.
        with open(path, newline="", encoding="utf-8-sig") as f:
            reader = csv.DictReader(f)
            header = reader.fieldnames or []
            missing = [c.name for c in FEATURES if c.name not in header]
            if missing:
                raise RowError(
                    f"{path}: the header (line 1) lacks the model's column(s) "
                    f"{', '.join(missing)}; found: {', '.join(header) or 'an empty file'}"
                )
            for cells in reader:
                number = len(rows) + 1
                if None in cells:
                    raise RowError(
                        f"{path}, row {number} (line {reader.line_num}): "
                        f"more cells than the header's {len(header)} columns"
                    )
                rows.append(parse_row(cells, number, str(path)))
                if limit is not None and len(rows) >= limit:
                    break
    except OSError as error:
        raise RowError(f"cannot read the CSV file {path}: {error.strerror or error}") from None
    except (UnicodeDecodeError, csv.Error) as error:
        raise RowError(f"{path} is not a readable UTF-8 CSV file: {error}") from None
    if not rows:
        raise RowError(f"{path}: no data rows under the header")
    return rows


def to_instance(row: Row) -> dict[str, RawValue]:
    """One REST instance for the `serving_raw` signature (JSON-ready).

    Args:
        row: The typed row.

    Returns:
        {feature name: value}, typed per the registry, empty cells filled
        with the feature's default.
    """
    instance: dict[str, RawValue] = {}
    for f in FEATURES:
        value = row.values[f.name]
        instance[f.name] = f.default if value is None else value
    return instance


def to_example(row: Row) -> bytes:
    """One serialized tf.Example for the `serving_default` signature.

    Args:
        row: The typed row.

    Returns:
        The serialized tf.Example of every feature, empty cells filled.
    """
    import tensorflow as tf

    instance = to_instance(row)
    features = {}
    for f in FEATURES:
        value = instance[f.name]
        if f.raw_type is RawType.STRING:
            feature = tf.train.Feature(bytes_list=tf.train.BytesList(value=[str(value).encode()]))
        elif f.raw_type is RawType.FLOAT:
            feature = tf.train.Feature(float_list=tf.train.FloatList(value=[float(value)]))
        else:
            feature = tf.train.Feature(int64_list=tf.train.Int64List(value=[int(value)]))
        features[f.name] = feature
    return tf.train.Example(features=tf.train.Features(feature=features)).SerializeToString()
