"""Small read-only queries over the ML Metadata records TFX writes."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING

from ml_metadata import metadata_store
from ml_metadata.proto import metadata_store_pb2

if TYPE_CHECKING:
    from pipeline.config import MetadataConfig

NODE_CONTEXT_TYPE = "node"
STATE_NAMES = {value: name for name, value in metadata_store_pb2.Execution.State.items()}


def node_context_name(pipeline_name: str, node_id: str) -> str:
    """Name TFX gives the context of one pipeline node."""
    return f"{pipeline_name}.{node_id}"


def latest_execution(
    store: metadata_store.MetadataStore, pipeline_name: str, node_id: str
) -> metadata_store_pb2.Execution | None:
    """The newest execution of a node, or None if it never ran."""
    context = store.get_context_by_type_and_name(
        NODE_CONTEXT_TYPE, node_context_name(pipeline_name, node_id)
    )
    if context is None:
        return None
    executions = store.get_executions_by_context(context.id)
    return max(executions, key=lambda e: e.id) if executions else None


def event_key(event: metadata_store_pb2.Event) -> str:
    """The input or output name an event records (`examples`, `model`...)."""
    return next((s.key for s in event.path.steps if s.HasField("key")), "")


def output_artifacts(
    store: metadata_store.MetadataStore, execution_id: int
) -> dict[str, list[metadata_store_pb2.Artifact]]:
    """Output artifacts of an execution keyed by output name (e.g. `blessing`)."""
    ids_by_key: dict[str, list[int]] = defaultdict(list)
    for event in store.get_events_by_execution_ids([execution_id]):
        if event.type not in (
            metadata_store_pb2.Event.OUTPUT,
            metadata_store_pb2.Event.DECLARED_OUTPUT,
        ):
            continue
        ids_by_key[event_key(event)].append(event.artifact_id)
    all_ids = [i for ids in ids_by_key.values() for i in ids]
    by_id = {a.id: a for a in store.get_artifacts_by_id(all_ids)} if all_ids else {}
    return {key: [by_id[i] for i in ids if i in by_id] for key, ids in ids_by_key.items()}


def state_name(execution: metadata_store_pb2.Execution) -> str:
    """`COMPLETE`, `CACHED`, `FAILED`, ... of an execution."""
    return STATE_NAMES.get(execution.last_known_state, "UNKNOWN")


def open_for_reading(metadata: MetadataConfig) -> metadata_store.MetadataStore:
    """Opens the configured store to inspect it: a SQLite file read-only, never created.

    Raises:
        FileNotFoundError: The SQLite file does not exist (no run has written it).
    """
    from components.metadata_store import connect

    spec = asdict(metadata)
    if metadata.kind == "sqlite":
        if not Path(metadata.sqlite_path).is_file():
            raise FileNotFoundError(
                f"{metadata.sqlite_path}: no such file; run the pipeline first or set "
                "metadata.sqlite_path"
            )
        # Read-only: inspecting must never create or migrate a store.
        spec["read_only"] = True
    return connect(spec)
