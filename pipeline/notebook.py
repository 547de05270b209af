"""What the notebooks share: the project's configuration, the latest outputs, tables.

Notebooks read the same configuration as `python -m pipeline run`, so they
look at the same pipeline root, ML Metadata store and registry: the file in
the environment variable PIPELINE_CONFIG, else `pipeline/configs/local.yaml`.
Relative paths resolve against the repository root (the notebooks' parent
folder), as they do for `make run` there.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from pipeline.config import CONFIG_ENV, PipelineConfig, load_config


def notebook_config(cwd: Path | None = None) -> PipelineConfig:
    """The configuration `python -m pipeline run` uses (PIPELINE_CONFIG or the default)."""
    here = cwd or Path.cwd()
    base = here.parent if here.name == "notebooks" else here
    return load_config(os.environ.get(CONFIG_ENV) or None, [], base_dir=base)


def metadata_store(config: PipelineConfig) -> Any:
    """The configured ML Metadata store, read-only for SQLite.

    Raises:
        components.mlmd.StoreNotFoundError: The SQLite store does not exist yet
            (run `make run`); a FileNotFoundError.
    """
    from components.mlmd import open_for_reading

    return open_for_reading(config.metadata)


def latest_outputs(config: PipelineConfig, node_id: str) -> dict[str, list[Any]]:
    """Output artifacts of the newest execution of a pipeline node, by output key.

    Raises:
        LookupError: The node never ran in this store.
    """
    from components.mlmd import latest_execution, output_artifacts

    store = metadata_store(config)
    execution = latest_execution(store, config.run.pipeline_name, node_id)
    if execution is None:
        raise LookupError(
            f"no {node_id} execution of pipeline {config.run.pipeline_name!r} in "
            f"{config.metadata.sqlite_path}: run `make run` first"
        )
    return output_artifacts(store, execution.id)


def metrics_by_slice(evaluation_uri: str, column: str) -> Any:
    """The candidate's metrics per value of one slice column, as a pandas DataFrame."""
    import pandas as pd

    from components.evaluator.metrics import slice_metrics

    found = slice_metrics(evaluation_uri, (column,)).get(column)
    if not found:
        raise LookupError(f"{evaluation_uri}: no metrics sliced by {column!r}")
    rows = [{column: value, **metrics} for value, metrics in found]
    return pd.DataFrame(rows).sort_values(column).set_index(column)
