"""`Evaluator`: TFX's Evaluator with thresholds as parameters and a looked-up baseline.

TFX's Evaluator takes a whole `eval_config` proto, and a Kubeflow runtime
parameter cannot stand for a field inside a proto. This component takes the
two blessing thresholds as float parameters (values or RuntimeParameters) and
the task, gated metric and slices as `eval_spec` JSON; its executor builds the
EvalConfig from them (`components.evaluator.eval_config`), resolves the
BaselineLookup reference, and runs TFX's Evaluator executor unchanged.
"""

from __future__ import annotations

from typing import TypeAlias

from tfx.dsl.components.base import base_beam_component, executor_spec
from tfx.orchestration import data_types
from tfx.types import channel, standard_artifacts
from tfx.types.component_spec import ChannelParameter, ComponentSpec, ExecutionParameter

from components.evaluator.executor import EVAL_SPEC, MAX_DROP, MIN_VALUE, Executor

FloatParam: TypeAlias = float | data_types.RuntimeParameter


class EvaluatorSpec(ComponentSpec):
    """Inputs, outputs and parameters of `Evaluator`."""

    PARAMETERS = {
        EVAL_SPEC: ExecutionParameter(type=str),
        MIN_VALUE: ExecutionParameter(type=float),
        MAX_DROP: ExecutionParameter(type=float),
    }
    INPUTS = {
        "examples": ChannelParameter(type=standard_artifacts.Examples),
        "model": ChannelParameter(type=standard_artifacts.Model),
        # A BaselineLookup reference, resolved by the executor.
        "baseline_model": ChannelParameter(type=standard_artifacts.Model, optional=True),
    }
    OUTPUTS = {
        "evaluation": ChannelParameter(type=standard_artifacts.ModelEvaluation),
        "blessing": ChannelParameter(type=standard_artifacts.ModelBlessing),
    }


class Evaluator(base_beam_component.BaseBeamComponent):
    """Scores `model` on the eval split and blesses it against the thresholds."""

    SPEC_CLASS = EvaluatorSpec
    EXECUTOR_SPEC = executor_spec.BeamExecutorSpec(Executor)

    def __init__(
        self,
        examples: channel.BaseChannel,
        model: channel.BaseChannel,
        eval_spec: str,
        min_value: FloatParam,
        max_drop: FloatParam,
        baseline_model: channel.BaseChannel | None = None,
    ):
        spec = EvaluatorSpec(
            examples=examples,
            model=model,
            baseline_model=baseline_model,
            eval_spec=eval_spec,
            min_value=min_value,
            max_drop=max_drop,
            evaluation=channel.Channel(type=standard_artifacts.ModelEvaluation),
            blessing=channel.Channel(type=standard_artifacts.ModelBlessing),
        )
        super().__init__(spec=spec)
