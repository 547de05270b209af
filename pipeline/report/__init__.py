"""The run report: one self-contained HTML page per run (README.md, "The run report")."""

from __future__ import annotations

from pathlib import Path

from components import storage
from pipeline.config import PipelineConfig
from pipeline.summary import RunSummary


def write_report(config: PipelineConfig, summary: RunSummary, path: str) -> str:
    """Collects a finished run's artifacts and writes its report page to `path`.

    Returns:
        `path`.
    """
    from pipeline.report.collect import collect
    from pipeline.report.page import render

    html = render(collect(config, summary))
    if "://" not in path:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
    storage.write_bytes(path, html.encode("utf-8"))
    return path
