"""The serving columns of the configured workload, without loading TensorFlow.

`predict` and `loadtest` type CSV cells and fill empty ones exactly as the
served graph expects: the features the configuration's `model` section
names, typed by the curated schema (`data.schema_file`).
"""

from __future__ import annotations

from pathlib import Path

from components.errors import ConfigError
from components.workload import ServingColumn, schema_dtypes, serving_columns
from pipeline.config import PipelineConfig


def read_schema(path: str) -> object:
    """The curated schema as a tensorflow_metadata Schema proto.

    Raises:
        ConfigError: The file cannot be read or is not a Schema text proto.
    """
    from google.protobuf import text_format
    from tensorflow_metadata.proto.v0 import schema_pb2

    try:
        text = Path(path).read_text()
    except OSError as e:
        raise ConfigError(f"cannot read data.schema_file={path}: {e.strerror}") from None
    schema = schema_pb2.Schema()
    try:
        text_format.Parse(text, schema)
    except text_format.ParseError as e:
        raise ConfigError(f"data.schema_file={path} is not a valid Schema: {e}") from None
    return schema


def columns_for(config: PipelineConfig) -> list[ServingColumn]:
    """The configured model's serving columns: names, types and fills.

    Raises:
        ConfigError: The schema is unreadable or lacks a configured feature.
    """
    return serving_columns(config.model, schema_dtypes(read_schema(config.data.schema_file)))
