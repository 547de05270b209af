"""`RegistryPusher`: TFX's Pusher, replaced by one that writes registry versions.

TFX's Pusher copies the model to `<base_directory>/<timestamp>` in place: a
version TF Serving can pick up half-written, with nothing that says what it
is. This one publishes through `components.registry.store.Registry` (atomic,
never overwriting, with a checksummed manifest and TF Serving warmup
requests, and optionally TFLite variants measured against the SavedModel)
and applies the retention policy. Its output is a `PushedModel`
with TFX's custom properties (`pushed`, `pushed_destination`,
`pushed_version`), so lineage tools read it like TFX's.
"""

from __future__ import annotations

from typing import TypeAlias

from tfx.dsl.components.base import base_component, executor_spec
from tfx.orchestration import data_types
from tfx.types import channel, standard_artifacts
from tfx.types.component_spec import ChannelParameter, ComponentSpec, ExecutionParameter

from components.pusher import executor

StrParam: TypeAlias = str | data_types.RuntimeParameter
FloatParam: TypeAlias = float | data_types.RuntimeParameter


class RegistryPusherSpec(ComponentSpec):
    """Inputs, outputs and parameters of `RegistryPusher`."""

    PARAMETERS = {
        executor.REGISTRY_URI: ExecutionParameter(type=str),
        executor.MODEL_NAME: ExecutionParameter(type=str),
        executor.KEEP_VERSIONS: ExecutionParameter(type=int),
        executor.WARMUP_REQUESTS: ExecutionParameter(type=int),
        executor.PIPELINE_NAME: ExecutionParameter(type=str),
        executor.PIPELINE_RUN_ID: ExecutionParameter(type=str),
        executor.DATA_ROOT: ExecutionParameter(type=str),
        executor.METRIC: ExecutionParameter(type=str),
        executor.MIN_VALUE: ExecutionParameter(type=float),
        executor.MAX_DROP: ExecutionParameter(type=float),
        executor.SERVING_COLUMNS: ExecutionParameter(type=str),
        executor.METADATA_CONNECTION: ExecutionParameter(type=str),
        executor.EXTRA_OPS: ExecutionParameter(type=str),
        executor.ALLOW_SIGNATURE_CHANGE: ExecutionParameter(type=int),
        executor.TFLITE: ExecutionParameter(type=str),
        executor.TFLITE_EVAL_ROWS: ExecutionParameter(type=int),
        executor.TFLITE_MAX_ABS_DIFF: ExecutionParameter(type=float),
        executor.TFLITE_MAX_METRIC_DELTA: ExecutionParameter(type=float),
    }
    INPUTS = {
        "model": ChannelParameter(type=standard_artifacts.Model),
        "model_blessing": ChannelParameter(type=standard_artifacts.ModelBlessing),
        # The raw examples: eval rows become warmup requests, and the
        # manifest records which data the model was judged on.
        "examples": ChannelParameter(type=standard_artifacts.Examples),
        "evaluation": ChannelParameter(type=standard_artifacts.ModelEvaluation),
    }
    OUTPUTS = {
        "pushed_model": ChannelParameter(type=standard_artifacts.PushedModel),
    }


class RegistryPusher(base_component.BaseComponent):
    """Publishes a blessed `model` as the next registry version; skips an unblessed one."""

    SPEC_CLASS = RegistryPusherSpec
    EXECUTOR_SPEC = executor_spec.ExecutorClassSpec(executor.Executor)

    def __init__(
        self,
        model: channel.BaseChannel,
        model_blessing: channel.BaseChannel,
        examples: channel.BaseChannel,
        evaluation: channel.BaseChannel,
        registry_uri: str,
        model_name: str,
        keep_versions: int,
        warmup_requests: int,
        pipeline: str,
        pipeline_run_id: str,
        data_root: StrParam,
        metric: str,
        min_value: FloatParam,
        max_drop: FloatParam,
        serving_columns: str,
        metadata_connection: str,
        extra_ops: tuple[str, ...] = (),
        allow_signature_change: bool = False,
        tflite: tuple[str, ...] = (),
        tflite_eval_rows: int = 200,
        tflite_max_abs_diff: float = 0.01,
        tflite_max_metric_delta: float = 0.005,
    ):
        """Args are the spec's; `pipeline_run_id` empty means the orchestrator's own.

        `tflite` names the TFLite variants to add under the version (none by
        default), measured on `tflite_eval_rows` eval rows and refused beyond
        `tflite_max_abs_diff` or `tflite_max_metric_delta`
        (components/registry/tflite.py).
        """
        spec = RegistryPusherSpec(
            model=model,
            model_blessing=model_blessing,
            examples=examples,
            evaluation=evaluation,
            registry_uri=registry_uri,
            model_name=model_name,
            keep_versions=keep_versions,
            warmup_requests=warmup_requests,
            pipeline=pipeline,
            pipeline_run_id=pipeline_run_id,
            data_root=data_root,
            metric=metric,
            min_value=min_value,
            max_drop=max_drop,
            serving_columns=serving_columns,
            metadata_connection=metadata_connection,
            extra_ops=",".join(extra_ops),
            allow_signature_change=int(allow_signature_change),
            tflite=",".join(tflite),
            tflite_eval_rows=tflite_eval_rows,
            tflite_max_abs_diff=float(tflite_max_abs_diff),
            tflite_max_metric_delta=float(tflite_max_metric_delta),
            pushed_model=channel.Channel(type=standard_artifacts.PushedModel),
        )
        super().__init__(spec=spec)
