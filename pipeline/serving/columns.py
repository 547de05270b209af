"""The serving columns of the configured workload, without loading TensorFlow.

`predict` and `loadtest` type CSV cells and fill empty ones exactly as the
served graph expects: the features the configuration's `model` section
names, typed by the curated schema (`data.schema_file`).
"""

from __future__ import annotations

from components.schema_io import read_schema
from components.workload import ServingColumn, schema_dtypes, serving_columns
from pipeline.config import PipelineConfig


def columns_for(config: PipelineConfig) -> list[ServingColumn]:
    """The configured model's serving columns: names, types and fills.

    Raises:
        ConfigError: The schema is unreadable or lacks a configured feature.
    """
    _, schema = read_schema(config.data.schema_file)
    return serving_columns(config.model, schema_dtypes(schema))
