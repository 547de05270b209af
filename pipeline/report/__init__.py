"""The run report: one self-contained HTML page per run (README.md, "The run report").

Two writers share it: `python -m pipeline run` writes the page beside its
log from the summary it holds (`write_report`), and the pipeline's last
node, `pipeline.report.component.RunReport`, writes it as the run's `system.HTML`
artifact from what ML Metadata recorded of its own run (`page_of_run`).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from components import storage
from pipeline.config import PipelineConfig
from pipeline.report.settings import ReportSettings
from pipeline.summary import RunSummary

if TYPE_CHECKING:
    from ml_metadata import metadata_store

__all__ = ["ReportSettings", "page_of_run", "render_page", "write_report"]


def render_page(
    store: metadata_store.MetadataStore, summary: RunSummary, settings: ReportSettings
) -> str:
    """The report page of a finished run, as HTML."""
    from pipeline.report.collect import collect
    from pipeline.report.page import render

    return render(collect(store, summary, settings))


def write_report(config: PipelineConfig, summary: RunSummary, path: str) -> str:
    """Collects a finished run's artifacts and writes its report page to `path`.

    Returns:
        `path`.
    """
    from components import mlmd

    html = render_page(
        mlmd.open_for_reading(config.metadata), summary, ReportSettings.from_config(config)
    )
    if "://" not in path:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
    storage.write_bytes(path, html.encode("utf-8"))
    return path


def page_of_run(
    store: metadata_store.MetadataStore,
    settings: ReportSettings,
    run_id: str,
    leave_out: frozenset[str] = frozenset(),
) -> str:
    """The report page of one run, from what ML Metadata recorded of it.

    Args:
        store: The store the run records in.
        settings: The pipeline and the thresholds the run was judged by.
        run_id: The run's id (TFX's pipeline_run or KFP's system.PipelineRun).
        leave_out: Node ids not to show (the report node itself, still running).

    Raises:
        ValueError: The store holds no execution of that run of the pipeline.
    """
    from pipeline.summary import summarize_run

    summary = summarize_run(store, settings.pipeline, run_id, settings.thresholds(), leave_out)
    return render_page(store, summary, settings)
