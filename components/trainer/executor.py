"""Trainer executor: step counts in, TFX's GenericExecutor out, workers launched when asked."""

from __future__ import annotations

from typing import Any

from tfx import types
from tfx.components.trainer import executor as trainer_executor
from tfx.dsl.io import fileio
from tfx.proto import trainer_pb2
from tfx.types import standard_component_specs
from tfx.utils import json_utils, proto_utils

from components import contracts, private_apis
from components.training.custom_config import settings_of
from components.training.launchers import make_launcher
from components.training.session import backup_dir

TRAIN_STEPS = contracts.TRAIN_STEPS
EVAL_STEPS = contracts.EVAL_STEPS


def steps_to_args(exec_properties: dict[str, Any]) -> dict[str, Any]:
    """Replaces `train_steps`/`eval_steps` with TFX's `train_args`/`eval_args` JSON.

    Raises:
        ValueError: A step count is missing or not a positive integer.
    """
    props = dict(exec_properties)
    steps = {}
    for key in (TRAIN_STEPS, EVAL_STEPS):
        value = props.pop(key, None)
        # Kubeflow hands NUMBER_INTEGER parameters over as floats (JSON numbers).
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"Trainer: {key} must be a positive integer, got {value!r}")
        steps[key] = value
    props[standard_component_specs.TRAIN_ARGS_KEY] = proto_utils.proto_to_json(
        trainer_pb2.TrainArgs(num_steps=steps[TRAIN_STEPS])
    )
    props[standard_component_specs.EVAL_ARGS_KEY] = proto_utils.proto_to_json(
        trainer_pb2.EvalArgs(num_steps=steps[EVAL_STEPS])
    )
    return props


class Executor(trainer_executor.GenericExecutor):
    """TFX's GenericExecutor, fed step counts instead of arg protos.

    When the trainer settings (in custom_config) ask for workers, `run_fn`
    runs in those workers (components/training/settings.py has the table)
    instead of in this process; they get the same FnArgs, and the chief
    writes the same artifacts.
    """

    def Do(
        self,
        input_dict: dict[str, list[types.Artifact]],
        output_dict: dict[str, list[types.Artifact]],
        exec_properties: dict[str, Any],
    ) -> None:
        props = steps_to_args(exec_properties)
        settings = settings_of(
            json_utils.loads(props.get("custom_config") or "{}"),
            int(exec_properties[TRAIN_STEPS]),
            int(exec_properties[EVAL_STEPS]),
        )
        if not settings.launches_workers:
            super().Do(input_dict, output_dict, props)
            return
        fn_args = private_apis.trainer_fn_args(self, input_dict, output_dict, props)
        make_launcher(settings).run(fn_args, props["run_fn"])
        # Keras empties the backup as each worker ends; only once all have
        # ended can its folder go without racing a worker still inside it.
        backup = backup_dir(fn_args.model_run_dir)
        if fileio.exists(backup):
            fileio.rmtree(backup)
        if not fileio.exists(fn_args.serving_model_dir):
            raise RuntimeError(
                f"all {settings.workers} trainer workers succeeded, but the chief exported "
                f"no model to {fn_args.serving_model_dir}"
            )
