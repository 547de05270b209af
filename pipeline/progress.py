"""Per-component progress of a local run, as one line per finished component.

TFX's LocalDagRunner has no callback API; it logs "Component X is running."
and "Component X is finished." around each node. A logging handler turns
those records into events, and ML Metadata says whether the node executed
or reused cached outputs.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from ml_metadata import metadata_store

from pipeline import mlmd_queries

_RUNNING = "Component %s is running."
_FINISHED = "Component %s is finished."


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


class _RunnerLogHandler(logging.Handler):
    def __init__(self, on_start: Callable[[str], None], on_finish: Callable[[str], None]):
        super().__init__(level=logging.INFO)
        self._on_start = on_start
        self._on_finish = on_finish

    def emit(self, record: logging.LogRecord) -> None:
        if record.msg == _RUNNING and record.args:
            self._on_start(str(record.args[0]))
        elif record.msg == _FINISHED and record.args:
            self._on_finish(str(record.args[0]))


class ProgressTracker:
    """Collects NodeResults while a LocalDagRunner runs, reporting each one.

    Args:
        store: The run's ML Metadata store.
        pipeline_name: The run's pipeline.
        report: Called with each NodeResult as its node finishes.
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

    def _start(self, node_id: str) -> None:
        self.running = node_id
        self._started[node_id] = time.monotonic()

    def _finish(self, node_id: str) -> None:
        seconds = time.monotonic() - self._started.get(node_id, time.monotonic())
        execution = mlmd_queries.latest_execution(self._store, self._pipeline_name, node_id)
        result = NodeResult(
            node_id=node_id,
            state=mlmd_queries.state_name(execution) if execution else "UNKNOWN",
            seconds=seconds,
            execution_id=execution.id if execution else 0,
        )
        self.results.append(result)
        self.running = None
        self._report(result)

    @contextmanager
    def attached(self) -> Iterator[ProgressTracker]:
        """Listens to the runner's log records for the duration of the block."""
        handler = _RunnerLogHandler(self._start, self._finish)
        logger = logging.getLogger("absl")
        previous_level = logger.level
        logger.addHandler(handler)
        if logger.getEffectiveLevel() > logging.INFO:
            logger.setLevel(logging.INFO)
        try:
            yield self
        finally:
            logger.removeHandler(handler)
            logger.setLevel(previous_level)
