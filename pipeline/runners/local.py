"""Runs the pipeline in this process with TFX's LocalDagRunner."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import replace

from tfx import v1 as tfx

from components import beam_setup, mlmd, storage
from pipeline.config import PipelineConfig
from pipeline.definition import create_pipeline
from pipeline.progress import NodeResult, ProgressTracker
from pipeline.runners import interrupts, memory
from pipeline.runners.connection import local_connection_config
from pipeline.summary import RunSummary, summarize

__all__ = ["PipelineInterrupted", "PipelineRunError", "local_connection_config", "run"]


class PipelineInterrupted(RuntimeError):
    """The run was interrupted (Ctrl-C); `node_id` names the node that was running."""

    def __init__(self, node_id: str):
        super().__init__(f"interrupted at {node_id}")
        self.node_id = node_id


class PipelineRunError(RuntimeError):
    """A component failed; `node_id` names it and `summary` holds what finished."""

    def __init__(self, node_id: str, reason: str, summary: RunSummary):
        super().__init__(f"{node_id} failed: {reason}")
        self.node_id = node_id
        self.reason = reason
        self.summary = summary


_ERROR_LINE = re.compile(r"^\s*([A-Za-z_][\w.]*(Error|Exception)): (.+)$")


def one_line_reason(error: BaseException) -> str:
    """The error as one line: TensorFlow and Beam errors nest tracebacks in their
    messages, so the innermost `SomeError: message` line is the useful one."""
    text = str(error).strip()
    matches = [m for m in map(_ERROR_LINE.match, text.splitlines()) if m]
    if matches:
        return f"{matches[-1].group(1)}: {matches[-1].group(3).strip()}"
    first = next((line.strip() for line in text.splitlines() if line.strip()), "")
    return f"{type(error).__name__}: {first}" if first else type(error).__name__


def run(
    config: PipelineConfig, report: Callable[[NodeResult], None] = lambda _: None
) -> RunSummary:
    """Runs the whole pipeline locally and summarizes it.

    Args:
        config: The validated configuration.
        report: Called as each component finishes (progress output).

    Returns:
        The run's summary: metrics, blessing and pushed version.

    Raises:
        PipelineRunError: A component failed; names it and why.
        PipelineInterrupted: Ctrl-C (SIGINT) stopped the run; the executions
            it left running are marked CANCELED in ML Metadata, so lineage
            shows the run as interrupted, and a rerun resumes from the cache.
    """
    storage.register_filesystems(config.data.root, config.run.pipeline_root, config.registry.uri)
    beam_setup.prepare()
    connection = local_connection_config(config)
    pipeline = create_pipeline(config, metadata_connection_config=connection)
    store = mlmd.open_store(connection)
    with memory.given_back_between_components() as give_back:

        def finished(result: NodeResult) -> None:
            report(result)
            give_back()  # the next component starts on what this one freed

        tracker = ProgressTracker(store, config.run.pipeline_name, finished)
        try:
            with tracker.attached(), interrupts.not_lost():
                tfx.orchestration.LocalDagRunner().run(pipeline)
        except KeyboardInterrupt:
            running = tracker.running or "pipeline"
            if tracker.run_id:
                mlmd.cancel_running(store, config.run.pipeline_name, tracker.run_id)
            raise PipelineInterrupted(running) from None
        except Exception as error:  # any component failure ends the run; name it
            failed = tracker.running or "pipeline"
            summary = summarize(store, tracker.results, config.evaluator)
            raise PipelineRunError(
                failed, one_line_reason(error), replace(summary, run_id=tracker.run_id or "")
            ) from error
        summary = summarize(store, tracker.results, config.evaluator)
        return replace(summary, run_id=tracker.run_id or "")
