"""Checks before the first component runs: data, schema, model package, outputs, store.

A mistake here would otherwise surface minutes later, deep inside a
component (a KeyError in Transform, a type clash at the gate, an import
error in the Trainer, a registry that cannot be written after the whole
pipeline trained). Each check fails with one line naming the key, the file
or the column, and what to do; together they take a few seconds (most of
it importing the model package). `run` calls all of them; `compile` and
`submit` check the code only: their data, roots and store are the
cluster's.
"""

from __future__ import annotations

import csv
import glob
import os
import re
import uuid
from collections.abc import Sequence

from components import model_package
from components.contracts import CSV_PATTERN
from components.errors import UserError
from components.schema_io import read_schema
from components.workload import MISSING_TOKENS, NUMBER_PATTERN, check_against_schema
from pipeline.config import PipelineConfig, _is_remote

# Rows per file whose cells are looked at for the type check; the header
# check reads every file's first line.
SAMPLE_ROWS = 200
_NUMBER = re.compile(NUMBER_PATTERN)


class PreflightError(UserError):
    """The configuration and the data or code it names do not fit together."""


def csv_files(root: str) -> list[str]:
    """The CSV files ExampleGen reads from `data.root`, sorted.

    Raises:
        PreflightError: The folder does not exist or holds no CSV file.
    """
    if not os.path.isdir(root):
        what = "is not a folder" if os.path.exists(root) else "does not exist"
        raise PreflightError(f"data.root={root} {what}: point it at the folder of your CSV files")
    files = sorted(glob.glob(os.path.join(root, CSV_PATTERN)))
    if not files:
        others = sorted(os.listdir(root))
        listed = ", ".join(others[:5]) + (" ..." if len(others) > 5 else "")
        found = f"it holds {listed}" if others else "it is empty"
        raise PreflightError(f"data.root={root} has no {CSV_PATTERN} file ({found})")
    return files


_BOM = b"\xef\xbb\xbf"


def _header(path: str) -> list[str]:
    try:
        with open(path, "rb") as raw:
            start = raw.read(len(_BOM))
        with open(path, newline="", encoding="utf-8") as f:
            header = next(csv.reader(f), None)
    except OSError as e:
        raise PreflightError(f"cannot read {path}: {e.strerror}") from None
    except UnicodeDecodeError as e:
        raise PreflightError(f"{path}: line 1 is not UTF-8 text ({e.reason})") from None
    if start == _BOM:
        # CsvExampleGen keeps the mark in the first column's name, which the
        # schema then does not know: the gate would report a new column.
        raise PreflightError(
            f"{path} starts with a UTF-8 byte order mark, which CsvExampleGen reads as part of "
            f"the first column's name ({header[0] if header else ''!r}); save the file as UTF-8 "
            "without it (e.g. sed -i '1s/^\\xEF\\xBB\\xBF//' FILE)"
        )
    if not header:
        raise PreflightError(f"{path} is empty: a CSV file needs a header line")
    return header


def check_rows(root: str, files: Sequence[str]) -> None:
    """At least one file has a data row under its header.

    Raises:
        PreflightError: Every file is header-only.
    """
    for path in files:
        with open(path, newline="", encoding="utf-8", errors="replace") as f:
            reader = csv.reader(f)
            next(reader, None)
            if any(any(cell for cell in row) for row in reader):
                return
    raise PreflightError(
        f"data.root={root} has 0 rows: its {len(files)} CSV file(s) hold a header and nothing "
        "else; add data or point data.root elsewhere"
    )


def check_headers(files: Sequence[str]) -> list[str]:
    """The one header all files share.

    Raises:
        PreflightError: A file is unreadable or empty, or two files differ.
    """
    first = _header(files[0])
    for path in files[1:]:
        header = _header(path)
        if header != first:
            only_first = [c for c in first if c not in header]
            only_here = [c for c in header if c not in first]
            detail = (
                f"only in the first: {only_first or 'none'}; only here: {only_here or 'none'}"
                if only_first or only_here
                else "same columns in another order"
            )
            raise PreflightError(
                f"{path} has a different header than {files[0]} ({detail}); every CSV file "
                "under data.root must have the same columns"
            )
    return first


def check_columns(config: PipelineConfig, header: Sequence[str]) -> None:
    """Every column the workload names is in the data.

    Raises:
        PreflightError: naming the key and the column.
    """
    model = config.model
    named = [(f"model.features.{name}", name) for name in model.features]
    named += [("model.label", column) for column in model.label.columns]
    named += [("model.slice_by", column) for column in model.slice_by]
    for key, column in named:
        if column not in header:
            raise PreflightError(
                f"{key}: column {column!r} is not in the data (data.root={config.data.root}; "
                f"its columns: {', '.join(header)})"
            )


def check_cell_types(config: PipelineConfig, files: Sequence[str]) -> None:
    """A column holds numbers in every file or in none.

    CsvExampleGen types a column over all files at once, so a column of
    numbers in one file and text in another is read as text everywhere: a
    numeric feature then fails at the gate, a text one silently learns from
    digits. The first SAMPLE_ROWS rows of each file are looked at.

    Raises:
        PreflightError: naming the column and a file of each kind.
    """
    columns = config.model.columns
    numeric_in: dict[str, str] = {}
    text_in: dict[str, tuple[str, str]] = {}
    for path in files:
        seen: dict[str, bool] = {}
        example: dict[str, str] = {}
        with open(path, newline="", encoding="utf-8-sig", errors="replace") as f:
            for i, row in enumerate(csv.DictReader(f)):
                if i >= SAMPLE_ROWS:
                    break
                for column in columns:
                    cell = row.get(column) or ""
                    if not cell or cell.strip().lower() in MISSING_TOKENS:
                        continue
                    is_number = bool(_NUMBER.fullmatch(cell))
                    seen[column] = seen.get(column, True) and is_number
                    if not is_number:
                        example.setdefault(column, cell)
        for column, all_numbers in seen.items():
            if all_numbers:
                numeric_in.setdefault(column, path)
            else:
                text_in.setdefault(column, (path, example[column]))
    for column in columns:
        if column in numeric_in and column in text_in:
            text_file, cell = text_in[column]
            raise PreflightError(
                f"column {column!r} holds numbers in {numeric_in[column]} but text in "
                f"{text_file} (e.g. {cell[:40]!r}): CsvExampleGen reads all of it as text; "
                "fix the files or keep them apart"
            )


def check_data(config: PipelineConfig) -> None:
    """The data checks, for a local `data.root`."""
    if _is_remote(config.data.root):
        return
    files = csv_files(config.data.root)
    check_columns(config, check_headers(files))
    check_rows(config.data.root, files)
    check_cell_types(config, files)


def _probe_remote(uri: str, key: str) -> None:
    import tensorflow as tf

    from components import storage

    storage.register_filesystems(uri)
    probe = f"{uri.rstrip('/')}/.preflight-{uuid.uuid4().hex}"
    try:
        tf.io.gfile.makedirs(uri)
        tf.io.gfile.listdir(uri)
        with tf.io.gfile.GFile(probe, "w") as f:
            f.write("preflight")
        tf.io.gfile.remove(probe)
    except (tf.errors.OpError, OSError) as e:
        message = str(getattr(e, "message", e)).splitlines()[0]
        raise PreflightError(f"{key}={uri} cannot be written: {message}") from None


def check_writable(path: str, key: str) -> None:
    """`path` is a folder this process can create files in (it is created if missing).

    Local folders get a probe file; gs:// and s3:// a listing and a probe
    object (through tf.io.gfile, as the components write there).

    Raises:
        PreflightError: naming the key, the path and the operating system's reason.
    """
    if _is_remote(path):
        _probe_remote(path, key)
        return
    try:
        os.makedirs(path, exist_ok=True)
        probe = os.path.join(path, f".preflight-{uuid.uuid4().hex}")
        with open(probe, "w") as f:
            f.write("preflight")
        os.remove(probe)
    except OSError as e:
        raise PreflightError(
            f"{key}={path} cannot be written: {e.strerror}"
            f"{f' ({e.filename})' if e.filename and e.filename != path else ''}; point it at a "
            "folder you can write"
        ) from None


def check_outputs(config: PipelineConfig) -> None:
    """The pipeline root and the registry can be written, before anything is trained."""
    check_writable(config.run.pipeline_root, "run.pipeline_root")
    check_writable(config.registry.uri, "registry.uri")


def check_store(config: PipelineConfig) -> None:
    """The ML Metadata store the local runner records in opens.

    Raises:
        UserError: The kind cannot be used locally, the SQLite folder cannot
            be written, or the store refuses the connection.
    """
    from components import mlmd
    from pipeline.runners.connection import local_connection_config

    metadata = config.metadata
    if metadata.kind == "sqlite":
        check_writable(
            os.path.dirname(metadata.sqlite_path) or ".", "metadata.sqlite_path's folder"
        )
        where = f"metadata.sqlite_path={metadata.sqlite_path}"
    else:
        where = f"metadata.kind={metadata.kind} {metadata.host}:{metadata.port}"
    connection = local_connection_config(config)
    try:
        mlmd.open_store(connection)
    except Exception as e:  # ML Metadata raises its own error types per backend
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise PreflightError(f"{where}: cannot open the ML Metadata store: {first}") from None


def check_code(config: PipelineConfig) -> None:
    """The schema fits the workload, and the model package (and a derived label) import."""
    _, schema = read_schema(config.data.schema_file)
    check_against_schema(config.model, schema)
    model_package.load(config.model.package)
    if config.model.label.derive:
        model_package.import_function(config.model.label.derive, "model.label.derive")


def check(config: PipelineConfig, local: bool = True) -> None:
    """Runs the checks; `local=False` checks the code only (compile, submit).

    Raises:
        UserError: The first problem found, in one line.
    """
    if local:
        check_data(config)
        check_outputs(config)
        check_store(config)
    check_code(config)


def find_undecodable(root: str) -> str | None:
    """The first byte under `root` that is not UTF-8, as one line naming file and line.

    Run after ExampleGen failed with a UnicodeDecodeError, whose message
    names neither: scanning the data up front would read all of it.
    """
    if _is_remote(root) or not os.path.isdir(root):
        return None
    for path in sorted(glob.glob(os.path.join(root, CSV_PATTERN))):
        with open(path, "rb") as f:
            for number, line in enumerate(f, start=1):
                try:
                    line.decode("utf-8")
                except UnicodeDecodeError as e:
                    return (
                        f"{path}, line {number}, byte {e.start + 1}: 0x{line[e.start]:02x} is not "
                        f"UTF-8 ({e.reason}); save the file as UTF-8 (e.g. iconv -f latin1 -t "
                        "utf-8)"
                    )
    return None
