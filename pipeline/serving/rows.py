"""CSV rows typed by the workload's serving columns, as serving requests.

A row keeps its cells typed per the serving columns (the configured
features, typed by the curated schema; `components.workload.serving_columns`),
with None for an empty cell. Both request forms fill an empty cell with the
column's `fill`:

- `serving_raw` (REST) takes one dense value per feature, so a missing value
  cannot be expressed at all;
- `serving_default` (gRPC) parses required columns as fixed-length features,
  so leaving one out of the tf.Example is a parse error.

This is the same answer the model gives for a tf.Example with the cell left
out (as CsvExampleGen writes it): the transform graph fills a missing value
with exactly this value before transforming it. The tests check that.
"""

from __future__ import annotations

import csv
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from components.errors import UserError
from components.workload import FLOAT, STRING, ServingColumn

RawValue = float | int | str

_INT64_MIN, _INT64_MAX = -(2**63), 2**63 - 1


class RowError(UserError, ValueError):
    """A CSV file that cannot be turned into serving requests."""


@dataclass(frozen=True)
class Row:
    """One CSV row, typed.

    Attributes:
        number: 1-based data row number (the first row under the header is 1).
        values: Every serving column's value; None where the cell was empty.
    """

    number: int
    values: Mapping[str, RawValue | None]


def _parse_cell(column: ServingColumn, cell: str) -> RawValue | None:
    """The typed value of one cell; raises ValueError saying what was expected."""
    if cell == "":
        return None
    if column.dtype == STRING:
        return cell
    if column.dtype == FLOAT:
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


def parse_row(
    cells: Mapping[str, str | None],
    number: int,
    columns: Sequence[ServingColumn],
    where: str = "row",
) -> Row:
    """Types the serving columns' cells of one row; other columns are ignored.

    Args:
        cells: Cell text by column name, as `csv.DictReader` gives it.
        number: The row's 1-based data row number.
        columns: The serving columns.
        where: Where the row comes from, for error messages (e.g. the file).

    Returns:
        The typed row.

    Raises:
        RowError: A column is absent or its cell is not of the column's type;
            the message names `where`, the row and the column.
    """
    values: dict[str, RawValue | None] = {}
    for column in columns:
        cell = cells.get(column.name)
        if cell is None:
            raise RowError(f"{where}, row {number}: no cell for column {column.name!r}")
        try:
            values[column.name] = _parse_cell(column, cell)
        except ValueError as error:
            raise RowError(
                f"{where}, row {number}, column {column.name!r} ({column.dtype}): {error}"
            ) from None
    return Row(number, values)


def read_rows(
    path: str | Path, columns: Sequence[ServingColumn], limit: int | None = None
) -> list[Row]:
    """Reads and types the rows of a CSV file with a header line.

    Columns the model does not use (the label, timestamps, ...) are ignored;
    every serving column must have a column in the file.

    Args:
        path: The CSV file.
        columns: The serving columns.
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
            missing = [c.name for c in columns if c.name not in header]
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
                rows.append(parse_row(cells, number, columns, str(path)))
                if limit is not None and len(rows) >= limit:
                    break
    except OSError as error:
        raise RowError(f"cannot read the CSV file {path}: {error.strerror or error}") from None
    except (UnicodeDecodeError, csv.Error) as error:
        raise RowError(f"{path} is not a readable UTF-8 CSV file: {error}") from None
    if not rows:
        raise RowError(f"{path}: no data rows under the header")
    return rows


def to_instance(row: Row, columns: Sequence[ServingColumn]) -> dict[str, RawValue]:
    """One REST instance for the `serving_raw` signature (JSON-ready).

    Args:
        row: The typed row.
        columns: The serving columns.

    Returns:
        {column: value}, typed per the column, empty cells filled with its fill.
    """
    instance: dict[str, RawValue] = {}
    for column in columns:
        value = row.values[column.name]
        instance[column.name] = column.fill if value is None else value
    return instance


def to_example(row: Row, columns: Sequence[ServingColumn]) -> bytes:
    """One serialized tf.Example for the `serving_default` signature.

    Args:
        row: The typed row.
        columns: The serving columns.

    Returns:
        The serialized tf.Example of every serving column, empty cells filled.
    """
    import tensorflow as tf

    instance = to_instance(row, columns)
    features = {}
    for column in columns:
        value = instance[column.name]
        if column.dtype == STRING:
            feature = tf.train.Feature(bytes_list=tf.train.BytesList(value=[str(value).encode()]))
        elif column.dtype == FLOAT:
            feature = tf.train.Feature(float_list=tf.train.FloatList(value=[float(value)]))
        else:
            feature = tf.train.Feature(int64_list=tf.train.Int64List(value=[int(value)]))
        features[column.name] = feature
    return tf.train.Example(features=tf.train.Features(feature=features)).SerializeToString()
