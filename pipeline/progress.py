"""Per-component progress of a local run, as one line per finished component.

TFX's LocalDagRunner has no callback API. It runs each node through
`Launcher.launch()`, so for the duration of a run that method is wrapped to
report the start and end of every node; ML Metadata then says whether the
node executed or reused cached outputs. (Listening to the runner's
"Component X is finished." log records was tried first: under pytest the
records stopped arriving once Transform had run; the wrapper does not depend
on how logging is configured.)
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from ml_metadata import metadata_store
from tfx.orchestration.portable import launcher as tfx_launcher

from pipeline import mlmd_queries


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
        """Reports every node the LocalDagRunner launches inside the block."""
        original = tfx_launcher.Launcher.launch
        tracker = self

        @functools.wraps(original)
        def launch(launcher: Any) -> Any:
            node_id = launcher._pipeline_node.node_info.id
            tracker._start(node_id)
            result = original(launcher)
            tracker._finish(node_id)
            return result

        tfx_launcher.Launcher.launch = launch
        try:
            yield self
        finally:
            tfx_launcher.Launcher.launch = original
