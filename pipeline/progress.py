"""Per-component progress of a local run, as one line per finished component.

TFX's LocalDagRunner has no callback API. It runs each node through
`Launcher.launch()`, so for the duration of a run that method is wrapped to
report the start and end of every node; ML Metadata then says whether the
node executed or reused cached outputs. It is read for the launched run
alone: another run of the pipeline on the same store, at the same time,
records executions of the same nodes. (Listening to the runner's
"Component X is finished." log records was tried first: under pytest the
records stopped arriving once Transform had run; the wrapper does not depend
on how logging is configured.)
"""

from __future__ import annotations

import functools
import os
import socket
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ml_metadata import metadata_store

from components import mlmd, private_apis

if TYPE_CHECKING:
    from tfx.proto.orchestration import pipeline_pb2


@dataclass(frozen=True)
class NodeResult:
    """How one node of a run ended.

    Attributes:
        node_id: The node's id.
        state: ML Metadata execution state: COMPLETE, CACHED, FAILED...
        seconds: Wall time between the runner starting and finishing it.
        execution_id: Its ML Metadata execution id (0 if none was recorded).
    """

    node_id: str
    state: str
    seconds: float
    execution_id: int


def run_id_of(node: pipeline_pb2.PipelineNode) -> str:
    """The run a launched node belongs to: the name of its `pipeline_run` context.

    The runner resolves the name (its run id) in the node's IR before it
    launches the node.

    Raises:
        ValueError: The node has no resolved run context (an ASYNC pipeline,
            which has no runs, or IR no runner has resolved).
    """
    for context in node.contexts.contexts:
        if context.type.name == mlmd.TFX_RUN_CONTEXT_TYPE and context.name.field_value.string_value:
            return str(context.name.field_value.string_value)
    raise ValueError(
        f"node {node.node_info.id} has no resolved {mlmd.TFX_RUN_CONTEXT_TYPE} context; "
        "progress is tracked for SYNC pipeline runs only"
    )


class ProgressTracker:
    """Collects NodeResults while a LocalDagRunner runs, reporting each one.

    Args:
        store: The run's ML Metadata store.
        pipeline_name: The run's pipeline.
        report: Called with each NodeResult as its node finishes.

    Attributes:
        results: The NodeResults so far, in the order the nodes finished.
        running: The node being run, if any.
        run_id: The run of the last node launched (None before the first):
            the name of the run's `pipeline_run` context in ML Metadata.
    """

    def __init__(
        self,
        store: metadata_store.MetadataStore,
        pipeline_name: str,
        report: Callable[[NodeResult], None],
    ):
        self._store = store
        self._pipeline_name = pipeline_name
        self._report = report
        self._started: dict[str, float] = {}
        self.results: list[NodeResult] = []
        self.running: str | None = None
        self.run_id: str | None = None
        self._runner_recorded = False

    def _record_runner(self, run_id: str) -> None:
        # So that lineage can tell this run from one whose process was killed.
        if not self._runner_recorded:
            self._runner_recorded = mlmd.record_runner(
                self._store, run_id, os.getpid(), socket.gethostname()
            )

    def _start(self, node_id: str, run_id: str) -> None:
        self.running = node_id
        self.run_id = run_id
        self._started[node_id] = time.monotonic()
        self._record_runner(run_id)

    def _finish(self, node_id: str, run_id: str) -> None:
        seconds = time.monotonic() - self._started.get(node_id, time.monotonic())
        execution = mlmd.execution_of_node_in_run(self._store, self._pipeline_name, run_id, node_id)
        result = NodeResult(
            node_id=node_id,
            state=mlmd.state_name(execution) if execution else "UNKNOWN",
            seconds=seconds,
            execution_id=execution.id if execution else 0,
        )
        self.results.append(result)
        self.running = None
        self._record_runner(run_id)
        self._report(result)

    @contextmanager
    def attached(self) -> Iterator[ProgressTracker]:
        """Reports every node the LocalDagRunner launches inside the block."""
        launcher_class = private_apis.launcher_class()
        original = launcher_class.launch
        tracker = self

        @functools.wraps(original)
        def launch(launcher: Any) -> Any:
            node = private_apis.launched_node(launcher)
            node_id, run_id = node.node_info.id, run_id_of(node)
            tracker._start(node_id, run_id)
            result = original(launcher)
            tracker._finish(node_id, run_id)
            return result

        launcher_class.launch = launch
        try:
            yield self
        finally:
            launcher_class.launch = original
