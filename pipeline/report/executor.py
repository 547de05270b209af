"""RunReport executor: draws its own run's page from ML Metadata into the HTML artifact."""

from __future__ import annotations

import os
from html import escape
from typing import Any

import tensorflow as tf
from absl import logging
from tfx import types
from tfx.dsl.components.base import base_executor
from tfx.types import artifact_utils

from components import contracts, mlmd
from components.mlmd import connect

PIPELINE_NAME = contracts.PIPELINE_PARAMETER
PIPELINE_RUN_ID = contracts.PIPELINE_RUN_ID
METRIC = contracts.METRIC
MIN_VALUE = contracts.MIN_VALUE
MAX_DROP = contracts.MAX_DROP
SLICE_BY = "slice_by"
METADATA_CONNECTION = contracts.METADATA_CONNECTION
# The name the Kubeflow UI shows above the page; it lists only HTML
# artifacts that carry one.
DISPLAY_NAME = "display_name"


def error_page(run_id: str, reason: str) -> str:
    """A page that says why the report could not be drawn."""
    return (
        '<!DOCTYPE html><html><head><meta charset="utf-8"><title>Run report</title></head>'
        f"<body><h1>Run {escape(run_id)}</h1><p>The report could not be drawn: "
        f"{escape(reason)}</p><p>The run's own outcome is in its tasks' logs.</p></body></html>"
    )


class Executor(base_executor.BaseExecutor):
    """Writes the report page of the run this execution belongs to."""

    def Do(
        self,
        input_dict: dict[str, list[types.Artifact]],
        output_dict: dict[str, list[types.Artifact]],
        exec_properties: dict[str, Any],
    ) -> None:
        from pipeline.report import page_of_run
        from pipeline.report.settings import ReportSettings

        run_id = mlmd.executor_run_id(exec_properties[PIPELINE_RUN_ID], self._context)
        if not run_id:
            raise ValueError("RunReport: no pipeline run id (parameter or executor context)")
        settings = ReportSettings(
            pipeline=exec_properties[PIPELINE_NAME],
            metric=exec_properties[METRIC],
            min_value=float(exec_properties[MIN_VALUE]),
            max_drop=float(exec_properties[MAX_DROP]),
            slice_columns=tuple(c for c in exec_properties[SLICE_BY].split(",") if c),
        )
        try:
            html = page_of_run(
                connect(exec_properties[METADATA_CONNECTION]),
                settings,
                run_id,
                leave_out=frozenset({contracts.RUN_REPORT}),
            )
        except Exception as error:  # the model is pushed by now: a page must not fail the run
            logging.warning("RunReport: could not draw the page of run %s: %s", run_id, error)
            html = error_page(run_id, f"{type(error).__name__}: {error}")
        page = artifact_utils.get_single_instance(output_dict[contracts.REPORT])
        tf.io.gfile.makedirs(os.path.dirname(page.uri))
        with tf.io.gfile.GFile(page.uri, "w") as f:
            f.write(html)
        page.set_string_custom_property(DISPLAY_NAME, "run report")
        logging.info("RunReport: wrote %s (%d bytes)", page.uri, len(html))
