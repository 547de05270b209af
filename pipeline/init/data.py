"""The data folder `init` reads: its CSV files, their shared header, and TFDV statistics.

Only `*.csv` files count; anything else in the folder (a README, a .txt) is
listed so that messages can say what was found instead. Every CSV file is
checked before TFDV reads it, because TFDV's own failures (a decode error
deep in Beam, "Files have different headers.") name neither the file nor
the line.

TFDV computes the statistics in two passes over the same files:

1. Plain `generate_statistics_from_csv`: the column types (INT, FLOAT,
   STRING) and, for numbers, the numeric stats (median, min, max).
2. With the schema of pass 1 changed so that every column is categorical:
   INT columns get `int_domain { is_categorical: true }` and FLOAT columns are
   read as strings (TFDV refuses categorical floats unless its top-k is
   sketched, which makes counts approximate). TFDV then counts the distinct
   values of every column and lists up to `TOP_VALUES` of them with exact
   frequencies: the label's classes, rare ones included, and the values
   that tell a numeric-looking string column from a junk one.
"""

from __future__ import annotations

import csv
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pipeline.init.errors import CsvFileError, DataFolderError, HeaderMismatchError

# Distinct values pass 2 lists per column with their counts; also the most
# classes a label may have.
TOP_VALUES = 1000
_BOM = "\ufeff"


@dataclass(frozen=True)
class CsvFolder:
    """The CSV files of the data folder, checked to share one header.

    Attributes:
        root: The folder, absolute.
        files: Its `*.csv` files, absolute and sorted.
        columns: Their header, with a UTF-8 byte order mark removed.
        other_files: Names of the folder's other entries, sorted.
        byte_order_mark: The files start with a UTF-8 byte order mark, which
            TFDV keeps in the first column's name.
    """

    root: str
    files: tuple[str, ...]
    columns: tuple[str, ...]
    other_files: tuple[str, ...]
    byte_order_mark: bool

    @property
    def pattern(self) -> str:
        """The glob TFDV reads: the folder's CSV files only."""
        return os.path.join(self.root, "*.csv")


@dataclass(frozen=True)
class Statistics:
    """TFDV's two passes over the CSV files (see the module docstring).

    Attributes:
        types: Pass 1, the DatasetFeatureStatisticsList with the inferred
            types and numeric stats.
        values: Pass 2, the same columns' string stats: distinct counts and
            up to TOP_VALUES values with their frequencies.
    """

    types: Any
    values: Any


def _header(path: Path) -> tuple[list[str], bool]:
    """The header of one CSV file and whether it has a byte order mark.

    Reads the whole file once to find a line that is not UTF-8: TFDV would
    fail on it later without naming the file or the line.

    Raises:
        CsvFileError: The file is a folder, unreadable, empty or not UTF-8,
            or its header has an unnamed or a repeated column.
    """
    try:
        with open(path, "rb") as f:
            first = f.readline()
            number = 1
            line = first
            while line:
                try:
                    line.decode("utf-8")
                except UnicodeDecodeError as e:
                    raise CsvFileError(
                        f"{path} is not UTF-8 text: line {number} has byte 0x{line[e.start]:02x} "
                        f"at column {e.start + 1}; save the file as UTF-8"
                    ) from e
                line = f.readline()
                number += 1
    except IsADirectoryError as e:
        raise CsvFileError(f"{path} is a folder, not a CSV file") from e
    except PermissionError as e:
        raise CsvFileError(f"cannot read {path}: permission denied") from e
    except OSError as e:
        raise CsvFileError(f"cannot read {path}: {e.strerror}") from e
    text = first.decode("utf-8")
    byte_order_mark = text.startswith(_BOM)
    text = text.removeprefix(_BOM)
    if not text.strip():
        raise CsvFileError(f"{path} is empty: a CSV file starts with a header line of column names")
    columns = next(csv.reader([text]))
    for index, column in enumerate(columns, 1):
        if not column.strip():
            raise CsvFileError(f"{path}: column {index} of the header has no name")
    repeated = sorted({c for c in columns if columns.count(c) > 1})
    if repeated:
        raise CsvFileError(f"{path}: the header names {', '.join(repeated)} more than once")
    return columns, byte_order_mark


def _mismatch(first: Path, first_columns: list[str], other: Path, columns: list[str]) -> str:
    """Says how the header of `other` differs from that of `first`."""
    extra = [c for c in columns if c not in first_columns]
    lacking = [c for c in first_columns if c not in columns]
    parts = []
    if extra:
        parts.append(f"{other.name} has {', '.join(extra)} that {first.name} lacks")
    if lacking:
        parts.append(f"{first.name} has {', '.join(lacking)} that {other.name} lacks")
    if not parts:
        parts.append(f"{first.name} and {other.name} order the same columns differently")
    return (
        f"the CSV files in {first.parent} have different headers: {'; '.join(parts)} "
        "(every file needs the same header)"
    )


def scan(data_dir: str) -> CsvFolder:
    """Finds the CSV files of `data_dir` and checks they can be read with one header.

    Args:
        data_dir: The folder of CSV files.

    Returns:
        The folder's CSV files and their shared header.

    Raises:
        DataFolderError: The folder does not exist, is not a folder, or holds
            no `*.csv` file.
        CsvFileError: A CSV file cannot be read.
        HeaderMismatchError: Two CSV files have different headers, or only
            some start with a byte order mark.
    """
    root = Path(data_dir).expanduser().resolve()
    if not root.exists():
        raise DataFolderError(f"data folder {root} does not exist")
    if not root.is_dir():
        raise DataFolderError(f"--data {root} is a file; give the folder that holds the CSV files")
    entries = sorted(root.iterdir())
    files = [p for p in entries if p.name.endswith(".csv")]
    others = tuple(p.name for p in entries if not p.name.endswith(".csv"))
    if not files:
        found = f"found {', '.join(others)} but no *.csv" if others else "it is empty"
        raise DataFolderError(f"no CSV file in {root}: {found}")
    first_columns, first_bom = _header(files[0])
    for path in files[1:]:
        columns, byte_order_mark = _header(path)
        if columns != first_columns:
            raise HeaderMismatchError(_mismatch(files[0], first_columns, path, columns))
        if byte_order_mark != first_bom:
            with_bom, without = (path, files[0]) if byte_order_mark else (files[0], path)
            raise HeaderMismatchError(
                f"{with_bom} starts with a UTF-8 byte order mark and {without} does not: "
                "save the files the same way"
            )
    return CsvFolder(
        root=str(root),
        files=tuple(str(p) for p in files),
        columns=tuple(first_columns),
        other_files=others,
        byte_order_mark=first_bom,
    )


def _categorical_schema(types: Any) -> Any:
    """The schema of pass 1 with every column categorical, for the value counts of pass 2."""
    import tensorflow_data_validation as tfdv
    from tensorflow_metadata.proto.v0 import schema_pb2

    schema = tfdv.infer_schema(types)
    for feature in schema.feature:
        if feature.type == schema_pb2.INT:
            feature.int_domain.is_categorical = True
        elif feature.type == schema_pb2.FLOAT:
            feature.type = schema_pb2.BYTES
            feature.ClearField("float_domain")
    return schema


def _strip_byte_order_mark(stats: Any) -> None:
    """Renames the first column of `stats` in place, without its byte order mark."""
    for feature in stats.datasets[0].features:
        if feature.path.step and feature.path.step[0].startswith(_BOM):
            feature.path.step[0] = feature.path.step[0].removeprefix(_BOM)


def compute_statistics(folder: CsvFolder) -> Statistics:
    """Runs TFDV's two passes over the folder's CSV files (see the module docstring).

    Args:
        folder: The checked folder, from `scan`.

    Returns:
        Both passes, with the byte order mark removed from column names.

    Raises:
        DataFolderError: The files have a header but no data row.
    """
    import tensorflow_data_validation as tfdv
    from apache_beam.options.pipeline_options import PipelineOptions

    from pipeline.config import BeamConfig

    # The pipeline's default engine: in-process, no runner download.
    options = PipelineOptions(list(BeamConfig().args))
    types = tfdv.generate_statistics_from_csv(
        data_location=folder.pattern, pipeline_options=options
    )
    if not types.datasets or types.datasets[0].num_examples == 0:
        raise DataFolderError(
            f"the CSV files in {folder.root} have a header but no data rows: "
            f"{', '.join(Path(f).name for f in folder.files)}"
        )
    stats_options = tfdv.StatsOptions(
        schema=_categorical_schema(types),
        # The decoder must read FLOAT columns as the strings the schema now says.
        infer_type_from_schema=True,
        num_top_values=TOP_VALUES,
        num_rank_histogram_buckets=TOP_VALUES,
    )
    values = tfdv.generate_statistics_from_csv(
        data_location=folder.pattern, stats_options=stats_options, pipeline_options=options
    )
    if folder.byte_order_mark:
        _strip_byte_order_mark(types)
        _strip_byte_order_mark(values)
    return Statistics(types=types, values=values)
