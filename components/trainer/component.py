"""`Trainer`: TFX's Trainer, with the step counts as int parameters.

TFX's own Trainer takes `train_args`/`eval_args` protos. A Kubeflow runtime
parameter can only stand for a whole parameter, never for a field inside a
proto, so the step counts could not be set per run. This component takes
`train_steps` and `eval_steps` as ints (a value or a RuntimeParameter) and its
executor turns them back into the protos before TFX's GenericExecutor runs
`run_fn`. The trainer settings in `custom_config` add what TFX's Trainer
lacks: multi-worker training through TF_CONFIG, on local processes or pods.
Everything else is TFX's Trainer.
"""

from __future__ import annotations

from typing import Any, TypeAlias

from tfx.dsl.components.base import base_component, executor_spec
from tfx.orchestration import data_types
from tfx.types import channel, standard_artifacts
from tfx.types.component_spec import ChannelParameter, ComponentSpec, ExecutionParameter
from tfx.utils import json_utils

from components.trainer.executor import EVAL_STEPS, TRAIN_STEPS, Executor

IntParam: TypeAlias = int | data_types.RuntimeParameter


class TrainerSpec(ComponentSpec):
    """Inputs, outputs and parameters of `Trainer`."""

    PARAMETERS = {
        "run_fn": ExecutionParameter(type=str),
        "custom_config": ExecutionParameter(type=str, optional=True),
        TRAIN_STEPS: ExecutionParameter(type=int),
        EVAL_STEPS: ExecutionParameter(type=int),
    }
    INPUTS = {
        "examples": ChannelParameter(type=standard_artifacts.Examples),
        "transform_graph": ChannelParameter(type=standard_artifacts.TransformGraph),
        "schema": ChannelParameter(type=standard_artifacts.Schema, optional=True),
    }
    OUTPUTS = {
        "model": ChannelParameter(type=standard_artifacts.Model),
        "model_run": ChannelParameter(type=standard_artifacts.ModelRun),
    }


class Trainer(base_component.BaseComponent):
    """Trains with `run_fn` (an import path) on transformed examples.

    `custom_config` carries the workload and the trainer settings, which say
    where: in the Trainer's process (the default), or in worker processes or
    pods with a TF_CONFIG each.
    """

    SPEC_CLASS = TrainerSpec
    EXECUTOR_SPEC = executor_spec.ExecutorClassSpec(Executor)

    def __init__(
        self,
        examples: channel.BaseChannel,
        transform_graph: channel.BaseChannel,
        run_fn: str,
        train_steps: IntParam,
        eval_steps: IntParam,
        schema: channel.BaseChannel | None = None,
        custom_config: dict[str, Any] | None = None,
    ):
        spec = TrainerSpec(
            examples=examples,
            transform_graph=transform_graph,
            schema=schema,
            run_fn=run_fn,
            train_steps=train_steps,
            eval_steps=eval_steps,
            custom_config=json_utils.dumps(custom_config or {}),
            model=channel.Channel(type=standard_artifacts.Model),
            model_run=channel.Channel(type=standard_artifacts.ModelRun),
        )
        super().__init__(spec=spec)
