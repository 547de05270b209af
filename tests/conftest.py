"""Shared fixtures: tiny real data, and a real tf.Transform run over it."""

from __future__ import annotations

import csv
import os
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import pytest

from pipeline.config import DEFAULT_CONFIG, load_config, package_path


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Puts the files that run whole pipelines (the `e2e` ones) first, each file's tests in order.

    pytest-xdist hands out whole files as its processes free up, in this
    order. Started first, the few files of several minutes each overlap
    one another and the many short files fill the gaps at the end, instead
    of the last long file running alone while the other process idles.
    Which tests run, and their order within a file, do not change.
    """
    heavy = {item.path for item in items if item.get_closest_marker("e2e")}
    order = {path: rank for rank, path in enumerate(dict.fromkeys(item.path for item in items))}
    items.sort(key=lambda item: (item.path not in heavy, order[item.path]))


def pytest_xdist_auto_num_workers(config: pytest.Config) -> int:
    """`-n auto`: one process more than the cores this process may use.

    With one process per core the cores were busy 1.75 of 2 on average
    (22 min 14 s of CPU in a 12 min 42 s suite): a pipeline run also waits,
    on the subprocesses it starts (Kubeflow tasks, training workers, a
    kernel), on real servers and on rollout windows. A third process on the
    2 cores fills those waits: 11 min 16 s against 12 min 42 s for the same
    932 tests (docs/benchmarks.md, "Test suite time").
    """
    return len(os.sched_getaffinity(0)) + 1


REPO_ROOT = Path(__file__).resolve().parent.parent
TAXI_CSV = Path(package_path("pkg://tfx/examples/chicago_taxi_pipeline/data/simple")) / "data.csv"
IMDB_TXT = Path(package_path("pkg://tfx/examples/imdb/data/imdb_small_with_labels.txt"))
PENGUINS_CSV = Path(package_path("pkg://palmerpenguins/data/penguins.csv"))


def taxi_config():  # type: ignore[no-untyped-def]
    """The embedded default configuration (the taxi workload)."""
    return load_config(DEFAULT_CONFIG)


def taxi_schema_file() -> str:
    return taxi_config().data.schema_file


# Runs one CLI command, then names the heavy packages that command imported.
_CLI_IMPORTS = """
import sys
from pipeline.cli import main

code = main(sys.argv[1:])
loaded = sorted(m for m in ("tensorflow", "tfx", "apache_beam") if m in sys.modules)
print("LOADED", loaded, "EXIT", code)
"""


def cli_in_fresh_process(*argv: str) -> tuple[str, str, str]:
    """Runs `python -m pipeline ARGV` in its own process.

    Returns:
        (what it printed, the `LOADED [...] EXIT n` line that names the heavy
        packages it imported and its exit code, its stderr).
    """
    done = subprocess.run(
        [sys.executable, "-c", _CLI_IMPORTS, *argv],
        env=dict(os.environ, PYTHONPATH=str(REPO_ROOT), TF_CPP_MIN_LOG_LEVEL="3"),
        capture_output=True,
        text=True,
        timeout=300,
    )
    *printed, last = done.stdout.strip().splitlines() or [""]
    return "\n".join(printed), last, done.stderr


def store_args(root: Path) -> list[str]:
    """`--set` arguments that put a run's pipeline root, ML Metadata and registry under `root`."""
    return [
        "--set",
        f"run.pipeline_root={root / 'pipeline_root'}",
        "--set",
        f"metadata.sqlite_path={root / 'metadata.sqlite'}",
        "--set",
        f"registry.uri={root / 'registry'}",
    ]


def read_csv_rows(path: Path = TAXI_CSV, limit: int | None = None) -> list[dict[str, str]]:
    """Raw CSV rows as strings, as a person would read them."""
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    return rows[:limit] if limit else rows


def csv_columns(path: Path = TAXI_CSV) -> list[str]:
    """The header of a CSV file."""
    with open(path, newline="") as f:
        return next(csv.reader(f))


def write_taxi_lines(path: Path, rows: int) -> Path:
    """The taxi CSV's header and its first `rows` rows, byte for byte, making parent folders."""
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = TAXI_CSV.read_text().splitlines(keepends=True)
    path.write_text("".join(lines[: rows + 1]))
    return path


def write_csv(path: Path, rows: list[dict[str, str]], columns: list[str]) -> None:
    """Writes `rows` under a header of `columns` (others dropped), making parent folders."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=columns, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)


def load_schema(path: str | None = None):  # type: ignore[no-untyped-def]
    import tensorflow_data_validation as tfdv

    return tfdv.load_schema_text(path or taxi_schema_file())


def to_instance(row: dict[str, str], schema) -> dict:  # type: ignore[no-untyped-def]
    """A CSV row as a tf.Transform instance dict, typed by the curated schema.

    Missing cells become empty lists, as CsvExampleGen writes them.
    """
    import numpy as np
    from tensorflow_metadata.proto.v0 import schema_pb2

    instance = {}
    for feature in schema.feature:
        cell = row.get(feature.name, "")
        if feature.type == schema_pb2.FLOAT:
            values = [float(cell)] if cell else []
            dtype = np.float32
        elif feature.type == schema_pb2.INT:
            values = [int(float(cell))] if cell else []
            dtype = np.int64
        else:
            values = [cell.encode()] if cell else []
            dtype = object
        instance[feature.name] = np.array(values, dtype=dtype)
    return instance


def run_transform(
    rows: list[dict[str, str]],
    output_dir: str,
    workload=None,
    schema=None,  # type: ignore[no-untyped-def]
) -> list[dict]:
    """Runs the declarative package's preprocessing_fn with tft_beam.AnalyzeAndTransformDataset.

    Writes the transform graph to `output_dir` (a TFTransformOutput folder)
    and returns the transformed instances.

    Args:
        rows: CSV rows.
        output_dir: Where the transform graph goes.
        workload: The `model` section; None for the taxi default's.
        schema: The curated schema; None for the taxi default's.
    """
    import functools

    import tensorflow_transform as tft
    import tensorflow_transform.beam as tft_beam
    from tensorflow_transform.tf_metadata import dataset_metadata, metadata_io

    from components.model_package import custom_config
    from models.declarative import preprocessing_fn

    schema = schema if schema is not None else load_schema()
    workload = workload if workload is not None else taxi_config().model
    metadata = dataset_metadata.DatasetMetadata(schema)
    instances = [to_instance(r, schema) for r in rows]
    fn = functools.partial(preprocessing_fn, custom_config=custom_config(workload))
    with tempfile.TemporaryDirectory() as temp_dir, tft_beam.Context(temp_dir=temp_dir):
        (transformed_rows, _), transform_fn = (
            instances,
            metadata,
        ) | tft_beam.AnalyzeAndTransformDataset(fn)
        _ = transform_fn | tft_beam.WriteTransformFn(output_dir)
    # The Transform component also records the raw schema beside the graph.
    metadata_io.write_metadata(
        metadata, os.path.join(output_dir, tft.TFTransformOutput.RAW_METADATA_DIR)
    )
    return list(transformed_rows)


@pytest.fixture(scope="session")
def taxi_rows() -> list[dict[str, str]]:
    """200 real rows of the Chicago Taxi CSV."""
    return read_csv_rows(limit=200)


@pytest.fixture(scope="session")
def transformed(
    tmp_path_factory: pytest.TempPathFactory, taxi_rows
) -> Iterator[tuple[str, list[dict]]]:  # type: ignore[no-untyped-def]
    """(transform output dir, transformed rows) of a real tf.Transform run."""
    output_dir = str(tmp_path_factory.mktemp("tft"))
    yield output_dir, run_transform(taxi_rows, output_dir)


def to_tf_example(row: dict[str, str], schema, columns=None) -> bytes:  # type: ignore[no-untyped-def]
    """Serializes a CSV row as a tf.Example the way CsvExampleGen does.

    Args:
        row: The CSV row.
        schema: The curated schema (gives each column's type).
        columns: Columns to include; None for all of the schema's.
    """
    import tensorflow as tf

    instance = to_instance(row, schema)
    features = {}
    for name, values in instance.items():
        if columns is not None and name not in columns:
            continue
        if values.dtype == object:
            features[name] = tf.train.Feature(bytes_list=tf.train.BytesList(value=list(values)))
        elif values.dtype.kind == "f":
            features[name] = tf.train.Feature(float_list=tf.train.FloatList(value=list(values)))
        else:
            features[name] = tf.train.Feature(int64_list=tf.train.Int64List(value=list(values)))
    return tf.train.Example(features=tf.train.Features(feature=features)).SerializeToString()


def write_raw_examples(rows: list[dict[str, str]], path: str) -> None:
    """Writes CSV rows as GZIP TFRecords of tf.Examples, like ExampleGen (all schema columns)."""
    import tensorflow as tf

    schema = load_schema()
    with tf.io.TFRecordWriter(path, options="GZIP") as writer:
        for row in rows:
            writer.write(to_tf_example(row, schema))


def write_transformed_examples(rows: list[dict], path: str) -> None:
    """Writes transformed instances as GZIP TFRecords of tf.Examples, like Transform."""
    import numpy as np
    import tensorflow as tf

    with tf.io.TFRecordWriter(path, options="GZIP") as writer:
        for row in rows:
            features = {}
            for name, value in row.items():
                values = np.atleast_1d(value)
                if values.dtype.kind == "f":
                    features[name] = tf.train.Feature(
                        float_list=tf.train.FloatList(value=values.tolist())
                    )
                else:
                    features[name] = tf.train.Feature(
                        int64_list=tf.train.Int64List(value=[int(v) for v in values])
                    )
            example = tf.train.Example(features=tf.train.Features(feature=features))
            writer.write(example.SerializeToString())


def train_on_raw(  # type: ignore[no-untyped-def]
    rows: list[dict[str, str]],
    transform_dir: str,
    work: Path,
    serving_dir: str,
    train_steps: int,
    eval_steps: int,
    settings,
) -> str:
    """Runs the real run_fn on `rows` as raw examples, through the transform graph.

    Returns:
        `serving_dir`, where the serving model was exported.
    """
    from tfx import v1 as tfx

    from components.training.custom_config import trainer_custom_config as custom_config
    from components.training.run import run_fn

    data = str(work / "data-00000-of-00001.gz")
    write_raw_examples(rows, data)
    run_fn(
        tfx.components.FnArgs(
            train_files=[data],
            eval_files=[data],
            transform_output=transform_dir,
            serving_model_dir=serving_dir,
            model_run_dir=str(work / "logs"),
            train_steps=train_steps,
            eval_steps=eval_steps,
            custom_config=custom_config(taxi_config().model, settings),
        )
    )
    return serving_dir


@pytest.fixture(scope="session")
def trained_model(tmp_path_factory: pytest.TempPathFactory, transformed, taxi_rows) -> str:  # type: ignore[no-untyped-def]
    """Runs the real run_fn for a few steps on the tiny raw data, through the transform graph.

    Returns:
        The exported serving model dir.
    """
    from components.training.settings import TrainerSettings

    work = tmp_path_factory.mktemp("trainer")
    return train_on_raw(
        taxi_rows,
        transformed[0],
        work,
        str(work / "serving"),
        train_steps=20,
        eval_steps=2,
        settings=TrainerSettings(batch_size=16, hidden_units=(8,), embedding_dim=4),
    )


def fn_args_under(root: str, model_run_dir: str | None = None):  # type: ignore[no-untyped-def]
    """Trainer FnArgs whose inputs and outputs all live under `root` (any URI scheme)."""
    from tfx import v1 as tfx

    return tfx.components.FnArgs(
        train_files=[f"{root}/train/*"],
        eval_files=[f"{root}/eval/*"],
        train_steps=10,
        eval_steps=2,
        transform_output=f"{root}/tft",
        serving_model_dir=f"{root}/trainer/model/7/Format-Serving",
        model_run_dir=model_run_dir or f"{root}/trainer/model_run/7",
        custom_config=_small_custom_config(),
    )


def _small_custom_config() -> dict:
    from components.training.custom_config import trainer_custom_config as custom_config
    from components.training.settings import TrainerSettings

    return custom_config(taxi_config().model, TrainerSettings(batch_size=8))
