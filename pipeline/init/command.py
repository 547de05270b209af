"""`python -m pipeline init`: a config and a curated schema for a team's own CSV files.

    result = run_init("data/penguins", label="species", output="penguins.yaml")
    # penguins.yaml and schema.pbtxt beside it; result.columns says what each column became.

The data folder's `*.csv` files are checked (readable, UTF-8, one header),
TFDV computes statistics over them (`pipeline.init.data`), each column gets
a kind and the label a task (`pipeline.init.infer`), and the YAML
(`pipeline.init.write`) and the curated schema (`pipeline.init.schema`) are
written. Nothing is written when any step fails.
"""

from __future__ import annotations

import datetime
import re
from pathlib import Path

from pipeline.init import data, infer, schema, write
from pipeline.init.errors import (
    CsvFileError,
    LabelError,
    NoFeaturesError,
    OutputExistsError,
    PipelineNameError,
)
from pipeline.init.result import InitResult

__all__ = ["SCHEMA_FILE", "InitResult", "run_init"]

SCHEMA_FILE = "schema.pbtxt"
_NAME = re.compile(r"[A-Za-z0-9_-]+")


def pipeline_name(name: str | None, data_root: str) -> str:
    """`name`, checked, else the data folder's name reduced to letters, digits, - and _.

    Raises:
        PipelineNameError: `name` has other characters.
    """
    if name is not None:
        if not _NAME.fullmatch(name):
            raise PipelineNameError(
                f"--name {name!r}: a pipeline name is letters, digits, '-' and '_' only"
            )
        return name
    derived = re.sub(r"[^A-Za-z0-9_-]+", "_", Path(data_root).name).strip("_-")
    return derived or "pipeline"


def _check_outputs(paths: tuple[Path, ...], force: bool) -> None:
    for path in paths:
        if path.is_dir():
            raise OutputExistsError(f"{path} is a folder; --output names the YAML file to write")
        if path.exists() and not force:
            raise OutputExistsError(f"{path} exists; pass --force to overwrite it")


def _warnings(folder: data.CsvFolder, label: infer.LabelDecision, rows: int) -> tuple[str, ...]:
    """What the user should know and may leave as it is (what may not is an error)."""
    warnings = []
    if folder.other_files:
        warnings.append(
            f"{folder.root} also holds {', '.join(folder.other_files)}: the pipeline reads "
            "only its *.csv files"
        )
    return tuple(warnings)


def _refuse_byte_order_mark(folder: data.CsvFolder) -> None:
    """The same refusal as `run`'s preflight: CsvExampleGen would misread the header.

    Raises:
        CsvFileError: The files start with a byte order mark.
    """
    if folder.byte_order_mark:
        raise CsvFileError(
            f"{folder.files[0]} starts with a UTF-8 byte order mark, which CsvExampleGen reads "
            f"as part of the first column's name ({folder.columns[0]!r}); save the files as "
            "UTF-8 without it (e.g. sed -i '1s/^\\xEF\\xBB\\xBF//' FILE)"
        )


def run_init(
    data_dir: str,
    label: str,
    output: str = "pipeline.yaml",
    name: str | None = None,
    force: bool = False,
) -> InitResult:
    """Writes a config and a curated schema for the CSV files of `data_dir`.

    Args:
        data_dir: The folder of CSV files (`*.csv`; other files are ignored).
        label: The column to predict.
        output: The YAML config to write; the schema goes beside it as
            `schema.pbtxt`.
        name: The pipeline and model name; default: the folder's name.
        force: Overwrite the config and the schema if they exist.

    Returns:
        What was written and decided, for the CLI's summary.

    Raises:
        InitError: (a UserError) the folder, a file, the header, the label,
            the name or an existing output is at fault; the message says which.
    """
    config_path = Path(output).expanduser().resolve()
    schema_path = config_path.parent / SCHEMA_FILE
    _check_outputs((config_path, schema_path), force)
    folder = data.scan(data_dir)
    _refuse_byte_order_mark(folder)
    chosen_name = pipeline_name(name, folder.root)
    if label not in folder.columns:
        raise LabelError(
            f"label {label!r} is not a column of the CSV files in {folder.root}; "
            f"columns: {', '.join(folder.columns)}"
        )
    statistics = data.compute_statistics(folder)
    summaries = infer.summarize(statistics, folder.columns)
    label_decision = infer.infer_label(summaries[label], len(folder.files))
    columns = tuple(infer.infer_column(s) for column, s in summaries.items() if column != label)
    if all(c.ignored for c in columns):
        reasons = "; ".join(f"{c.name}: {c.note}" for c in columns) or "there are none"
        raise NoFeaturesError(f"no column besides the label {label!r} can be a feature: {reasons}")
    rows = summaries[label].rows
    if label_decision.missing:
        raise LabelError(
            f"{label_decision.missing} of {rows} rows have no label {label!r}: a model cannot "
            "learn from, or be judged on, rows without an answer; fill or drop them"
        )
    by_name = {c.name: c for c in columns}
    result = InitResult(
        config_path=str(config_path),
        schema_path=str(schema_path),
        data_root=folder.root,
        files=folder.files,
        rows=rows,
        pipeline_name=chosen_name,
        label=label_decision,
        columns=columns,
        slice_by=infer.slice_column(by_name),
        thresholds=infer.thresholds(label_decision),
        warnings=_warnings(folder, label_decision, rows),
        date=datetime.date.today().isoformat(),
    )
    curated = schema.curate(statistics.types, label_decision, by_name)
    comment = schema.header(folder.root, rows, len(folder.files), label, result.date)
    config_path.parent.mkdir(parents=True, exist_ok=True)
    schema_path.write_text(schema.render(curated, comment), encoding="utf-8")
    config_path.write_text(write.render_config(result), encoding="utf-8")
    return result
