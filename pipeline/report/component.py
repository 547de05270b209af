"""`RunReport`: the last node of the DAG, which writes the run's report page as an artifact.

Locally, `python -m pipeline run` also writes the page beside its log, for
failed runs too. On Kubeflow this node is what puts the page in the run:
its output is a `system.HTML` artifact, the type the Kubeflow UI renders
inline in the task's Visualization tab. It runs after the Pusher, so a run
that stops earlier (a failed gate, a failed task) has no page on Kubeflow.
"""

from __future__ import annotations

from typing import TypeAlias

from tfx.dsl.components.base import base_component, executor_spec
from tfx.orchestration import data_types
from tfx.types import channel, standard_artifacts
from tfx.types.component_spec import ChannelParameter, ComponentSpec, ExecutionParameter
from tfx.types.value_artifact import ValueArtifact

from components import contracts
from pipeline.report import executor

FloatParam: TypeAlias = float | data_types.RuntimeParameter


class HtmlPage(ValueArtifact):
    """One HTML page, stored as the artifact's own file (not a folder).

    The type name is Kubeflow's `system.HTML`: TFX's v2 compiler takes a
    custom type name of the form `namespace.Title` as the artifact's schema
    title, the KFP launcher records the artifact under that type, and the
    Kubeflow UI shows artifacts of that type, with a `display_name`, as a
    page (frontend/src/components/viewers/MetricsVisualizations.tsx). A
    `ValueArtifact`, because KFP's viewer reads the object at the URI itself.
    """

    TYPE_NAME = contracts.HTML_ARTIFACT_TYPE

    def encode(self, value: str) -> bytes:
        return value.encode("utf-8")

    def decode(self, serialized_value: bytes) -> str:
        return serialized_value.decode("utf-8")


class RunReportSpec(ComponentSpec):
    """Inputs, outputs and parameters of `RunReport`."""

    PARAMETERS = {
        executor.PIPELINE_NAME: ExecutionParameter(type=str),
        executor.PIPELINE_RUN_ID: ExecutionParameter(type=str),
        executor.METRIC: ExecutionParameter(type=str),
        executor.MIN_VALUE: ExecutionParameter(type=float),
        executor.MAX_DROP: ExecutionParameter(type=float),
        executor.SLICE_BY: ExecutionParameter(type=str),
        executor.METADATA_CONNECTION: ExecutionParameter(type=str),
    }
    INPUTS = {
        # Read for nothing but its place in the DAG: the report comes last.
        contracts.PUSHED_MODEL: ChannelParameter(type=standard_artifacts.PushedModel),
    }
    OUTPUTS = {
        contracts.REPORT: ChannelParameter(type=HtmlPage),
    }


class RunReport(base_component.BaseComponent):
    """Writes the report page of the run it belongs to, read from ML Metadata."""

    SPEC_CLASS = RunReportSpec
    EXECUTOR_SPEC = executor_spec.ExecutorClassSpec(executor.Executor)

    def __init__(
        self,
        pushed_model: channel.BaseChannel,
        pipeline: str,
        pipeline_run_id: str,
        metric: str,
        min_value: FloatParam,
        max_drop: FloatParam,
        slice_by: tuple[str, ...],
        metadata_connection: str,
    ):
        """Args are the spec's; `pipeline_run_id` empty means the orchestrator's own."""
        spec = RunReportSpec(
            pushed_model=pushed_model,
            pipeline=pipeline,
            pipeline_run_id=pipeline_run_id,
            metric=metric,
            min_value=min_value,
            max_drop=max_drop,
            slice_by=",".join(slice_by),
            metadata_connection=metadata_connection,
            report=channel.Channel(type=HtmlPage),
        )
        super().__init__(spec=spec)
