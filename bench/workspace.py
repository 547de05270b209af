"""What both benchmarks share: a local run of the project in a throwaway folder."""

from __future__ import annotations

from pathlib import Path
from typing import Any


def run_in(workdir: Path, *overrides: str) -> tuple[Any, Any, Any]:
    """Runs the local pipeline with every output under `workdir`.

    Returns:
        (config, run summary, ML Metadata store).
    """
    from ml_metadata import metadata_store

    from components.mlmd import connection_config
    from pipeline.config import load_config, to_dict
    from pipeline.runners import local

    config = load_config(
        None,
        [
            f"run.pipeline_root={workdir / 'pipeline_root'}",
            f"metadata.sqlite_path={workdir / 'metadata.sqlite'}",
            f"registry.uri={workdir / 'registry'}",
            *overrides,
        ],
    )
    summary = local.run(config)
    store = metadata_store.MetadataStore(connection_config(to_dict(config)["metadata"]))
    return config, summary, store
