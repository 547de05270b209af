"""Read-only navigation of ML Metadata: artifacts, the executions that made or used them.

One view over what either orchestrator writes: the dialect knowledge (type
names, contexts, how a node is named, how values are stored) is
`components.mlmd`'s; this adds caching and the one-hop walk along events.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from functools import cached_property

from ml_metadata import metadata_store

from components import mlmd
from components.errors import UserError
from components.mlmd import Artifact, Context, Event, Execution


class LineageError(UserError, ValueError):
    """A lineage query cannot be answered; the message names what is missing."""


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
        """The artifact's type as TFX names it (`Model`, under either dialect)."""
        return mlmd.short_type(self._artifact_types.get(artifact.type_id, artifact.type or "?"))

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
        """The execution with this id.

        Raises:
            LineageError: No such execution in the store.
        """
        if execution_id not in self._executions:
            found = self.store.get_executions_by_id([execution_id])
            if not found:
                raise LineageError(f"no execution with ML Metadata id {execution_id}")
            self._executions[execution_id] = found[0]
        return self._executions[execution_id]

    def artifacts_of_type(self, type_name: str) -> list[Artifact]:
        """Every artifact of a type, under either orchestrator's name, oldest first."""
        found = mlmd.artifacts_of_type(self.store, type_name)
        for a in found:
            self._artifacts[a.id] = a
        return found

    def artifacts_by_uri(self, uri: str) -> list[Artifact]:
        """Every artifact at a URI (of any type), oldest first."""
        found = list(self.store.get_artifacts_by_uri(uri))
        for a in found:
            self._artifacts[a.id] = a
        return sorted(found, key=lambda a: a.id)

    def _edges(self, events: list[Event]) -> list[Edge]:
        edges = []
        for event in events:
            if event.type in mlmd.OUTPUT_EVENT_TYPES:
                direction = "output"
            elif event.type in mlmd.INPUT_EVENT_TYPES:
                direction = "input"
            else:
                continue
            edges.append(
                Edge(event.execution_id, event.artifact_id, direction, mlmd.event_key(event))
            )
        return edges

    def edges_of_execution(self, execution_id: int) -> list[Edge]:
        """What an execution read and wrote."""
        return self._edges(list(self.store.get_events_by_execution_ids([execution_id])))

    def edges_of_artifact(self, artifact_id: int) -> list[Edge]:
        """The executions that read or wrote an artifact."""
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
        """An execution's contexts: pipeline, run and (TFX) node."""
        return list(self.store.get_contexts_by_execution(execution_id))

    def context_type(self, context: Context) -> str:
        """A context's type name (`pipeline_run`, `system.PipelineRun`...)."""
        return self._context_types.get(context.type_id, context.type)

    def node_id(self, execution: Execution) -> str:
        """The pipeline node (`trainer`…): TFX's node context, or KFP's `task_name`.

        Records with neither fall back to the execution type's last part
        (the component class under TFX).
        """
        found = mlmd.node_id(execution, self.contexts(execution.id), self._context_types)
        if found is not None:
            return found
        return mlmd.short_type(self._execution_types.get(execution.type_id, "?")).rsplit(".", 1)[-1]

    def run_and_pipeline(self, execution_id: int) -> tuple[str | None, str | None]:
        """(run name, pipeline name) of an execution's contexts."""
        run = pipeline = None
        for context in self.contexts(execution_id):
            kind = self.context_type(context)
            if kind in mlmd.RUN_CONTEXT_TYPES:
                run = context.name
            elif kind in mlmd.PIPELINE_CONTEXT_TYPES:
                pipeline = context.name
        return run, pipeline

    def describe_execution(self, execution: Execution) -> dict[str, object]:
        """An execution as the lineage tree shows it: id, node, state, run, pipeline."""
        run, pipeline = self.run_and_pipeline(execution.id)
        return {
            "id": execution.id,
            "node": self.node_id(execution),
            "state": mlmd.state_name(execution),
            "run": run,
            "pipeline": pipeline,
        }

    def describe_artifact(self, artifact: Artifact) -> dict[str, object]:
        """An artifact as the lineage tree shows it: id, type, URI."""
        return {"id": artifact.id, "type": self.artifact_type(artifact), "uri": artifact.uri}
