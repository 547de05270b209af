"""Read-only navigation of ML Metadata: artifacts, the executions that made or used them.

One view over what either orchestrator writes. TFX's local runner names
types `Examples`, `Model`… and groups executions under `node` contexts
(`<pipeline>.<node id>`) and `pipeline_run` contexts. The Kubeflow v2
launcher names types `tfx.Examples`, `tfx.Model`…, records every execution
as `system.ContainerExecution` with its task name in `task_name`, and
groups them under `system.Pipeline` and `system.PipelineRun` contexts. The
helpers below hide the difference.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from functools import cached_property
from typing import TypeAlias

from ml_metadata import metadata_store
from ml_metadata.proto import metadata_store_pb2

from components.baseline.lookup import PIPELINE_CONTEXT_TYPES
from pipeline.mlmd_queries import NODE_CONTEXT_TYPE, event_key, state_name

Artifact: TypeAlias = metadata_store_pb2.Artifact
Execution: TypeAlias = metadata_store_pb2.Execution
Context: TypeAlias = metadata_store_pb2.Context
Event: TypeAlias = metadata_store_pb2.Event

RUN_CONTEXT_TYPES = ("pipeline_run", "system.PipelineRun")
_OUTPUTS = (Event.OUTPUT, Event.DECLARED_OUTPUT)
_INPUTS = (Event.INPUT, Event.DECLARED_INPUT)


class LineageError(ValueError):
    """A lineage query cannot be answered; the message names what is missing."""


def short_type(name: str) -> str:
    """`tfx.Model` and `Model` alike -> `Model`."""
    for prefix in ("tfx.", "system."):
        if name.startswith(prefix):
            return name[len(prefix) :]
    return name


def value_of(value: metadata_store_pb2.Value) -> object:
    """A property value as plain Python (KFP writes numbers as doubles)."""
    kind = value.WhichOneof("value")
    if kind is None:
        return None
    if kind == "struct_value":
        from google.protobuf import json_format

        decoded = json_format.MessageToDict(value.struct_value)
        # KFP's converter wraps dicts and lists it stores on artifacts.
        if len(decoded) == 1 and next(iter(decoded)) in ("struct", "list"):
            return next(iter(decoded.values()))
        return decoded
    raw = getattr(value, kind)
    if kind == "double_value" and float(raw).is_integer():
        return int(raw)
    return raw


@dataclass(frozen=True)
class Edge:
    """One event: an execution read (`input`) or wrote (`output`) an artifact under `key`."""

    execution_id: int
    artifact_id: int
    direction: str
    key: str


class MetadataGraph:
    """Cached lookups over one ML Metadata store."""

    def __init__(self, store: metadata_store.MetadataStore):
        self.store = store
        self._artifacts: dict[int, Artifact] = {}
        self._executions: dict[int, Execution] = {}

    @cached_property
    def _artifact_types(self) -> dict[int, str]:
        return {t.id: t.name for t in self.store.get_artifact_types()}

    @cached_property
    def _execution_types(self) -> dict[int, str]:
        return {t.id: t.name for t in self.store.get_execution_types()}

    @cached_property
    def _context_types(self) -> dict[int, str]:
        return {t.id: t.name for t in self.store.get_context_types()}

    def artifact_type(self, artifact: Artifact) -> str:
        return short_type(self._artifact_types.get(artifact.type_id, artifact.type or "?"))

    def artifact(self, artifact_id: int) -> Artifact:
        """The artifact with this id.

        Raises:
            LineageError: No such artifact in the store.
        """
        if artifact_id not in self._artifacts:
            found = self.store.get_artifacts_by_id([artifact_id])
            if not found:
                raise LineageError(f"no artifact with ML Metadata id {artifact_id} in the store")
            self._artifacts[artifact_id] = found[0]
        return self._artifacts[artifact_id]

    def execution(self, execution_id: int) -> Execution:
        if execution_id not in self._executions:
            found = self.store.get_executions_by_id([execution_id])
            if not found:
                raise LineageError(f"no execution with ML Metadata id {execution_id}")
            self._executions[execution_id] = found[0]
        return self._executions[execution_id]

    def artifacts_of_type(self, type_name: str) -> list[Artifact]:
        """Every artifact of a type, under either orchestrator's name, oldest first."""
        found: list[Artifact] = []
        for name in (type_name, f"tfx.{type_name}"):
            found.extend(self.store.get_artifacts_by_type(name))
        for a in found:
            self._artifacts[a.id] = a
        return sorted(found, key=lambda a: a.id)

    def artifacts_by_uri(self, uri: str) -> list[Artifact]:
        found = list(self.store.get_artifacts_by_uri(uri))
        for a in found:
            self._artifacts[a.id] = a
        return sorted(found, key=lambda a: a.id)

    def _edges(self, events: list[Event]) -> list[Edge]:
        edges = []
        for event in events:
            if event.type in _OUTPUTS:
                direction = "output"
            elif event.type in _INPUTS:
                direction = "input"
            else:
                continue
            edges.append(Edge(event.execution_id, event.artifact_id, direction, event_key(event)))
        return edges

    def edges_of_execution(self, execution_id: int) -> list[Edge]:
        return self._edges(list(self.store.get_events_by_execution_ids([execution_id])))

    def edges_of_artifact(self, artifact_id: int) -> list[Edge]:
        return self._edges(list(self.store.get_events_by_artifact_ids([artifact_id])))

    def producer(self, artifact_id: int) -> Execution | None:
        """The execution that wrote the artifact, if recorded.

        A run served from cache records its cached executions as outputting
        the same artifacts again; the producer is the first, which made it.
        """
        writers = [
            e.execution_id for e in self.edges_of_artifact(artifact_id) if e.direction == "output"
        ]
        return self.execution(min(writers)) if writers else None

    def consumers(self, artifact_id: int) -> list[Execution]:
        """Executions that read the artifact, oldest first."""
        ids = sorted(
            {e.execution_id for e in self.edges_of_artifact(artifact_id) if e.direction == "input"}
        )
        return [self.execution(i) for i in ids]

    def io(self, execution_id: int, direction: str) -> dict[str, list[Artifact]]:
        """An execution's input or output artifacts by key (`examples`, `model`…)."""
        by_key: dict[str, list[Artifact]] = defaultdict(list)
        for edge in self.edges_of_execution(execution_id):
            if edge.direction == direction:
                by_key[edge.key].append(self.artifact(edge.artifact_id))
        return dict(by_key)

    def contexts(self, execution_id: int) -> list[Context]:
        return list(self.store.get_contexts_by_execution(execution_id))

    def context_type(self, context: Context) -> str:
        return self._context_types.get(context.type_id, context.type)

    def node_id(self, execution: Execution) -> str:
        """The pipeline node (`trainer`…): TFX's node context, or KFP's `task_name`."""
        task = execution.custom_properties.get("task_name")
        if task is not None and task.string_value:
            return task.string_value
        for context in self.contexts(execution.id):
            if self.context_type(context) == NODE_CONTEXT_TYPE:
                return context.name.split(".", 1)[-1]
        return short_type(self._execution_types.get(execution.type_id, "?")).rsplit(".", 1)[-1]

    def run_and_pipeline(self, execution_id: int) -> tuple[str | None, str | None]:
        """(run name, pipeline name) of an execution's contexts."""
        run = pipeline = None
        for context in self.contexts(execution_id):
            kind = self.context_type(context)
            if kind in RUN_CONTEXT_TYPES:
                run = context.name
            elif kind in PIPELINE_CONTEXT_TYPES:
                pipeline = context.name
        return run, pipeline

    def describe_execution(self, execution: Execution) -> dict[str, object]:
        run, pipeline = self.run_and_pipeline(execution.id)
        return {
            "id": execution.id,
            "node": self.node_id(execution),
            "state": state_name(execution),
            "run": run,
            "pipeline": pipeline,
        }

    def describe_artifact(self, artifact: Artifact) -> dict[str, object]:
        return {"id": artifact.id, "type": self.artifact_type(artifact), "uri": artifact.uri}
